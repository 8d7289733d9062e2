// Package e2e is the black-box, end-to-end test suite of presenced: it holds
// the real binary to the project's contract: the conformance cases C1-C12 and the
// rules of the Graph presence specification they sample (see docs/ for the rules).
//
// # How the suite runs
//
// TestMain builds ./cmd/presenced once into a temporary directory (with -race
// when the tests themselves run under the race detector, so data races in the
// server are caught too; PRESENCED_E2E_BIN names a prebuilt binary instead),
// generates an RS256 and an ES256 signing key with auth/authtest, serves
// their JSON Web Key Set from an httptest server, and starts the binary as a
// child process:
//
//	presenced --addr 127.0.0.1:<free port> --data <tmp> --test-hooks \
//	          --jwks-url <httptest URL> --issuer <iss> --audience https://graph.microsoft.com \
//	          --webhook-ca-file <PEM of httptest's TLS certificate> --validation-timeout 1s
//
// The webhook CA lets change notifications go to real TLS receivers
// (httptest.NewTLSServer, valid for 127.0.0.1; see webhook_test.go); the
// short validation timeout keeps the handshake-timeout case (C11 #93) quick.
//
// It polls GET /healthz with a deadline (never a fixed sleep), runs the tests,
// then stops the server with SIGTERM and requires a clean exit (and no
// "DATA RACE" report in its log). The server's log is printed when a test
// fails. A few tests start short-lived servers of their own (environment
// configuration, --jwks-file, --public-url, development auth mode, restarts,
// JWKS rotation, the default rate limit): startTestServer, with hookedArgs
// for one set up like the main server, and startRestartableServer with
// startServerOn for a restart on the same data and port.
//
// # Isolation without restarts
//
// Every test draws a fresh fixture (newFixture): random tenant, app (A, B)
// and user (U1, U2, U3) GUIDs, and the conformance tokens D1r, D1ra, D1rw,
// D1x, D2ra, APPr, APPrw, APPBrw, APPx and MSA (plus D2rw and APPBr) minted
// for them (fixture.tok), RS256 unless the fixture says ES256.
// Because state and throttling buckets are keyed by tenant, tests never see
// each other's state on the one shared server. Tests do not use t.Parallel:
// the test clock and the rate limit are global to the server.
//
// # Time
//
// With --test-hooks the service clock stands still and moves only through
// POST /_test/clock/advance (advance). Tests set up their own state, then
// advance, and read relative to their own t0; nothing ever sleeps. Advancing
// moves every user's clocks, which is harmless because every test arranges
// its state right before it advances.
//
// # Checks on every response
//
// The request helper (server.do) checks every Graph response: a GUID
// request-id header, client-request-id echoed (or equal to request-id), and,
// for every non-2xx response, the Graph error envelope of C12 #116 (code,
// message, innerError.date without zone, innerError request-id and
// client-request-id equal to the headers, WWW-Authenticate on 401, an integer
// Retry-After >= 1 on 429); a 2xx body must be JSON labelled
// application/json, every Graph response carries Date, and every JSON one
// OData-Version: 4.0 (graph-presence.md 1.0); wantEmptyOK holds every
// action to "200, empty body, no Content-Type".
//
// # Throttling
//
// The main server runs with the default budget (1500 per 30 s, decision 8).
// Tests that lower it (PUT /_test/limits, setLimit/limitFor) restore the
// default and advance the clock 30 s in a cleanup, so the global limit never
// leaks into another test.
//
// # Where the cases are
//
//	get_test.go            C1 (GET presence, aliases, $select, ids, headers)
//	bulk_test.go           C2 (getPresencesByUserId) and GET /communications/presences?$filter
//	setpresence_test.go    C3, C4, C5
//	clear_test.go          C6
//	preferred_test.go      C7
//	statusmessage_test.go  C8 (Windows and IANA zones, visibility)
//	time_test.go           C9 (fades and expiries through /_test/clock/advance)
//	aggregation_test.go    C10 and the clientSessions, outOfOffice, calendarBusy, presenceEnabled hooks
//	errors_test.go         C12 #116, #122, 404s, bodies (gzip, 413, content type, unknown parameters)
//	throttle_test.go       C12 #117, the default budget, throttled batch requests
//	batch_test.go          C12 #119, dependsOn and 424, batch limits, authorisation inside a batch
//	auth_test.go           RS256/ES256, bad tokens (expired, audience, issuer, unknown key, alg none…), JWKS rotation
//	tenant_test.go         decision 2 (tenant isolation)
//	rules_test.go          sequenceNumber rules, GUID case, @odata.context base, edges of validation
//	sdk_test.go            Go-SDK-like requests (gzip, client-request-id), chunked bodies
//	operator_test.go       environment variables, --jwks-file, --public-url, no --test-hooks,
//	                       development auth mode, state surviving a restart
//	webhook_test.go        the TLS webhook receiver (sink), rich-notification decryption and
//	                       validationToken checks, subscription helpers
//	notify_test.go         C11 (subscriptions: create, handshake, validation, payloads, renew,
//	                       delete, redelivery, reauthorize)
//	notify_rules_test.go   notification rules: every visible change (API, clock, hooks) and no
//	                       other, order, recovery, lifecycle, list, tenants, operator flags
//	notify_delivery_test.go  retry schedule and 4-hour drop, failing receivers, slow endpoints
//	notify_crash_test.go   acknowledged changes are notified after SIGKILL and restart
//	stream_test.go         the Server-Sent Events presence stream
//	hardening_test.go      bounded resources (#9): stream caps, slow readers, token expiry and
//	                       /presenced/stream; private webhook addresses refused; a slow receiver
//	                       delays only its own; subscription writes throttled; windows in real time
//	measure_test.go        opt-in measurements (streams, fair delivery) that assert no duration
//	review_presence_test.go  cases found reviewing sections 1-3, 5 and 6 rule by rule ($batch
//	                       headers, the $filter cap, Edm.Duration range)
//	review_notify_test.go  cases found reviewing section 4 (validation order, get and list
//	                       permissions, the handshake's query string, expiry)
//	worklocation_test.go   work location (1.10): per-version rules, validation, layers, a
//	                       zone's midnight, plan segments, DST, the work plan API, kill -9
//	metadata_walk_test.go  every presence and work-plan operation of Graph's metadata
//	                       (testdata/graph-metadata-paths.txt), nullable parameters
//	hooks_test.go          the emulator's controls: GET /_test/, PUT /_test/clock, reset, the
//	                       state dump, and the durable test clock across restarts and kill -9
//	newcomer_test.go       the command line (--help, version, token and its key), refused
//	                       tokens in the log, an unreachable JWKS and /readyz, SIGINT, errors
//	                       that say why (handshake causes, valid pairs)
//	cors_test.go           --cors-origins: preflights, allowed and refused origins
//	readme_test.go         the README's shell examples (docs/examples) run against a real server
//
// Run it with `go test ./e2e/` (and -race) from the module root; it takes a
// few seconds once the binary is built.
package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "time/tzdata" // status-message expiries are computed in named zones

	"github.com/presenced/presenced/auth/authtest"
)

// Fixed values of the suite.
const (
	issuer           = "https://sts.e2e.presenced.test/issuer/"
	audience         = "https://graph.microsoft.com"
	consumerTenant   = "9188040d-6c67-4c5b-b112-36a304b66dad"
	defaultRateLimit = 1500 // the server's default (--rate-limit), decision 8
)

// The shared state of the suite, set up by TestMain.
var (
	binary string // the presenced binary under test
	// webhookCA is a PEM file holding the certificate every
	// httptest.NewTLSServer serves (valid for 127.0.0.1); the servers trust
	// it through --webhook-ca-file, so test webhooks are real TLS receivers.
	webhookCA string
	keys      *authtest.KeySet // signs the tokens of the fixtures
	jwks      *jwksServer      // serves the keys' JWKS to the main server
	srv       *server          // the main server
	tmpRoot   string           // scratch space of the whole run
	// raceEnabled is set by race_test.go when the race detector is on.
	raceEnabled bool
)

var client = &http.Client{
	Timeout:   20 * time.Second,
	Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32},
}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	var err error
	tmpRoot, err = os.MkdirTemp("", "presenced-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(tmpRoot)

	if binary, err = buildBinary(tmpRoot); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building presenced:", err)
		return 1
	}
	keys = authtest.NewKeySet(mainTB{})
	jwks = newJWKSServer(keys.JWKS())
	defer jwks.Close()
	if webhookCA, err = writeWebhookCA(tmpRoot); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: webhook CA:", err)
		return 1
	}

	srv, err = startServer(binary, []string{
		"--data", filepath.Join(tmpRoot, "main-data"),
		"--test-hooks",
		"--jwks-url", jwks.URL(),
		"--issuer", issuer,
		"--audience", audience,
		"--webhook-ca-file", webhookCA,
		// C11 #93 waits for the handshake to time out; one second keeps
		// that case quick (Graph's 10 s is the flag's default).
		"--validation-timeout", validationTimeout.String(),
	}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: starting presenced:", err)
		return 1
	}
	code := m.Run()
	if err := srv.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: the main server did not stop cleanly:", err)
		code = 1
	}
	if log := srv.log.String(); strings.Contains(log, "DATA RACE") {
		fmt.Fprintln(os.Stderr, "e2e: the server reported a data race")
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "---- presenced log (last 80 lines) ----\n%s\n", tail(srv.log.String(), 80))
	}
	return code
}

// validationTimeout is the main server's --validation-timeout.
const validationTimeout = time.Second

// writeWebhookCA writes the PEM of the certificate httptest TLS servers
// share into dir and returns the file's name.
func writeWebhookCA(dir string) (string, error) {
	ts := httptest.NewUnstartedServer(http.NotFoundHandler())
	ts.StartTLS()
	cert := ts.Certificate()
	ts.Close()
	if cert == nil {
		return "", errors.New("httptest served no certificate")
	}
	file := filepath.Join(dir, "webhook-ca.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	return file, os.WriteFile(file, data, 0o600)
}

// mainTB lets authtest make keys in TestMain, which has no testing.TB. Only
// the methods authtest calls outside ServeJWKS are implemented.
type mainTB struct{ testing.TB }

func (mainTB) Helper()                           {}
func (mainTB) Fatalf(format string, args ...any) { panic("authtest: " + fmt.Sprintf(format, args...)) }

// buildBinary builds ./cmd/presenced of the enclosing module into dir.
func buildBinary(dir string) (string, error) {
	if b := os.Getenv("PRESENCED_E2E_BIN"); b != "" {
		return b, nil
	}
	root := ".."
	if out, err := exec.Command("go", "env", "GOMOD").Output(); err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			root = filepath.Dir(gomod)
		}
	}
	bin := filepath.Join(dir, "presenced")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "./cmd/presenced")
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// ---------------------------------------------------------------------------
// JWKS server

// jwksServer serves a JSON Web Key Set that tests can extend (key rotation),
// and counts how often it was fetched.
type jwksServer struct {
	ts      *httptest.Server
	mu      sync.Mutex
	keys    []json.RawMessage
	fetches atomic.Int64
}

func newJWKSServer(set []byte) *jwksServer {
	j := &jwksServer{}
	j.add(set)
	j.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.fetches.Add(1)
		j.mu.Lock()
		body, _ := json.Marshal(map[string]any{"keys": j.keys})
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	return j
}

// add publishes the keys of a JWKS document next to those already served.
func (j *jwksServer) add(set []byte) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(set, &doc); err != nil {
		panic("e2e: bad JWKS: " + err.Error())
	}
	j.mu.Lock()
	j.keys = append(j.keys, doc.Keys...)
	j.mu.Unlock()
}

func (j *jwksServer) URL() string { return j.ts.URL + "/discovery/keys" }
func (j *jwksServer) Close()      { j.ts.Close() }

// ---------------------------------------------------------------------------
// Child processes

// server is one running presenced.
type server struct {
	base   string // http://127.0.0.1:port
	cmd    *exec.Cmd
	log    *syncBuffer
	exited chan struct{}
	err    error // of Wait, once exited is closed
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// childEnv is the harness's environment without any PRESENCED_ variable, so
// the caller's shell cannot change what a server is started with.
func childEnv(extra []string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PRESENCED_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts bin with args and env and waits until /healthz answers
// 200. It picks a free port and passes it as --addr, or, when env holds the
// placeholder "PRESENCED_ADDR=", as PRESENCED_ADDR. It retries on another
// port if the process dies first (a port taken between freePort and the
// bind).
func startServer(bin string, args, env []string) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		a := slices.Clone(args)
		e := slices.Clone(env)
		if slices.Contains(e, "PRESENCED_ADDR=") {
			// The caller asks for the address to come from the environment.
			e = slices.DeleteFunc(e, func(s string) bool { return s == "PRESENCED_ADDR=" })
			e = append(e, "PRESENCED_ADDR="+addr)
		} else {
			a = append([]string{"--addr", addr}, a...)
		}
		s, err := spawn(bin, addr, a, e)
		if err != nil {
			return nil, err
		}
		if err := s.waitHealthy(30 * time.Second); err != nil {
			lastErr = fmt.Errorf("%w\n%s", err, tail(s.log.String(), 40))
			_ = s.stop()
			continue
		}
		return s, nil
	}
	return nil, lastErr
}

// startServerOn starts the binary on a fixed address (a restart on the same
// port) and waits until it is healthy; it retries briefly while the port is
// still taken.
func startServerOn(addr string, args []string) (*server, error) {
	var lastErr error
	for attempt := 0; attempt < 20; attempt++ {
		s, err := spawn(binary, addr, append([]string{"--addr", addr}, args...), nil)
		if err != nil {
			return nil, err
		}
		if err := s.waitHealthy(30 * time.Second); err != nil {
			lastErr = fmt.Errorf("%w\n%s", err, tail(s.log.String(), 40))
			select {
			case <-s.exited: // probably the port: try again
				time.Sleep(100 * time.Millisecond)
				continue
			default:
				_ = s.cmd.Process.Kill()
				<-s.exited
				return nil, lastErr
			}
		}
		return s, nil
	}
	return nil, lastErr
}

// spawn starts bin with args, in the harness's environment (childEnv) plus
// env, as the server listening on addr; its output goes to the server's log.
func spawn(bin, addr string, args, env []string) (*server, error) {
	s := &server{base: "http://" + addr, log: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = childEnv(env)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	return s, nil
}

// waitHealthy polls GET /healthz until it answers 200, the process exits or
// the deadline passes.
func (s *server) waitHealthy(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("presenced exited before it was healthy: %v", s.err)
		default:
		}
		res, err := client.Get(s.base + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("presenced not healthy within %v (last error: %v)", within, err)
		}
		select {
		case <-s.exited:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM and waits for the process; it kills it after 20 s. It
// returns an error unless the process exited with status 0 after SIGTERM.
func (s *server) stop() error {
	// Connections the transport dialled but never used look "new" to the
	// server, which waits 5 s for them to send a request before treating them
	// as idle; closing them keeps shutdown immediate.
	client.CloseIdleConnections()
	select {
	case <-s.exited:
		return fmt.Errorf("presenced had already exited: %v", s.err)
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		return s.err
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("presenced did not stop within 20 s of SIGTERM; killed")
	}
}

// startTestServer starts a server for one test and stops it (requiring a
// clean exit) when the test ends.
func startTestServer(t *testing.T, args, env []string) *server {
	t.Helper()
	s, err := startServer(binary, args, env)
	if err != nil {
		t.Fatalf("starting presenced %v: %v", args, err)
	}
	stopAtEnd(t, s, fmt.Sprintf("presenced %v", args))
	return s
}

// hookedArgs are the flags of a server set up like the main one (a data
// directory of its own, --test-hooks, the suite's JWKS, issuer, audience and
// webhook CA), followed by extra.
func hookedArgs(t *testing.T, extra ...string) []string {
	return append([]string{
		"--data", filepath.Join(t.TempDir(), "data"),
		"--test-hooks",
		"--jwks-url", jwks.URL(),
		"--issuer", issuer,
		"--audience", audience,
		"--webhook-ca-file", webhookCA,
	}, extra...)
}

// startRestartableServer starts a server (with args, on a free port) that
// the test stops or kills itself, to start another on its data: when the
// test ends it is killed if still running, and its log is reported as
// startTestServer's is.
func startRestartableServer(t *testing.T, args []string) *server {
	t.Helper()
	s, err := startServer(binary, args, nil)
	if err != nil {
		t.Fatalf("starting presenced %v: %v", args, err)
	}
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
		reportLog(t, s, "the first presenced")
	})
	return s
}

// stopAtEnd stops s when the test ends, requiring a clean exit, and reports
// its log.
func stopAtEnd(t *testing.T, s *server, name string) {
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("%s did not stop cleanly: %v", name, err)
		}
		reportLog(t, s, name)
	})
}

// reportLog prints the tail of the server's log when the test failed or the
// server reported a data race, and fails the test on a data race.
func reportLog(t *testing.T, s *server, name string) {
	race := strings.Contains(s.log.String(), "DATA RACE")
	if race || t.Failed() {
		t.Logf("%s log:\n%s", name, tail(s.log.String(), 60))
	}
	if race {
		t.Errorf("%s reported a data race", name)
	}
}

// ---------------------------------------------------------------------------
// HTTP helpers

// resp is one answer, its body kept raw and decoded.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   any // the decoded body when it is JSON
	method string
	path   string
}

func (r *resp) String() string {
	return fmt.Sprintf("%s %s -> %d %s", r.method, r.path, r.Status, truncate(string(r.Body), 600))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// get walks the decoded body: string keys index objects, ints index arrays.
func (r *resp) get(path ...any) (any, bool) { return jget(r.JSON, path...) }

func jget(v any, path ...any) (any, bool) {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			if v, ok = m[k]; !ok {
				return nil, false
			}
		case int:
			a, ok := v.([]any)
			if !ok || k < 0 || k >= len(a) {
				return nil, false
			}
			v = a[k]
		default:
			panic(fmt.Sprintf("jget: bad path element %T", p))
		}
	}
	return v, true
}

// str returns the string at path, or "" when there is none.
func (r *resp) str(path ...any) string {
	v, _ := r.get(path...)
	s, _ := v.(string)
	return s
}

// has reports whether path exists (even with a null value).
func (r *resp) has(path ...any) bool {
	_, ok := r.get(path...)
	return ok
}

type reqConf struct {
	header  http.Header
	host    string
	ct      string
	noCT    bool
	gzip    bool
	chunked bool
}

type reqOpt func(*reqConf)

// withHeader adds a request header.
func withHeader(k, v string) reqOpt {
	return func(c *reqConf) {
		if c.header == nil {
			c.header = http.Header{}
		}
		c.header.Set(k, v)
	}
}

// chunked sends the body with Transfer-Encoding: chunked (no
// Content-Length), as streaming clients do.
func chunked() reqOpt { return func(c *reqConf) { c.chunked = true } }

// withHost sends the request with another Host header.
func withHost(h string) reqOpt { return func(c *reqConf) { c.host = h } }

// noContentType sends a body without a Content-Type header.
func noContentType() reqOpt { return func(c *reqConf) { c.noCT = true } }

// contentType sends the body labelled ct instead of application/json.
func contentType(ct string) reqOpt { return func(c *reqConf) { c.ct = ct } }

// gzipped compresses the body and sends Content-Encoding: gzip, as the Go SDK
// does.
func gzipped() reqOpt { return func(c *reqConf) { c.gzip = true } }

// do sends one request. body is nil (none), []byte or string (sent as is),
// or anything else (sent as JSON). JSON bodies are labelled application/json
// unless an option says otherwise. Every response is checked by checkResponse.
func (s *server) do(t testing.TB, method, path, token string, body any, opts ...reqOpt) *resp {
	t.Helper()
	var c reqConf
	for _, o := range opts {
		o(&c)
	}
	var data []byte
	hasBody := body != nil
	switch b := body.(type) {
	case nil:
	case []byte:
		data = b
	case string:
		data = []byte(b)
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			t.Fatalf("encoding request body: %v", err)
		}
	}
	if c.gzip {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(data)
		_ = zw.Close()
		data = buf.Bytes()
	}
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(data)
		if c.chunked {
			rd = io.MultiReader(rd) // hides the length
		}
	}
	req, err := http.NewRequest(method, s.base+path, rd)
	if err != nil {
		t.Fatalf("building %s %s: %v", method, path, err)
	}
	if hasBody && !c.noCT {
		ct := c.ct
		if ct == "" {
			ct = "application/json"
		}
		req.Header.Set("Content-Type", ct)
	}
	if c.gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, vs := range c.header {
		req.Header[k] = vs
	}
	if c.host != "" {
		req.Host = c.host
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	r := &resp{Status: res.StatusCode, Header: res.Header, Body: raw, method: method, path: path}
	if len(bytes.TrimSpace(raw)) > 0 && json.Valid(raw) {
		_ = json.Unmarshal(raw, &r.JSON)
	}
	checkResponse(t, r, req.Header.Get("client-request-id"))
	return r
}

var (
	guidRE      = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	errorDateRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$`)
	seqRE       = regexp.MustCompile(`^[A-Z][0-9]{10,}$`)
)

// isGraphPath reports whether the answer comes from the Graph surface (as
// opposed to the test hooks or the operational endpoints).
func isGraphPath(path string) bool {
	p, _, _ := strings.Cut(path, "?")
	switch p {
	case "/healthz", "/readyz", "/metrics":
		return false
	}
	return !strings.HasPrefix(p, "/_test/")
}

// checkResponse holds every response to the rules common to all of them
// (graph-presence.md 1.0 "Common response headers", 5.1, 5.3; C1 #12, C12
// #116).
func checkResponse(t testing.TB, r *resp, sentClientID string) {
	t.Helper()
	if isGraphPath(r.path) {
		rid := r.Header.Get("request-id")
		if !guidRE.MatchString(rid) {
			t.Errorf("%s: response header request-id = %q, want a GUID", r, rid)
		}
		crid := r.Header.Get("client-request-id")
		want := sentClientID
		if want == "" {
			want = rid
		}
		if crid != want {
			t.Errorf("%s: response header client-request-id = %q, want %q", r, crid, want)
		}
	}
	if r.Status < 200 || r.Status > 299 {
		assertEnvelope(t, r)
	} else if isGraphPath(r.path) && len(r.Body) > 0 {
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || r.JSON == nil {
			t.Errorf("%s: a body of Content-Type %q, want JSON labelled application/json…", r, ct)
		}
	}
	if isGraphPath(r.path) {
		if r.Header.Get("Date") == "" {
			t.Errorf("%s: no Date header", r)
		}
		if v := r.Header.Get("OData-Version"); len(r.Body) > 0 && v != "4.0" {
			t.Errorf("%s: a JSON body with OData-Version %q, want 4.0", r, v)
		}
	}
}

// assertEnvelope checks the Graph error envelope of a non-2xx response (C12
// #116 and graph-presence.md 5.1, 5.3).
func assertEnvelope(t testing.TB, r *resp) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: error Content-Type = %q, want application/json…", r, ct)
	}
	top, ok := r.JSON.(map[string]any)
	if !ok {
		t.Errorf("%s: error body is not a JSON object", r)
		return
	}
	if _, ok := top["error"]; !ok || len(top) != 1 {
		t.Errorf("%s: error body must be exactly one top-level \"error\" object", r)
	}
	if code, ok := jget(top, "error", "code"); !ok || code == "" {
		t.Errorf("%s: error.code missing or empty", r)
	} else if _, ok := code.(string); !ok {
		t.Errorf("%s: error.code is not a string", r)
	}
	if msg, ok := jget(top, "error", "message"); !ok {
		t.Errorf("%s: error.message missing", r)
	} else if _, ok := msg.(string); !ok {
		t.Errorf("%s: error.message is not a string", r)
	}
	if _, ok := jget(top, "error", "innererror"); ok {
		t.Errorf("%s: the envelope spells innererror; Graph sends innerError", r)
	}
	if d := r.str("error", "innerError", "date"); !errorDateRE.MatchString(d) {
		t.Errorf("%s: error.innerError.date = %q, want yyyy-MM-ddTHH:mm:ss", r, d)
	}
	if id := r.str("error", "innerError", "request-id"); id == "" || id != r.Header.Get("request-id") {
		t.Errorf("%s: error.innerError.request-id = %q, response header request-id = %q; want equal and set", r, id, r.Header.Get("request-id"))
	}
	if id := r.str("error", "innerError", "client-request-id"); id == "" || id != r.Header.Get("client-request-id") {
		t.Errorf("%s: error.innerError.client-request-id = %q, response header = %q; want equal and set", r, id, r.Header.Get("client-request-id"))
	}
	switch r.Status {
	case http.StatusUnauthorized:
		if wa := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(wa, "Bearer") {
			t.Errorf("%s: 401 without a WWW-Authenticate: Bearer … header (got %q)", r, wa)
		}
	case http.StatusTooManyRequests:
		assertRetryAfter(t, r.Header.Get("Retry-After"), r.String())
	}
}

// assertRetryAfter checks a Retry-After value: an integer number of seconds,
// at least 1 (graph-presence.md 5.3).
func assertRetryAfter(t testing.TB, v, what string) int {
	t.Helper()
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Errorf("%s: Retry-After = %q, want an integer >= 1", what, v)
	}
	return n
}

// wantStatus fails the test unless r has status.
func wantStatus(t testing.TB, r *resp, status int) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d", r, r.Status, status)
	}
}

// wantError checks an error response's status, code (unless "") and message
// (unless "").
func wantError(t testing.TB, r *resp, status int, code, message string) {
	t.Helper()
	if r.Status != status {
		t.Errorf("%s: status %d, want %d", r, r.Status, status)
		return
	}
	if code != "" {
		if got := r.str("error", "code"); got != code {
			t.Errorf("%s: error.code = %q, want %q", r, got, code)
		}
	}
	if message != "" {
		if got := r.str("error", "message"); got != message {
			t.Errorf("%s: error.message = %q, want %q", r, got, message)
		}
	}
}

// wantEmptyOK checks the success of a presence action: 200, an empty body and
// no Content-Type (graph-presence.md 1.0; DESIGN "What real Graph clients
// need").
func wantEmptyOK(t testing.TB, r *resp) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("%s: status %d, want 200", r, r.Status)
	}
	if len(r.Body) != 0 {
		t.Errorf("%s: action answered a body %q, want none", r, r.Body)
	}
	if ct := r.Header.Values("Content-Type"); len(ct) != 0 {
		t.Errorf("%s: action answered Content-Type %q, want no Content-Type", r, ct)
	}
}

// ---------------------------------------------------------------------------
// Test hooks

// advance moves the service clock forward by an ISO 8601 duration and returns
// the new instant.
func advance(t testing.TB, by string) time.Time {
	t.Helper()
	return advanceOn(t, srv, by)
}

func advanceOn(t testing.TB, s *server, by string) time.Time {
	t.Helper()
	r := s.do(t, "POST", "/_test/clock/advance", "", map[string]string{"by": by})
	wantStatus(t, r, http.StatusOK)
	return parseNow(t, r)
}

// clockNow reads the service clock.
func clockNow(t testing.TB) time.Time {
	t.Helper()
	return nowOn(t, srv)
}

func parseNow(t testing.TB, r *resp) time.Time {
	t.Helper()
	now, err := time.Parse(time.RFC3339Nano, r.str("now"))
	if err != nil {
		t.Fatalf("%s: now is not RFC 3339: %v", r, err)
	}
	if now.Location() != time.UTC {
		t.Errorf("%s: now %q is not UTC", r, r.str("now"))
	}
	return now
}

// setLimit changes the per-(app, tenant) presence budget of the main server.
func setLimit(t testing.TB, n int) {
	t.Helper()
	r := srv.do(t, "PUT", "/_test/limits", "", map[string]int{"presencePer30s": n})
	wantStatus(t, r, http.StatusNoContent)
}

// ---------------------------------------------------------------------------
// Fixtures and tokens

// newGUID returns a random (version 4) GUID in lower case.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// versions are the two Graph roots; every case holds on both.
var versions = []string{"v1.0", "beta"}

// fixture is the conformance notation of one test: tenant T, apps A and B,
// users U1-U3, all fresh, on a server, for a version root.
type fixture struct {
	t                testing.TB
	s                *server
	v                string // "v1.0" or "beta"
	T, A, B          string
	U1, U2, U3       string
	alg              string // signing algorithm of tok: RS256 or ES256
	issuer, audience string // of the tokens minted
}

// newFixture returns a fixture of fresh ids on the main server, /v1.0.
func newFixture(t testing.TB) *fixture {
	return &fixture{
		t: t, s: srv, v: "v1.0",
		T: newGUID(), A: newGUID(), B: newGUID(),
		U1: newGUID(), U2: newGUID(), U3: newGUID(),
		alg: "RS256", issuer: issuer, audience: audience,
	}
}

// eachVersion runs body once per version root, each with a fresh fixture.
func eachVersion(t *testing.T, body func(t *testing.T, f *fixture)) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			f := newFixture(t)
			f.v = v
			body(t, f)
		})
	}
}

// in returns a copy of f that reports to t (a subtest's).
func (f *fixture) in(t testing.TB) *fixture {
	g := *f
	g.t = t
	return &g
}

// inTenant returns a copy of f with the same apps and users in another
// (fresh) tenant.
func (f *fixture) inTenant(tenant string) *fixture {
	g := *f
	g.T = tenant
	return &g
}

// p is a path under the fixture's version root.
func (f *fixture) p(format string, args ...any) string {
	return "/" + f.v + fmt.Sprintf(format, args...)
}

// claims are the registered and Entra ID claims every token carries.
func (f *fixture) claims(tenant string) map[string]any {
	now := time.Now()
	return map[string]any{
		"aud": f.audience,
		"iss": f.issuer,
		"iat": now.Add(-time.Minute).Unix(),
		"nbf": now.Add(-time.Minute).Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"tid": tenant,
	}
}

// delegated returns the claims of a delegated (v2.0 style: azp) token.
func (f *fixture) delegated(tenant, user, app string, scopes ...string) map[string]any {
	c := f.claims(tenant)
	c["ver"] = "2.0"
	c["oid"] = user
	c["azp"] = app
	c["scp"] = strings.Join(scopes, " ")
	return c
}

// application returns the claims of an application (v1.0 style: appid)
// token; no roles leaves the roles claim out.
func (f *fixture) application(tenant, app string, roles ...string) map[string]any {
	c := f.claims(tenant)
	c["ver"] = "1.0"
	c["oid"] = newGUID() // the service principal
	c["appid"] = app
	c["idtyp"] = "app"
	if len(roles) > 0 {
		c["roles"] = roles
	}
	return c
}

// tokClaims are the claims of the named conformance token (conformance.md
// "Fixtures and notation").
func (f *fixture) tokClaims(name string) map[string]any {
	switch name {
	case "D1r":
		return f.delegated(f.T, f.U1, f.A, "Presence.Read")
	case "D1ra":
		return f.delegated(f.T, f.U1, f.A, "Presence.Read.All")
	case "D1rw":
		return f.delegated(f.T, f.U1, f.A, "Presence.ReadWrite")
	case "D1x":
		return f.delegated(f.T, f.U1, f.A, "User.Read")
	case "D2ra":
		return f.delegated(f.T, f.U2, f.A, "Presence.Read.All")
	case "D2rw":
		return f.delegated(f.T, f.U2, f.A, "Presence.ReadWrite")
	case "APPr":
		return f.application(f.T, f.A, "Presence.Read.All")
	case "APPrw":
		return f.application(f.T, f.A, "Presence.ReadWrite.All")
	case "APPBrw":
		return f.application(f.T, f.B, "Presence.ReadWrite.All")
	case "APPBr":
		return f.application(f.T, f.B, "Presence.Read.All")
	case "APPx":
		return f.application(f.T, f.A)
	case "MSA":
		return f.delegated(consumerTenant, f.U1, f.A, "Presence.ReadWrite")
	}
	f.t.Fatalf("unknown token fixture %q", name)
	return nil
}

// tok mints the named conformance token with the fixture's algorithm.
func (f *fixture) tok(name string) string { return f.tokAlg(name, f.alg) }

// tokAlg mints the named conformance token, signed RS256 or ES256.
func (f *fixture) tokAlg(name, alg string) string { return keys.Mint(alg, f.tokClaims(name)) }

// appOf is the app id (and so the setPresence sessionId) of a named token.
func (f *fixture) appOf(name string) string {
	c := f.tokClaims(name)
	if a, ok := c["azp"].(string); ok {
		return a
	}
	return c["appid"].(string)
}

// get sends GET path with the named token ("" for none).
func (f *fixture) get(path, tokName string, opts ...reqOpt) *resp {
	f.t.Helper()
	return f.s.do(f.t, "GET", path, f.tokOrEmpty(tokName), nil, opts...)
}

// post sends POST path with the named token and body.
func (f *fixture) post(path, tokName string, body any, opts ...reqOpt) *resp {
	f.t.Helper()
	return f.s.do(f.t, "POST", path, f.tokOrEmpty(tokName), body, opts...)
}

func (f *fixture) tokOrEmpty(name string) string {
	if name == "" {
		return ""
	}
	return f.tok(name)
}

// getp is GETP(U): GET /users/{U}/presence with D1ra; it requires 200.
func (f *fixture) getp(user string) *resp {
	f.t.Helper()
	r := f.get(f.p("/users/%s/presence", user), "D1ra")
	wantStatus(f.t, r, http.StatusOK)
	return r
}

// wantPresence checks GETP(user) shows availability/activity.
func (f *fixture) wantPresence(user, availability, activity string) *resp {
	f.t.Helper()
	r := f.getp(user)
	if a, b := r.str("availability"), r.str("activity"); a != availability || b != activity {
		f.t.Errorf("GETP(%s) = %s/%s, want %s/%s", short(user), a, b, availability, activity)
	}
	return r
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// setBody is the body of setPresence; dur "" leaves expirationDuration out.
func setBody(session, availability, activity, dur string) map[string]any {
	b := map[string]any{"sessionId": session, "availability": availability, "activity": activity}
	if dur != "" {
		b["expirationDuration"] = dur
	}
	return b
}

// set is SET(U, pair, dur, token) and returns the answer.
func (f *fixture) set(user, availability, activity, dur, tokName string) *resp {
	f.t.Helper()
	return f.post(f.p("/users/%s/presence/setPresence", user), tokName, setBody(f.appOf(tokName), availability, activity, dur))
}

// mustSet is SET, requiring 200 with an empty body.
func (f *fixture) mustSet(user, availability, activity, dur, tokName string) {
	f.t.Helper()
	wantEmptyOK(f.t, f.set(user, availability, activity, dur, tokName))
}

// clear is clearPresence of the named token's session on user.
func (f *fixture) clear(user, tokName string) *resp {
	f.t.Helper()
	return f.post(f.p("/users/%s/presence/clearPresence", user), tokName, map[string]any{"sessionId": f.appOf(tokName)})
}

// preferred is setUserPreferredPresence; dur "" leaves expirationDuration out.
func (f *fixture) preferred(user, availability, activity, dur, tokName string) *resp {
	f.t.Helper()
	b := map[string]any{"availability": availability, "activity": activity}
	if dur != "" {
		b["expirationDuration"] = dur
	}
	return f.post(f.p("/users/%s/presence/setUserPreferredPresence", user), tokName, b)
}

// hookPath is a per-user test-hook path of the fixture's tenant.
func (f *fixture) hookPath(user, rest string) string {
	return "/_test/tenants/" + f.T + "/users/" + user + "/" + rest
}

// clientSession creates or refreshes a simulated Teams-client session; dur ""
// leaves the hook's default (P8D).
func (f *fixture) clientSession(user, sid, availability, activity, dur string) {
	f.t.Helper()
	b := map[string]any{"availability": availability, "activity": activity}
	if dur != "" {
		b["expirationDuration"] = dur
	}
	r := f.s.do(f.t, "PUT", f.hookPath(user, "clientSessions/"+sid), "", b)
	wantStatus(f.t, r, http.StatusNoContent)
}

// outOfOffice sets the out-of-office overlay; message nil sends none.
func (f *fixture) outOfOffice(user string, on bool, message *string) {
	f.t.Helper()
	b := map[string]any{"isOutOfOffice": on}
	if message != nil {
		b["message"] = *message
	}
	r := f.s.do(f.t, "PUT", f.hookPath(user, "outOfOffice"), "", b)
	wantStatus(f.t, r, http.StatusNoContent)
}

// calendarBusy sets the "in a meeting" overlay.
func (f *fixture) calendarBusy(user string, active bool) {
	f.t.Helper()
	r := f.s.do(f.t, "PUT", f.hookPath(user, "calendarBusy"), "", map[string]any{"active": active})
	wantStatus(f.t, r, http.StatusNoContent)
}

// presenceEnabled sets whether the user is enabled for presence.
func (f *fixture) presenceEnabled(user string, enabled bool) {
	f.t.Helper()
	r := f.s.do(f.t, "PUT", f.hookPath(user, "presenceEnabled"), "", map[string]any{"enabled": enabled})
	wantStatus(f.t, r, http.StatusNoContent)
}

// statusText is a setStatusMessage body with text content and, when expiry
// is not nil, an expiryDateTime.
func statusText(content string, expiry map[string]any) map[string]any {
	sm := map[string]any{"message": map[string]any{"content": content, "contentType": "text"}}
	if expiry != nil {
		sm["expiryDateTime"] = expiry
	}
	return map[string]any{"statusMessage": sm}
}

func ptr[T any](v T) *T { return &v }
