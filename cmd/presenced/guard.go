package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	presence "github.com/presenced/presenced"
)

// The HTTP server's limits.
const (
	// writeTimeout bounds the writing of a response; a handshake with a
	// notification URL must fit in it (--validation-timeout).
	writeTimeout = 30 * time.Second
	// maxHeaderBytes is the most request-line and header bytes a request
	// may carry; beyond, it is answered 431 in Graph's error envelope.
	maxHeaderBytes = 64 << 10
	// hardHeaderBytes is what Go's server reads at most (it adds 4 KiB):
	// a request whose headers exceed even that is answered by Go's own
	// plain-text 431 and the connection closed, as Go's server cannot be
	// made to answer otherwise.
	hardHeaderBytes = 4 * maxHeaderBytes
	// defaultMaxConnections is --max-connections' default.
	defaultMaxConnections = 20000
)

// errorWriter writes an error in Graph's envelope (graphapi.Server.WriteError).
type errorWriter func(w http.ResponseWriter, r *http.Request, err error)

// guard answers, before routing, what the mux would answer outside Graph's
// shape: headers larger than maxHeaderBytes (431), and paths that are not
// canonical (//v1.0/me/presence, /v1.0/./me), which http.ServeMux would
// redirect with an HTML 301, with Graph's JSON 404.
func guard(next http.Handler, writeError errorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if headerBytes(r) > maxHeaderBytes {
			writeError(w, r, &presence.Error{Code: "RequestHeaderFieldsTooLarge", Status: http.StatusRequestHeaderFieldsTooLarge,
				Message: fmt.Sprintf("The request headers exceed the limit of %d bytes.", maxHeaderBytes)})
			return
		}
		if p := r.URL.Path; r.Method != http.MethodConnect && cleanPath(p) != p {
			writeError(w, r, presence.Errorf(presence.CodeNotFound, "Resource not found for the segment '%s'.", oddSegment(p)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headerBytes is about what r's request line and headers took on the wire.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n + 2
}

// cleanPath is the canonical form http.ServeMux redirects to: no empty,
// "." or ".." segments, a trailing slash kept.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// oddSegment is the first empty, "." or ".." segment of p, for the 404's
// message.
func oddSegment(p string) string {
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		if s == "." || s == ".." || (s == "" && i < len(segs)-1) {
			return s
		}
	}
	return ""
}

// limitListener accepts at most n connections at once: Accept waits while
// n are open, leaving further clients in the kernel's backlog.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(ln net.Listener, n int) net.Listener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n)}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: sync.OnceFunc(func() { <-l.sem })}, nil
}

type limitConn struct {
	net.Conn
	release func()
}

// Close closes the connection and frees its slot.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// serveMetrics serves /metrics on its own listener, so that scrapers need
// no access to the API's address. It returns a function that stops it.
func serveMetrics(addr string, reg prometheus.Gatherer, logger *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: writeTimeout}
	go func() { _ = srv.Serve(ln) }()
	logger.Info("metrics listening", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// warnIfDevKeyExposed warns, loudly, when the development signing key can
// be read by users other than its owner: whoever reads it can mint a token
// for any user.
func warnIfDevKeyExposed(file string, logger *slog.Logger, stderr interface{ Write([]byte) (int, error) }) {
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return
	}
	fmt.Fprintf(stderr, "WARNING: the development key %s is readable by others (mode %04o): anyone who can read it can act as any user. Run: chmod 600 %s\n", file, fi.Mode().Perm(), file)
	logger.Warn("development key readable by others", "key", file, "mode", fmt.Sprintf("%04o", fi.Mode().Perm()))
}
