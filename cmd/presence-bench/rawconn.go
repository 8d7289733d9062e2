package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// rawConn is one of the tool's client connections, spoken by hand: an
// HTTP upgrade, a hello, pongs to presenced's pings, and text messages
// either way. The WebSocket library's client cost the tool 0.4 ms of CPU
// per connect, about as much as presenced's own side, on the same two
// cores (and more per message than this): the figures measured the tool as
// much as presenced.
type rawConn struct {
	nc  net.Conn
	br  *bufio.Reader
	wmu sync.Mutex
}

// maxRawFrame bounds a frame the tool reads from presenced.
const maxRawFrame = 1 << 20

// rawDial opens a connection to the WebSocket URL wsURL through d, with
// the bearer token, says hello as device and waits for ready. The hello
// goes out with the upgrade request (presenced keeps what comes with the
// handshake).
func rawDial(ctx context.Context, d *net.Dialer, wsURL, token, device string) (*rawConn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	u, err := url.Parse(wsURL)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", wsURL, err)
	}
	nc, err := d.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = nc.SetDeadline(deadline)
	c := &rawConn{nc: nc, br: bufio.NewReaderSize(nc, 512)}
	var key [16]byte
	_, _ = rand.Read(key[:])
	req := "GET " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	hello, _ := json.Marshal(map[string]string{"type": "hello", "device": device})
	if _, err := nc.Write(appendClientFrame([]byte(req), 0x1, hello)); err != nil {
		nc.Close()
		return nil, err
	}
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		nc.Close()
		return nil, fmt.Errorf("upgrade answered %s: %s", res.Status, body)
	}
	for {
		op, data, err := c.readFrame()
		if err != nil {
			nc.Close()
			return nil, err
		}
		if op == 0x9 {
			if err := c.write(0xA, data); err != nil {
				nc.Close()
				return nil, err
			}
			continue
		}
		var m struct{ Type, Code string }
		if op != 0x1 || json.Unmarshal(data, &m) != nil || m.Type != "ready" {
			nc.Close()
			if m.Type == "error" && m.Code == "serviceNotAvailable" {
				return nil, fmt.Errorf("%w: hello answered %s", errHelloUnavailable, data)
			}
			return nil, fmt.Errorf("hello answered %s", data)
		}
		break
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// hold answers presenced's pings until the connection ends (it failed,
// was closed, or presenced closed it), handing every text message to
// onText when it is not nil.
func (c *rawConn) hold(onText func(data []byte)) {
	for {
		op, data, err := c.readFrame()
		if err != nil || op == 0x8 {
			return
		}
		switch op {
		case 0x9:
			if c.write(0xA, data) != nil {
				return
			}
		case 0x1:
			if onText != nil {
				onText(data)
			}
		}
	}
}

// send sends one text message.
func (c *rawConn) send(data []byte) error { return c.write(0x1, data) }

// Close closes the connection.
func (c *rawConn) Close() error { return c.nc.Close() }

// readFrame reads one frame of presenced (unmasked, never fragmented).
func (c *rawConn) readFrame() (op byte, data []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var b [2]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(b[:]))
	case 127:
		var b [8]byte
		if _, err := io.ReadFull(c.br, b[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(b[:])
	}
	if h[1]&0x80 != 0 || n > maxRawFrame {
		return 0, nil, fmt.Errorf("bad frame from presenced: %x, %d bytes", h, n)
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return 0, nil, err
	}
	return h[0] & 0x0f, data, nil
}

// write sends one frame (masked, as a client's are).
func (c *rawConn) write(op byte, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(appendClientFrame(nil, op, data))
	return err
}

// appendClientFrame appends a final, masked frame of op carrying data.
func appendClientFrame(b []byte, op byte, data []byte) []byte {
	b = append(b, 0x80|op)
	switch n := len(data); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	var mask [4]byte
	_, _ = rand.Read(mask[:])
	b = append(b, mask[:]...)
	for i, x := range data {
		b = append(b, x^mask[i%4])
	}
	return b
}

// sourceDialers returns one dialer per loopback source address.
func sourceDialers() []*net.Dialer {
	ds := make([]*net.Dialer, sourceAddrs)
	for i := range ds {
		ds[i] = &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}, Timeout: 10 * time.Second}
	}
	return ds
}

// rawDialRetrying is rawDial, again after helloRetryAfter (at most
// helloRetries times) while the hello is answered serviceNotAvailable, as
// a client told to retry later does; retried counts the retries.
func rawDialRetrying(ctx context.Context, d *net.Dialer, wsURL, token, device string, retried interface{ Add(int64) int64 }) (*rawConn, error) {
	for k := 0; ; k++ {
		c, err := rawDial(ctx, d, wsURL, token, device)
		if err == nil || !errors.Is(err, errHelloUnavailable) || k == helloRetries {
			return c, err
		}
		retried.Add(1)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(helloRetryAfter):
		}
	}
}
