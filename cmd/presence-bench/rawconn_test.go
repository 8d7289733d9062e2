package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// serverFrame is an unmasked frame, as presenced writes them.
func serverFrame(op byte, data []byte) []byte {
	b := []byte{0x80 | op}
	switch n := len(data); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, data...)
}

// TestRawConnFrames: the tool's hand-spoken connection reads presenced's
// frames of every length encoding, answers a ping with a masked pong of
// the same payload, and ends on a close frame.
func TestRawConnFrames(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	c := &rawConn{nc: client, br: bufio.NewReader(client)}
	sizes := []int{0, 5, 125, 126, 300, 65535, 65536, 70000}
	go func() {
		for _, n := range sizes {
			_, _ = server.Write(serverFrame(0x1, bytes.Repeat([]byte{'x'}, n)))
		}
		_, _ = server.Write(serverFrame(0x9, []byte("beat")))
	}()
	for _, n := range sizes {
		op, data, err := c.readFrame()
		if err != nil || op != 0x1 || len(data) != n {
			t.Fatalf("frame of %d bytes: op %x, %d bytes, %v", n, op, len(data), err)
		}
	}
	done := make(chan struct{})
	go func() { c.hold(nil); close(done) }()
	var h [2]byte
	if _, err := io.ReadFull(server, h[:]); err != nil {
		t.Fatal(err)
	}
	if h[0] != 0x8A || h[1] != 0x80|4 {
		t.Fatalf("pong header %x, want 8a 84 (a final, masked pong of 4 bytes)", h)
	}
	var rest [8]byte
	if _, err := io.ReadFull(server, rest[:]); err != nil {
		t.Fatal(err)
	}
	for i := range 4 {
		rest[4+i] ^= rest[i%4]
	}
	if got := string(rest[4:]); got != "beat" {
		t.Fatalf("pong payload %q, want the ping's", got)
	}
	_, _ = server.Write(serverFrame(0x8, nil))
	<-done // hold returns at a close frame
	if got := appendClientFrame(nil, 0x1, make([]byte, 70000)); len(got) != 2+8+4+70000 || got[1] != 0x80|127 {
		t.Fatalf("a 70,000-byte client frame: %d bytes, length byte %x", len(got), got[1])
	}
}
