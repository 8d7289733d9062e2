package connect

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// The WebSocket frame bytes the wire looks at (RFC 6455 section 5.2).
const (
	opPong   = 0xA
	finPong  = 0x80 | opPong // a final pong frame, no extension bits
	maskBit  = 0x80
	maxPong  = 125 // a control frame's payload limit
	pingSize = 2   // the server's ping: FIN+ping, no payload
)

// pingFrame is the server's heartbeat: an unmasked ping with no payload.
var pingFrame = [pingSize]byte{0x80 | 0x9, 0}

// errBadPong is a pong frame that breaks RFC 6455 (unmasked, or longer than
// a control frame may be); the connection ends on it, as the WebSocket
// would have ended it.
var errBadPong = errors.New("connect: malformed pong frame")

// scanner follows a stream of WebSocket frames, a byte at a time through
// the headers and a payload at a time, so that the wire knows where each
// frame ends and which frames are the client's pongs.
type scanner struct {
	client bool // the frames are a client's (masked); pongs are recognised
	state  uint8
	need   int    // header bytes left in this state
	length uint64 // extended payload length being read
	left   uint64 // payload bytes left
	pong   bool   // the current frame is a pong
}

const (
	scanFirst uint8 = iota
	scanLength
	scanExtended
	scanMask
	scanPayload
)

// step consumes p up to the end of the current frame at most. It returns
// how many bytes it consumed, whether the frame ended with them, and
// whether they belong to a pong of the client.
func (s *scanner) step(p []byte) (n int, end, pong bool, err error) {
	for n < len(p) {
		if s.state == scanPayload {
			k := uint64(len(p) - n)
			k = min(k, s.left)
			n += int(k)
			s.left -= k
			if s.left == 0 {
				return n, true, s.finish(), nil
			}
			return n, false, s.pong, nil
		}
		b := p[n]
		n++
		switch s.state {
		case scanFirst:
			s.pong = s.client && b == finPong
			s.state = scanLength
		case scanLength:
			if s.pong && (b&maskBit == 0 || b&0x7f > maxPong) {
				return n, false, true, errBadPong
			}
			masked := b&maskBit != 0
			switch l := b & 0x7f; l {
			case 126, 127:
				s.state, s.need, s.length = scanExtended, 2, 0
				if l == 127 {
					s.need = 8
				}
				if masked {
					s.need = -s.need // remembered: a mask follows
				}
			default:
				s.left = uint64(l)
				if s.afterLength(masked) {
					return n, true, s.finish(), nil
				}
			}
		case scanExtended:
			s.length = s.length<<8 | uint64(b)
			masked := s.need < 0
			if masked {
				s.need++
			} else {
				s.need--
			}
			if s.need == 0 {
				s.left = s.length
				if s.afterLength(masked) {
					return n, true, s.finish(), nil
				}
			}
		case scanMask:
			s.need--
			if s.need == 0 && s.toPayload() {
				return n, true, s.finish(), nil
			}
		}
	}
	return n, false, s.pong, nil
}

// afterLength moves past the length; it reports whether the frame ended.
func (s *scanner) afterLength(masked bool) bool {
	if masked {
		s.state, s.need = scanMask, 4
		return false
	}
	return s.toPayload()
}

// toPayload starts the payload; it reports whether the frame ended (an
// empty payload).
func (s *scanner) toPayload() bool {
	s.state = scanPayload
	return s.left == 0
}

// finish ends the frame and reports whether it was a pong.
func (s *scanner) finish() bool {
	pong := s.pong
	*s = scanner{client: s.client}
	return pong
}

// atStart reports whether the stream is between frames.
func (s *scanner) atStart() bool { return s.state == scanFirst }

// wire is the connection beneath the WebSocket. It takes the client's pongs
// out of what the WebSocket reads (each one is something heard), hands the
// WebSocket at most one frame per read (so that nothing of the next message
// waits in the WebSocket's buffer once a message is read), and writes the
// server's pings between the WebSocket's frames. With it an idle
// connection needs no goroutine inside the WebSocket library: it waits in
// wait, on a shallow stack.
type wire struct {
	net.Conn
	heard *atomic.Int64 // real-clock Unix nanoseconds of the last frame heard

	// mu guards reading: the raw stream's scanner, the bytes read but
	// not yet handed to the WebSocket, and the scanner of those handed.
	mu      sync.Mutex
	in      scanner // of the client's frames as read
	handed  scanner // of the frames as handed to the WebSocket (no pongs)
	pending []byte
	err     error

	// wmu guards writing: the server's frames as written, and a ping
	// waiting for the end of the frame being written.
	wmu     sync.Mutex
	out     scanner
	held    [writeBuffer]byte // the start of a frame not yet written
	nheld   int
	pingDue bool
}

func newWire(nc net.Conn, heard *atomic.Int64, early []byte) (*wire, error) {
	w := &wire{Conn: nc, heard: heard, in: scanner{client: true}, handed: scanner{client: false}}
	if len(early) > 0 {
		kept, err := w.filter(early)
		if err != nil {
			return nil, err
		}
		w.pending = kept
	}
	return w, nil
}

// filter removes the pongs from p, in place, and returns what is left.
func (w *wire) filter(p []byte) ([]byte, error) {
	kept := 0
	for r := 0; r < len(p); {
		n, end, pong, err := w.in.step(p[r:])
		if err != nil {
			return p[:kept], err
		}
		if !pong {
			kept += copy(p[kept:], p[r:r+n])
		} else if end {
			w.heard.Store(time.Now().UnixNano())
		}
		r += n
	}
	return p[:kept], nil
}

// wait returns once the client sent something besides pongs (or the
// connection failed): what an idle connection's goroutine does, on a small
// stack, while pongs are taken as they come.
func (w *wire) wait() {
	w.mu.Lock()
	defer w.mu.Unlock()
	var buf [16]byte // a pong of the server's ping is 6 bytes
	for len(w.pending) == 0 && w.err == nil {
		n, err := w.Conn.Read(buf[:])
		kept, ferr := w.filter(buf[:n])
		if len(kept) > 0 {
			w.pending = append([]byte(nil), kept...)
		}
		w.err = firstErr(err, ferr)
	}
}

// Read implements io.Reader for the WebSocket: the client's frames but its
// pongs, at most up to the end of a frame.
func (w *wire) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.pending) == 0 {
		if w.err != nil {
			return 0, w.err
		}
		n, err := w.Conn.Read(p)
		kept, ferr := w.filter(p[:n])
		w.err = firstErr(err, ferr)
		if len(kept) == 0 {
			continue
		}
		m, _, _, _ := w.handed.step(kept)
		if m < len(kept) {
			w.pending = append([]byte(nil), kept[m:]...)
		}
		return m, nil
	}
	m, _, _, _ := w.handed.step(w.pending[:min(len(p), len(w.pending))])
	copy(p, w.pending[:m])
	w.pending = w.pending[m:]
	if len(w.pending) == 0 {
		w.pending = nil
	}
	return m, nil
}

// Write implements io.Writer for the WebSocket, and sends a ping that was
// waiting once a frame is complete. The WebSocket writes a frame through a
// tiny buffer: its first bytes (the header and the payload's start) come
// alone and are held here until the rest of the frame, so that a frame
// still goes out in one write.
func (w *wire) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	for r := 0; r < len(p); {
		k, _, _, _ := w.out.step(p[r:])
		r += k
	}
	if !w.out.atStart() && w.nheld+len(p) <= len(w.held) {
		w.nheld += copy(w.held[w.nheld:], p)
		return len(p), nil
	}
	var err error
	if w.nheld > 0 {
		bufs := net.Buffers{w.held[:w.nheld], p}
		_, err = bufs.WriteTo(w.Conn)
		w.nheld = 0
	} else {
		_, err = w.Conn.Write(p)
	}
	if err != nil {
		return 0, err
	}
	if w.pingDue && w.out.atStart() {
		w.pingDue = false
		if _, err := w.Conn.Write(pingFrame[:]); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// ping writes a ping now, or after the frame being written.
func (w *wire) ping() error {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if !w.out.atStart() {
		w.pingDue = true
		return nil
	}
	_, err := w.Conn.Write(pingFrame[:])
	return err
}

func firstErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
