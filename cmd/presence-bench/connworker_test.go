package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/presenced/presenced/auth"
)

// TestMain lets the test binary be a connections worker, as the tool
// runs itself (os.Executable is the test binary here).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == connWorkerCmd {
		if err := runConnWorker(context.Background(), os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "presence-bench:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestPlanConnections(t *testing.T) {
	min := watchers + changedUsers
	for _, tc := range []struct {
		n, share int
		own      int
		workers  [][2]int
	}{
		{n: 19500, share: 19500, own: 19500},
		{n: 1000, share: 19500, own: 1000},
		{n: min, share: min, own: min},
		// 50,000 over three processes of 19,500 at most: even shares.
		{n: 50000, share: 19500, own: 16667, workers: [][2]int{{16667, 33334}, {33334, 50000}}},
		// The tool keeps at least the watchers and changers.
		{n: 1500, share: 700, own: 660, workers: [][2]int{{660, 1080}, {1080, 1500}}},
		{n: 19501, share: 19500, own: 9751, workers: [][2]int{{9751, 19501}}},
	} {
		p := planConnections(tc.n, tc.share)
		if p.Own != tc.own || fmt.Sprint(p.Workers) != fmt.Sprint(tc.workers) {
			t.Errorf("planConnections(%d, %d) = %+v, want own %d, workers %v", tc.n, tc.share, p, tc.own, tc.workers)
		}
		// Every connection is held once, no process above its share.
		total, next := p.Own, p.Own
		for _, w := range p.Workers {
			if w[0] != next || w[1] <= w[0] || w[1]-w[0] > tc.share {
				t.Errorf("planConnections(%d, %d): worker range %v", tc.n, tc.share, w)
			}
			total += w[1] - w[0]
			next = w[1]
		}
		if total != tc.n || p.Own > tc.share || p.Own < min {
			t.Errorf("planConnections(%d, %d) = %+v: holds %d", tc.n, tc.share, p, total)
		}
	}
}

func TestConnShare(t *testing.T) {
	t.Setenv(connShareEnv, "")
	if s, err := connShare(20000); err != nil || s != 20000-fdMargin {
		t.Errorf("connShare(20000) = %d, %v", s, err)
	}
	t.Setenv(connShareEnv, "700")
	if s, err := connShare(20000); err != nil || s != 700 {
		t.Errorf("with %s=700: %d, %v", connShareEnv, s, err)
	}
	// It lowers the share, never raises it above the limit.
	t.Setenv(connShareEnv, "900000")
	if s, err := connShare(20000); err != nil || s != 20000-fdMargin {
		t.Errorf("with %s=900000: %d, %v", connShareEnv, s, err)
	}
	for _, bad := range []string{"x", "-1", "100"} {
		t.Setenv(connShareEnv, bad)
		if _, err := connShare(20000); err == nil {
			t.Errorf("%s=%q accepted", connShareEnv, bad)
		}
	}
	t.Setenv(connShareEnv, "")
	if _, err := connShare(1000); err == nil {
		t.Error("a limit of 1000 leaves too few for the watchers, but was accepted")
	}
}

func TestParseConnReport(t *testing.T) {
	r, err := parseConnReport([]byte(`{"type":"connected","connected":5,"errors":1,"first_error":"refused","connect_seconds":1.5,"dropped":2}`))
	if err != nil || r != (connReport{Type: reportConnected, Connected: 5, Errors: 1, FirstError: "refused", ConnectSeconds: 1.5, Dropped: 2}) {
		t.Errorf("connected: %+v, %v", r, err)
	}
	if r, err := parseConnReport([]byte(`{"type":"failed"}`)); err != nil || r.Error == "" {
		t.Errorf("failed without a reason: %+v, %v", r, err)
	}
	for _, ok := range []string{`{"type":"prepared"}`, `{"type":"status","dropped":0}`} {
		if _, err := parseConnReport([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{``, `{`, `[]`, `{"type":"hello"}`, `{}`, `{"type":"connected","errors":-1}`,
		`{"type":"status","dropped":-3}`, `{"type":"connected","connected":"5"}`, strings.Repeat("x", 500)} {
		if _, err := parseConnReport([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		} else if len(err.Error()) > 300 {
			t.Errorf("%q: error of %d bytes", bad, len(err.Error()))
		}
	}
}

func TestSpread(t *testing.T) {
	if got := describeSpread(spread(0, watchers, 3), []string{"n1", "n2", "n3"}); got != "217 on n1, 217 on n2, 216 on n3" {
		t.Errorf("watchers: %s", got)
	}
	if got := fmt.Sprint(spread(watchers, watchers+changedUsers, 3)); got != "[3 3 4]" {
		t.Errorf("changers: %s", got)
	}
}

// fakeConnect is a /presenced/connect that answers hello with ready and
// then holds the connection until its client closes it.
type fakeConnect struct {
	mu      sync.Mutex
	devices map[string]string // device -> Authorization
	open    sync.WaitGroup
}

func (f *fakeConnect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	f.open.Add(1)
	defer f.open.Done()
	defer c.CloseNow()
	_, data, err := c.Read(r.Context())
	if err != nil {
		return
	}
	var m struct{ Type, Device string }
	if json.Unmarshal(data, &m) != nil || m.Type != "hello" {
		return
	}
	f.mu.Lock()
	f.devices[m.Device] = r.Header.Get("Authorization")
	f.mu.Unlock()
	if c.Write(r.Context(), websocket.MessageText, []byte(`{"type":"ready"}`)) != nil {
		return
	}
	for {
		if _, _, err := c.Read(context.Background()); err != nil {
			return
		}
	}
}

// A worker, in this process, mints its users' tokens with the key file,
// dials its range over the nodes in turn when told to go, reports, answers
// a status command, and closes its connections when its stdin ends.
func TestRunConnWorker(t *testing.T) {
	f := &fakeConnect{devices: map[string]string{}}
	a, b := httptest.NewServer(f), httptest.NewServer(f)
	defer a.Close()
	defer b.Close()
	keyFile := filepath.Join(t.TempDir(), "dev-signing-key.pem")
	if _, err := auth.NewDevIssuer(keyFile); err != nil {
		t.Fatal(err)
	}
	job := connJob{URLs: []string{"ws" + strings.TrimPrefix(a.URL, "http"), "ws" + strings.TrimPrefix(b.URL, "http")},
		KeyFile: keyFile, App: devApp, Seed: 3, From: 5, To: 25}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { done <- runConnWorker(ctx, inR, outW); outW.Close() }()
	lines := bufio.NewScanner(outR)
	send := func(v any) {
		t.Helper()
		line, _ := json.Marshal(v)
		if _, err := inW.Write(append(line, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(want string) connReport {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("no %s report: %v", want, lines.Err())
		}
		r, err := parseConnReport(lines.Bytes())
		if err != nil || r.Type != want {
			t.Fatalf("got %s (%v), want %s", lines.Bytes(), err, want)
		}
		return r
	}
	send(job)
	expect(reportPrepared)
	send(connCommand{Type: cmdGo})
	r := expect(reportConnected)
	if r.Connected != 20 || r.Errors != 0 || r.ConnectSeconds <= 0 {
		t.Errorf("connected: %+v", r)
	}
	send(connCommand{Type: cmdStatus})
	if r := expect(reportStatus); r.Dropped != 0 {
		t.Errorf("status: %+v", r)
	}
	inW.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.open.Wait() // every connection closed
	users := userIDs(3, 25)
	issuer, err := auth.LoadDevIssuer(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	verifier := issuer.Verifier(auth.Config{})
	defer verifier.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.devices) != 20 {
		t.Fatalf("%d devices said hello, want 20", len(f.devices))
	}
	for i := 5; i < 25; i++ {
		authz, ok := f.devices[fmt.Sprintf("bench-%d", i)]
		if !ok {
			t.Fatalf("no connection %d", i)
		}
		p, err := verifier.Verify(ctx, strings.TrimPrefix(authz, "Bearer "))
		if err != nil || p.User != users[i] {
			t.Errorf("connection %d: token of %+v (%v), want user %s", i, p, err, users[i])
		}
	}
}

// A worker without a usable job says why and fails.
func TestRunConnWorkerBadJob(t *testing.T) {
	for _, job := range []string{"{", `{"urls":[],"from":0,"to":5}`, `{"urls":["ws://127.0.0.1:1"],"from":5,"to":5}`,
		`{"urls":["ws://127.0.0.1:1"],"key_file":"/nonexistent/key.pem","from":0,"to":5}`} {
		var out strings.Builder
		err := runConnWorker(context.Background(), strings.NewReader(job+"\n"), &out)
		if err == nil {
			t.Errorf("%s: no error", job)
			continue
		}
		if r, perr := parseConnReport([]byte(strings.TrimSpace(out.String()))); perr != nil || r.Type != reportFailed {
			t.Errorf("%s: reported %q (%v)", job, out.String(), perr)
		}
	}
	if err := runConnWorker(context.Background(), strings.NewReader(""), io.Discard); err == nil {
		t.Error("no job: no error")
	}
}

func TestCountRemoteDropped(t *testing.T) {
	p := &process{out: &tailBuffer{max: 4 << 10}}
	_, _ = p.out.Write([]byte(`{"time":"2026-12-06T21:00:00.5Z","level":"WARN","msg":"redis: ` + remoteDroppedWarning + ` local streams take them; one was dropped","user":"u1"}
{"time":"2026-12-06T21:00:01Z","level":"WARN","msg":"other"}
{"time":"2026-12-06T21:00:02Z","level":"WARN","msg":"redis: ` + remoteDroppedWarning + ` local streams take them; one was dropped","user":"u2"}
{"time":"2026-12-06T21:00:02Z","level":"WARN","msg":"log lines suppressed (at most 5 of one message every 10s)","message":"redis: ` + remoteDroppedWarning + ` this node relays them","suppressed":40}
not json ` + remoteDroppedWarning + `
`))
	c := &ConnectionsResult{PerNode: make([]connNodeResult, 2)}
	c.countRemoteDropped([]*target{{proc: p}, {}}, time.Date(2026, 12, 6, 21, 0, 12, 0, time.UTC))
	if n := c.PerNode[0]; n.RemoteDropped != 42 || n.RemoteDroppedLast != 10 {
		t.Errorf("node 1: %+v", n)
	}
	if n := c.PerNode[1]; n.RemoteDropped != 0 {
		t.Errorf("node 2: %+v", n)
	}
}
