package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// baselineCmd is the hidden subcommand that serves the baseline. The tool
// runs it as a child process, so that the baseline, like presenced, is a
// process of its own competing with the client for the same cores.
const baselineCmd = "baseline-server"

var baselineListening = regexp.MustCompile(`^baseline listening on http://(\S+)$`)

// startBaseline starts this program as the baseline server, holding the
// users of seed.
func startBaseline(ctx context.Context, users int, seed uint64) (*process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start baseline: %w", err)
	}
	args := []string{baselineCmd, "--users", strconv.Itoa(users), "--seed", strconv.FormatUint(seed, 10)}
	return startProcess(ctx, targetBaseline, self, args, baselineListening, time.Minute)
}

// runBaseline serves the baseline on an ephemeral port of 127.0.0.1 until
// ctx ends.
func runBaseline(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(baselineCmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	users := fs.Int("users", defaultLoadUsers, "users held in the map")
	seed := fs.Uint64("seed", 1, "seed of the user ids")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *users < 0 || *users > maxUsers {
		return fmt.Errorf("--users: want 0 to %d, got %d", maxUsers, *users)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	// The same server settings as presenced's.
	srv := &http.Server{
		Handler:           newBaselineHandler(userIDs(*seed, *users)),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stdout, "baseline listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("baseline: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("baseline: shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("baseline: %w", err)
	}
	return nil
}

// baselinePresence is the object the baseline GET answers: presenced's
// shape, about 270 bytes of JSON.
type baselinePresence struct {
	Context        string      `json:"@odata.context"`
	ID             string      `json:"id"`
	Availability   string      `json:"availability"`
	Activity       string      `json:"activity"`
	StatusMessage  *string     `json:"statusMessage"`
	OutOfOffice    baselineOOF `json:"outOfOfficeSettings"`
	SequenceNumber string      `json:"sequenceNumber"`
}

type baselineOOF struct {
	Message       *string `json:"message"`
	IsOutOfOffice bool    `json:"isOutOfOffice"`
}

// baselineSet is the body the baseline POST decodes: setPresence's.
type baselineSet struct {
	SessionID          string `json:"sessionId"`
	Availability       string `json:"availability"`
	Activity           string `json:"activity"`
	ExpirationDuration string `json:"expirationDuration"`
}

// newBaselineHandler returns the bare net/http server the tool compares
// presenced with, on presenced's paths: a POST that decodes a
// setPresence-sized JSON body and answers 200, and a GET that encodes a
// user's object from a map.
func newBaselineHandler(users []string) http.Handler {
	var mu sync.RWMutex
	m := make(map[string]*baselinePresence, len(users))
	for i, u := range users {
		p := sessionPairs[i%len(sessionPairs)]
		m[u] = &baselinePresence{
			Context: "http://127.0.0.1:8080/v1.0/$metadata#users('" + u + "')/presence/$entity",
			ID:      u, Availability: p[0], Activity: p[1], SequenceNumber: "A0000000001",
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1.0/users/{id}/presence/setPresence", func(w http.ResponseWriter, r *http.Request) {
		var body baselineSet
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.SessionID == "" {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	})
	mux.HandleFunc("GET /v1.0/users/{id}/presence", func(w http.ResponseWriter, r *http.Request) {
		mu.RLock()
		p, ok := m[r.PathValue("id")]
		mu.RUnlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		body, err := json.Marshal(p)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	return mux
}
