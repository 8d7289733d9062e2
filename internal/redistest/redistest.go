// Package redistest starts real redis-server processes for tests: a
// standalone server on a Unix socket with the settings presenced's
// durability promise needs (append-only file fsynced on every write, no
// eviction), and a three-master Redis Cluster on loopback ports.
//
// When redis-server is not installed, Start and StartCluster skip the test
// with a message saying how to install it, unless the environment variable
// PRESENCED_REQUIRE_REDIS is 1: then the test fails, so CI never passes by
// skipping.
package redistest

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/redisprobe"
)

// RequireEnv is the environment variable that turns a missing redis-server
// from a skipped test into a failed one.
const RequireEnv = "PRESENCED_REQUIRE_REDIS"

// InstallHint says how to get the binaries the tests need.
const InstallHint = "install them with: apt-get install redis-server redis-tools"

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 30 * time.Second

// ServerEnv and CLIEnv name environment variables that replace the
// redis-server and redis-cli found on PATH, to run the tests on another
// build or engine (valkey-server and valkey-cli, say).
const (
	ServerEnv = "PRESENCED_REDIS_SERVER"
	CLIEnv    = "PRESENCED_REDIS_CLI"
)

// Binaries returns the paths of redis-server and redis-cli (or those
// ServerEnv and CLIEnv name), or skips (or fails, with
// PRESENCED_REQUIRE_REDIS=1) the test when one is missing.
func Binaries(t testing.TB) (server, cli string) {
	t.Helper()
	server, err1 := exec.LookPath(cmp.Or(os.Getenv(ServerEnv), "redis-server"))
	cli, err2 := exec.LookPath(cmp.Or(os.Getenv(CLIEnv), "redis-cli"))
	if err := errors.Join(err1, err2); err != nil {
		msg := fmt.Sprintf("redis-server and redis-cli are needed (%v); %s", err, InstallHint)
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s=1: %s", RequireEnv, msg)
		}
		t.Skip(msg)
	}
	return server, cli
}

// Server is one redis-server process that a test started. Its methods are
// safe for concurrent use.
type Server struct {
	t      testing.TB
	bin    string
	args   []string
	dir    string
	socket string // "" for a TCP-only server
	port   int    // 0 for a socket-only server

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
}

// Start starts a standalone redis-server listening only on a Unix socket in
// a new temporary directory, with appendonly yes, appendfsync always, no
// RDB snapshots and maxmemory-policy noeviction, and waits until it answers
// PING. extra arguments are appended to its command line (for example
// "--appendfsync", "everysec"). The server is stopped at the test's
// cleanup.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	bin, _ := Binaries(t)
	// A short directory: a Unix socket path must fit in 108 bytes, and
	// t.TempDir's names are long.
	dir, err := os.MkdirTemp("", "redistest")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "r.sock")
	args := append([]string{"--port", "0", "--unixsocket", socket, "--unixsocketperm", "700"},
		redisprobe.DurableArgs(dir, filepath.Join(dir, "redis.log"))...)
	s := &Server{t: t, bin: bin, args: append(args, extra...), dir: dir, socket: socket}
	t.Cleanup(s.Stop)
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

// URL is the address of the server for presenced's --redis-url:
// unix:///path/to/r.sock for a standalone server, redis://127.0.0.1:port
// for a cluster node.
func (s *Server) URL() string {
	if s.socket != "" {
		return "unix://" + s.socket
	}
	return "redis://" + s.Addr()
}

// Addr is the server's TCP address ("127.0.0.1:port"), or its socket path
// when it listens on no TCP port.
func (s *Server) Addr() string {
	if s.port == 0 {
		return s.socket
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Dir is the server's working directory, where its append-only file is.
func (s *Server) Dir() string { return s.dir }

// PID returns the process id of the running server, or 0 when it is not
// running.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil || isClosed(s.done) {
		return 0
	}
	return s.cmd.Process.Pid
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && !isClosed(s.done) {
		return errors.New("redistest: server already running")
	}
	if s.socket != "" {
		os.Remove(s.socket)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	// Its own process group: a ^C to the test does not reach it first,
	// and Stop ends it by its PID.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redistest: start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(startTimeout)
	for {
		reply, err := s.do("PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		if isClosed(done) {
			return fmt.Errorf("redistest: redis-server exited at start; its log:\n%s", s.log())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redistest: redis-server does not answer PING after %v (last: %q, %v); its log:\n%s",
				startTimeout, reply, err, s.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *Server) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Kill9 kills the server with SIGKILL and waits until it is gone: what it
// had not written to its append-only file is lost.
func (s *Server) Kill9() {
	s.t.Helper()
	s.signal(syscall.SIGKILL)
}

// Pause stops the server with SIGSTOP (it keeps its connections but
// answers nothing) and Resume continues it.
func (s *Server) Pause() { s.sendOnly(syscall.SIGSTOP) }

// Resume continues a server stopped by Pause.
func (s *Server) Resume() { s.sendOnly(syscall.SIGCONT) }

func (s *Server) sendOnly(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && !isClosed(s.done) {
		_ = s.cmd.Process.Signal(sig)
	}
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || isClosed(done) {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused server must see SIGTERM
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts the server again on the same directory, socket and port
// (after Kill9 or Stop), and waits until it has loaded its append-only file
// and answers PING.
func (s *Server) Restart() {
	s.t.Helper()
	s.signal(syscall.SIGKILL)
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Stop ends the server gracefully (SIGTERM, then SIGKILL after 10 s).
// Cleanup calls it; calling it twice is harmless.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Do sends one command to the server on a new connection and returns its
// reply as text: a status or bulk string as is, an integer in decimal, an
// array as its elements joined by newlines, nil as "". A Redis error reply
// is returned as an error.
func (s *Server) Do(args ...string) (string, error) { return s.do(args...) }

// MustDo is Do that fails the test on an error.
func (s *Server) MustDo(args ...string) string {
	s.t.Helper()
	r, err := s.do(args...)
	if err != nil {
		s.t.Fatalf("redis %v: %v", args, err)
	}
	return r
}

func (s *Server) do(args ...string) (string, error) {
	network, addr := "unix", s.socket
	if s.port != 0 {
		network, addr = "tcp", s.Addr()
	}
	return redisprobe.Do(network, addr, args...)
}

// Info returns one field of INFO (for example "used_memory"), or "" when
// absent.
func (s *Server) Info(field string) string {
	s.t.Helper()
	info := s.MustDo("INFO")
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), field+":"); ok {
			return v
		}
	}
	return ""
}
