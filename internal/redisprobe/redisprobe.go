// Package redisprobe sends one command to a Redis server on a connection
// of its own and reads the reply as text: for starting, checking and
// stopping redis-server processes (tests, the load tool), not for serving.
package redisprobe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Do sends args as one command to the server at addr on network ("unix"
// or "tcp") and returns a status, integer or bulk reply as text, the
// elements of an array reply joined by newlines, and "" for a nil reply.
// A Redis error reply is returned as an error.
func Do(network, addr string, args ...string) (string, error) {
	c, err := net.DialTimeout(network, addr, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		return "", err
	}
	return readReply(bufio.NewReader(c))
}

// readReply reads one RESP2 reply.
func readReply(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("redis: empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		parts := make([]string, n)
		for i := range parts {
			if parts[i], err = readReply(r); err != nil {
				return "", err
			}
		}
		return strings.Join(parts, "\n"), nil
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line)
}

// DurableArgs returns the redis-server arguments every server started for
// presenced's tests and load tool shares: data in dir, each write in the
// append-only file and fsynced before its answer, no snapshots, no
// eviction, in the foreground, logging to logfile ("" for stdout). The
// caller adds where it listens.
func DurableArgs(dir, logfile string) []string {
	return []string{
		"--dir", dir,
		"--appendonly", "yes",
		"--appendfsync", "always",
		"--save", "",
		"--maxmemory-policy", "noeviction",
		"--daemonize", "no",
		"--logfile", logfile,
	}
}
