package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/presenced/presenced/auth/authtest"
)

// runBinary runs presenced with args in dir (the test's temporary
// directory when empty) and returns its exit code, stdout and stderr.
func runBinary(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = childEnv(nil)
	cmd.Dir = dir
	if dir == "" {
		cmd.Dir = t.TempDir()
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatalf("presenced %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// logLines returns the JSON log lines of s whose msg is msg.
func logLines(s *server, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(s.log.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// --help (and help) exit 0 and list the subcommands and the flags, on
// stdout; token --help too.
func TestCLIHelp(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, errOut := runBinary(t, "", args...)
		if code != 0 {
			t.Errorf("presenced %v: exit %d\n%s", args, code, errOut)
		}
		for _, want := range []string{"presenced token", "presenced version", "-data", "PRESENCED_DATA", "-test-hooks", "-cors-origins"} {
			if !strings.Contains(out, want) {
				t.Errorf("presenced %v does not mention %q:\n%s", args, want, out)
			}
		}
	}
	code, out, errOut := runBinary(t, "", "token", "--help")
	if code != 0 || !strings.Contains(out, "-user") || !strings.Contains(out, "-data") {
		t.Errorf("presenced token --help: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, _ := runBinary(t, "", "--no-such-flag"); code == 0 {
		t.Error("an unknown flag exits 0")
	}
}

// `presenced version` prints the version and commit from the build
// information, and the start-up log line carries them.
func TestCLIVersion(t *testing.T) {
	code, out, errOut := runBinary(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "presenced ") || !strings.Contains(out, " commit ") {
		t.Errorf("presenced version: exit %d, %q %q", code, out, errOut)
	}
	l := logLines(srv, "listening")
	if len(l) != 1 {
		t.Fatalf("%d listening lines in the main server's log", len(l))
	}
	for _, k := range []string{"version", "commit"} {
		if s, _ := l[0][k].(string); s == "" {
			t.Errorf("the start-up line has no %s: %v", k, l[0])
		}
	}
}

// `presenced token` never makes up a key: run where no data directory
// holds one it fails, naming where it looked; with --data naming the
// running server's directory it works from anywhere and says which key
// it used. The start-up warning shows the --data to pass.
func TestCLITokenKey(t *testing.T) {
	empty := t.TempDir()
	code, _, errOut := runBinary(t, empty, "token")
	want := filepath.Join(empty, "presenced-data", "dev-signing-key.pem")
	if code == 0 || !strings.Contains(errOut, want) || !strings.Contains(errOut, "--data") {
		t.Errorf("token without a key: exit %d, stderr %q; want a failure naming %s and --data", code, errOut, want)
	}
	if _, err := os.Stat(want); err == nil {
		t.Errorf("token created %s", want)
	}

	data := filepath.Join(t.TempDir(), "data")
	s := startTestServer(t, []string{"--data", data, "--test-hooks"}, nil)
	if !strings.Contains(s.log.String(), "presenced token --data "+data) {
		t.Errorf("the start-up warning does not show `presenced token --data %s`:\n%s", data, tail(s.log.String(), 20))
	}
	user := newGUID()
	code, out, errOut := runBinary(t, t.TempDir(), "token", "--data", data, "--user", user)
	if code != 0 || !strings.Contains(errOut, filepath.Join(data, "dev-signing-key.pem")) {
		t.Fatalf("token --data from another directory: exit %d, stderr %q", code, errOut)
	}
	r := s.do(t, "GET", "/v1.0/me/presence", strings.TrimSpace(out), nil)
	wantStatus(t, r, http.StatusOK)

	// A token of another development key is refused, and the log says why
	// (with its kid, never the token) and which key the server accepts.
	other := filepath.Join(t.TempDir(), "other")
	if err := os.MkdirAll(other, 0o700); err != nil {
		t.Fatal(err)
	}
	startTestServer(t, []string{"--data", other, "--store", "memory"}, nil) // makes its key
	code, out2, _ := runBinary(t, "", "token", "--data", other)
	if code != 0 {
		t.Fatal("token --data other failed")
	}
	tok := strings.TrimSpace(out2)
	wantError(t, s.do(t, "GET", "/v1.0/users/"+user+"/presence", tok, nil), 401, "InvalidAuthenticationToken", "")
	eventually(t, 5*time.Second, func() bool { return len(logLines(s, "auth: token refused")) > 0 }, func() string { return "no refusal logged" })
	lines := logLines(s, "auth: token refused")
	if len(lines) != 1 || lines[0]["reason"] != "unknown key" || lines[0]["kid"] == "" ||
		!strings.Contains(lines[0]["hint"].(string), filepath.Join(data, "dev-signing-key.pem")) {
		t.Errorf("refusal log %v: want reason unknown key, the kid and a hint naming the key file", lines)
	}
	if strings.Contains(s.log.String(), tok) {
		t.Error("the server logged the refused token")
	}
}

// An authentication failure on the main server (JWKS mode) is logged at
// info with the reason, kid and iss.
func TestAuthFailureLogged(t *testing.T) {
	f := newFixture(t)
	stranger := authtest.NewKeySet(t)
	tok := stranger.Mint("RS256", f.tokClaims("APPr"))
	// The log of refusals is rate-limited, and other tests refuse many
	// tokens: ask again until the line of this key shows.
	var l map[string]any
	eventually(t, 10*time.Second, func() bool {
		wantError(t, f.get(f.p("/users/%s/presence", f.U1), "", withHeader("Authorization", "Bearer "+tok)), 401, "InvalidAuthenticationToken", "")
		for _, line := range logLines(srv, "auth: token refused") {
			if line["kid"] == stranger.KeyID("RS256") {
				l = line
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
		return false
	}, func() string { return "no refusal logged for the stranger's key" })
	if l["level"] != "INFO" || l["reason"] != "unknown key" || l["iss"] != issuer {
		t.Errorf("refusal log %v", l)
	}
	if strings.Contains(srv.log.String(), tok) {
		t.Error("the server logged the refused token")
	}
}

// An unreachable --jwks-url: /readyz is 503 (saying why) until the key set
// loads, retried in the background, then 200 and tokens are accepted.
func TestUnreachableJWKSNotReady(t *testing.T) {
	var up atomic.Bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(keys.JWKS())
	}))
	defer ts.Close()
	s := startTestServer(t, []string{"--data", filepath.Join(t.TempDir(), "d"), "--store", "memory",
		"--jwks-url", ts.URL, "--issuer", issuer, "--audience", audience}, nil)
	if code, body := readyz(t, s); code != http.StatusServiceUnavailable || !strings.Contains(body, ts.URL) {
		t.Errorf("/readyz with the JWKS down: %d %s, want 503 naming the URL", code, body)
	}
	if !strings.Contains(s.log.String(), "could not be loaded") {
		t.Errorf("the log does not say the JWKS could not be loaded:\n%s", tail(s.log.String(), 20))
	}
	up.Store(true)
	eventually(t, 20*time.Second, func() bool { code, _ := readyz(t, s); return code == http.StatusOK },
		func() string { return "/readyz never became 200 once the JWKS was up" })
	f := newFixture(t)
	f.s = s
	wantStatus(t, f.getp(f.U1), http.StatusOK)
}

// readyz answers GET /readyz of s: the status and the body.
func readyz(t *testing.T, s *server) (int, string) {
	t.Helper()
	res, err := client.Get(s.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// SIGINT, like SIGTERM, stops presenced cleanly (exit status 0).
func TestSIGINTStopsCleanly(t *testing.T) {
	s, err := startServer(binary, []string{"--data", filepath.Join(t.TempDir(), "d")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
		if s.err != nil {
			t.Errorf("after SIGINT: %v\n%s", s.err, tail(s.log.String(), 20))
		}
	case <-time.After(20 * time.Second):
		_ = s.cmd.Process.Kill()
		t.Fatal("presenced did not stop within 20 s of SIGINT")
	}
	if !strings.Contains(s.log.String(), "shutting down") {
		t.Errorf("no shutdown logged:\n%s", tail(s.log.String(), 10))
	}
}

// A notification URL that cannot be reached fails the create with Graph's
// message followed by the cause: a name that did not resolve, a refused
// connection.
func TestHandshakeUnreachableSaysWhy(t *testing.T) {
	f := newFixture(t)
	t0 := nowOn(t, f.s)
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	for url, want := range map[string]string{
		"https://receiver.invalid/hook":                     "did not resolve",
		"https://127.0.0.1:" + strconv.Itoa(port) + "/hook": "was refused",
	} {
		r := f.subscribe("D1ra", subBody(userRes(f.U2), url, t0.Add(50*time.Minute)))
		wantError(t, r, http.StatusBadRequest, "InvalidRequest", "")
		msg := r.str("error", "message")
		if !strings.HasPrefix(msg, "Subscription validation request failed. ") || !strings.Contains(msg, want) {
			t.Errorf("%s: message %q, want Graph's start and %q", url, msg, want)
		}
	}
}

// The 400s for a pair an action does not take name the pairs it does.
func TestPairErrorsNameValidPairs(t *testing.T) {
	f := newFixture(t)
	r := f.set(f.U1, "Busy", "Busy", "PT1H", "APPrw")
	wantError(t, r, http.StatusBadRequest, "InvalidArgument", "")
	if msg := r.str("error", "message"); !strings.HasPrefix(msg, "The provided [Availability/Activity] combination is not supported.") ||
		!strings.Contains(msg, "Busy/InACall") || !strings.Contains(msg, "DoNotDisturb/Presenting") {
		t.Errorf("setPresence Busy/Busy: %q", msg)
	}
	r = f.post(f.p("/users/%s/presence/setUserPreferredPresence", f.U1), "APPrw", map[string]any{"availability": "Busy", "activity": "InACall"})
	wantError(t, r, http.StatusBadRequest, "InvalidArgument", "")
	if msg := r.str("error", "message"); !strings.Contains(msg, "Offline/OffWork") || !strings.Contains(msg, "BeRightBack/BeRightBack") {
		t.Errorf("setUserPreferredPresence Busy/InACall: %q", msg)
	}
}
