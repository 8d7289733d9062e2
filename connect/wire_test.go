package connect

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// frame encodes one client frame (masked) with opcode op and a payload of n
// bytes.
func frame(op byte, fin bool, n int, masked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	out := []byte{b0}
	var m byte
	if masked {
		m = maskBit
	}
	switch {
	case n < 126:
		out = append(out, m|byte(n))
	case n < 1<<16:
		out = append(out, m|126)
		out = binary.BigEndian.AppendUint16(out, uint16(n))
	default:
		out = append(out, m|127)
		out = binary.BigEndian.AppendUint64(out, uint64(n))
	}
	if masked {
		out = append(out, 1, 2, 3, 4)
	}
	for i := range n {
		out = append(out, byte(i))
	}
	return out
}

// chunkConn is a net.Conn whose reads return the stream in given pieces.
type chunkConn struct {
	net.Conn
	data   []byte
	chunks []int
}

func (c *chunkConn) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := len(c.data)
	if len(c.chunks) > 0 {
		n = min(n, c.chunks[0])
		c.chunks = c.chunks[1:]
	}
	n = copy(p, c.data[:max(n, 1)])
	c.data = c.data[n:]
	return n, nil
}

// The wire hands the WebSocket exactly the client's frames but its pongs,
// one frame at most per read, however the bytes arrive, and takes each
// pong as something heard.
func TestWireDropsPongsAndHandsOneFrameAtATime(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var in, want []byte
		var frames [][]byte // what must come out, frame by frame
		pongs := 0
		nEarly := 0
		for i, n := 0, rapid.IntRange(0, 12).Draw(t, "frames"); i < n; i++ {
			var f []byte
			switch rapid.IntRange(0, 3).Draw(t, "kind") {
			case 0:
				f = frame(opPong, true, rapid.IntRange(0, maxPong).Draw(t, "pong"), true)
				pongs++
			case 1:
				f = frame(0x1, true, rapid.IntRange(0, 300).Draw(t, "text"), true)
			case 2:
				f = frame(0x9, true, rapid.IntRange(0, 20).Draw(t, "ping"), true)
			default:
				f = frame(0x1, false, rapid.IntRange(0, 70000).Draw(t, "fragment"), true)
			}
			in = append(in, f...)
			if f[0] != finPong {
				want = append(want, f...)
				frames = append(frames, f)
			}
		}
		if len(in) > 0 {
			nEarly = rapid.IntRange(0, min(len(in), 40)).Draw(t, "early")
		}
		chunks := rapid.SliceOfN(rapid.IntRange(1, 200), 0, 50).Draw(t, "chunks")
		var heard atomic.Int64
		w, err := newWire(&chunkConn{data: bytes.Clone(in[nEarly:]), chunks: chunks}, &heard, bytes.Clone(in[:nEarly]))
		if err != nil {
			t.Fatal(err)
		}
		if rapid.Bool().Draw(t, "wait first") {
			w.wait()
		}
		var got []byte
		buf := make([]byte, rapid.IntRange(1, 600).Draw(t, "buffer"))
		// Each read stays within one frame: the frames' ends are among
		// the reads' ends.
		ends := map[int]bool{}
		for {
			n, err := w.Read(buf)
			got = append(got, buf[:n]...)
			ends[len(got)] = true
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("read: %v", err)
				}
				break
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("handed %d bytes, want %d", len(got), len(want))
		}
		off := 0
		for i, f := range frames {
			off += len(f)
			if !ends[off] {
				t.Fatalf("frame %d (ending at %d) was handed together with the next", i, off)
			}
		}
		if pongs > 0 && heard.Load() == 0 {
			t.Fatalf("%d pongs, none heard", pongs)
		}
	})
}

// A pong the WebSocket would refuse (unmasked, or too long) ends the read.
func TestWireRefusesBadPongs(t *testing.T) {
	for name, f := range map[string][]byte{
		"unmasked": frame(opPong, true, 3, false),
		"too long": frame(opPong, true, 126, true),
	} {
		var heard atomic.Int64
		w, _ := newWire(&chunkConn{data: f}, &heard, nil)
		if _, err := w.Read(make([]byte, 64)); !errors.Is(err, errBadPong) {
			t.Errorf("%s: read %v, want errBadPong", name, err)
		}
	}
}

// The server's pings go between its frames, never inside one.
func TestWirePingsBetweenFrames(t *testing.T) {
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	var heard atomic.Int64
	w, _ := newWire(server, &heard, nil)
	msg := []byte{0x81, 5, 'h', 'e', 'l', 'l', 'o'}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(msg)+pingSize)))
		got <- b
	}()
	if _, err := w.Write(msg[:3]); err != nil {
		t.Fatal(err)
	}
	if err := w.ping(); err != nil { // due: the frame is half written
		t.Fatal(err)
	}
	if _, err := w.Write(msg[3:]); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if want := append(bytes.Clone(msg), pingFrame[:]...); !bytes.Equal(b, want) {
			t.Fatalf("wrote % x, want % x", b, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the ping never followed the frame")
	}
}

// FuzzWire: whatever a client sends, the wire neither panics nor hands on
// more than it read.
func FuzzWire(f *testing.F) {
	f.Add(frame(opPong, true, 4, true), 3)
	f.Add(append(frame(0x1, true, 200, true), frame(opPong, true, 0, true)...), 7)
	f.Add([]byte{0x8a, 0xfe, 0, 1}, 1)
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		var heard atomic.Int64
		w, err := newWire(&chunkConn{data: bytes.Clone(data), chunks: []int{max(chunk, 1)}}, &heard, nil)
		if err != nil {
			return
		}
		total := 0
		buf := make([]byte, 32)
		for range len(data) + 2 {
			n, err := w.Read(buf)
			total += n
			if err != nil {
				break
			}
		}
		if total > len(data) {
			t.Fatalf("handed %d bytes of %d", total, len(data))
		}
	})
}

// countConn counts the writes that reach the network.
type countConn struct {
	net.Conn
	writes int
	data   []byte
}

func (c *countConn) Write(p []byte) (int, error) {
	c.writes++
	c.data = append(c.data, p...)
	return len(p), nil
}

// A frame written through the WebSocket's tiny buffer still goes out in
// one write, whatever its size: the start held, then the rest with it
// (one writev on a TCP connection; two writes on this test's conn).
func TestWireWritesAFrameAtOnce(t *testing.T) {
	for _, n := range []int{0, 5, 14, 15, 16, 40, 125, 126, 300, 70000} {
		cc := &countConn{}
		var heard atomic.Int64
		w, _ := newWire(cc, &heard, nil)
		bw := bufio.NewWriterSize(w, writeBuffer)
		f := frame(0x1, true, n, false)
		hdr := len(f) - n
		bw.Write(f[:hdr]) // as the WebSocket does: the header, the payload, a flush
		bw.Write(f[hdr:])
		bw.Flush()
		want := 1
		if len(f) > writeBuffer {
			want = 2
		}
		if cc.writes != want || !bytes.Equal(cc.data, f) {
			t.Errorf("a frame of %d bytes went out in %d writes (%d bytes), want %d of %d", n, cc.writes, len(cc.data), want, len(f))
		}
	}
}
