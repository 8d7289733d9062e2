package e2e

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// writeJWKSFile writes the suite's JWKS to a file for --jwks-file.
func writeJWKSFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(p, keys.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Conformance "operator interface": every flag reads its environment
// variable, a flag on the command line wins, --jwks-file works, issuer and
// audience take comma-separated lists; decision 4: @odata.context uses
// --public-url; decision 6: without --test-hooks every /_test/ path is 404.
func TestOperatorEnvironment(t *testing.T) {
	const (
		issA      = "https://issuer-a.e2e.test/"
		issB      = "https://issuer-b.e2e.test/v2.0"
		graphApp  = "00000003-0000-0000-c000-000000000000"
		publicURL = "https://presence.example.test"
	)
	s := startTestServer(t, []string{"--rate-limit", "4"}, []string{
		"PRESENCED_ADDR=", // the harness fills in a free port
		"PRESENCED_DATA=" + filepath.Join(t.TempDir(), "data"),
		"PRESENCED_JWKS_FILE=" + writeJWKSFile(t),
		"PRESENCED_ISSUER=" + issA + "," + issB,
		"PRESENCED_AUDIENCE=" + audience + "," + graphApp,
		"PRESENCED_PUBLIC_URL=" + publicURL + "/",
		"PRESENCED_RATE_LIMIT=1000",
	})
	f := newFixture(t)
	f.s = s

	t.Run("issuer and audience lists", func(t *testing.T) {
		f := f.in(t)
		for _, c := range []struct{ iss, aud, alg string }{
			{issA, audience, "RS256"}, {issB, graphApp, "ES256"}, {issB, audience, "RS256"},
		} {
			g := f.in(t)
			g.issuer, g.audience, g.alg = c.iss, c.aud, c.alg
			g.A = newGUID() // a budget of its own
			wantStatus(t, g.get(g.p("/me/presence"), "D1r"), 200)
		}
		g := f.in(t)
		g.issuer = issuer // the main server's issuer is not on this list
		wantError(t, g.get(g.p("/me/presence"), "D1r"), 401, "InvalidAuthenticationToken", "")
	})

	t.Run("public URL", func(t *testing.T) {
		g := f.in(t)
		g.A = newGUID()
		g.issuer = issA
		for _, v := range versions {
			g.v = v
			r := g.get(g.p("/me/presence"), "D1r")
			wantStatus(t, r, 200)
			want := publicURL + "/" + v + "/$metadata#users('" + g.U1 + "')/presence/$entity"
			if got := r.str("@odata.context"); got != want {
				t.Errorf("@odata.context = %q, want %q", got, want)
			}
		}
	})

	t.Run("rate limit flag beats environment", func(t *testing.T) {
		g := f.in(t)
		g.A = newGUID()
		g.issuer = issA
		for range 4 {
			wantStatus(t, g.get(g.p("/users/%s/presence", g.U2), "APPr"), 200)
		}
		want429(t, g.get(g.p("/users/%s/presence", g.U2), "APPr"))
	})

	t.Run("no test hooks", func(t *testing.T) {
		f := f.in(t)
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/_test/clock", nil},
			{"POST", "/_test/clock/advance", map[string]string{"by": "PT1M"}},
			{"PUT", "/_test/limits", map[string]int{"presencePer30s": 0}},
			{"PUT", "/_test/tenants/" + f.T + "/users/" + f.U1 + "/calendarBusy", map[string]bool{"active": true}},
		} {
			r := s.do(t, c.method, c.path, "", c.body)
			wantError(t, r, http.StatusNotFound, "", "")
		}
	})
}

// Conformance "operator interface": the variables TestOperatorEnvironment
// leaves out: PRESENCED_JWKS_URL, PRESENCED_WEBHOOK_CA_FILE (a TLS receiver
// is trusted) and PRESENCED_RATE_LIMIT=0 (throttling off: more than the
// default budget in one window).
func TestOperatorEnvironmentJWKSURLWebhookCANoThrottling(t *testing.T) {
	s := startTestServer(t, nil, []string{
		"PRESENCED_ADDR=", // the harness fills in a free port
		"PRESENCED_DATA=" + filepath.Join(t.TempDir(), "data"),
		"PRESENCED_TEST_HOOKS=1",
		"PRESENCED_JWKS_URL=" + jwks.URL(),
		"PRESENCED_ISSUER=" + issuer,
		"PRESENCED_AUDIENCE=" + audience,
		"PRESENCED_WEBHOOK_CA_FILE=" + webhookCA,
		"PRESENCED_RATE_LIMIT=0",
	})
	f := newFixture(t)
	f.s = s
	wantStatus(t, f.get(f.p("/me/presence"), "D1r"), http.StatusOK)

	sk := newSink(t)
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, nowOn(t, s).Add(50*time.Minute)))
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	sk.waitItems(t, 1, deliveryWithin)

	path := f.p("/users/%s/presence", f.U1)
	if n := burst(s, path, f.tok("APPr"), defaultRateLimit+100); n != 0 {
		t.Errorf("PRESENCED_RATE_LIMIT=0: %d of %d requests in one window failed or were refused", n, defaultRateLimit+100)
	}
}

// Conformance: PRESENCED_TEST_HOOKS=1 is --test-hooks; the service clock
// starts at the real time, then moves only when advanced.
func TestOperatorTestHooksFromEnvironment(t *testing.T) {
	launched := time.Now()
	s := startTestServer(t, []string{
		"--data", filepath.Join(t.TempDir(), "data"),
		"--jwks-file", writeJWKSFile(t),
		"--issuer", issuer,
		"--audience", audience,
	}, []string{"PRESENCED_TEST_HOOKS=1"})
	r := s.do(t, "GET", "/_test/clock", "", nil)
	wantStatus(t, r, 200)
	before := parseNow(t, r)
	if before.Before(launched.Add(-time.Second)) || before.After(time.Now().Add(time.Second)) {
		t.Errorf("a fresh server's clock reads %v; it was started at %v (real time)", before, launched)
	}
	after := advanceOn(t, s, "PT1H")
	if d := after.Sub(before); d != 60*60*1e9 {
		t.Errorf("advance PT1H moved the clock by %v", d)
	}
}

// Conformance: with neither --jwks-url nor --jwks-file presenced signs and
// accepts its own tokens and says so loudly at start-up.
func TestOperatorDevelopmentAuthMode(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := startTestServer(t, []string{"--data", data}, nil)
	if log := strings.ToLower(s.log.String()); !strings.Contains(log, "development") {
		t.Errorf("start-up log does not mention development auth mode:\n%s", tail(s.log.String(), 20))
	}
	f := newFixture(t)
	f.s = s
	// Tokens of the suite's own keys are not the server's.
	wantError(t, f.get(f.p("/me/presence"), "D1r"), 401, "InvalidAuthenticationToken", "")

	// `presenced token` mints one the server accepts.
	user := newGUID()
	out, err := exec.Command(binary, "token", "--data", data, "--user", user).Output()
	if err != nil {
		t.Fatalf("presenced token: %v", err)
	}
	tok := strings.TrimSpace(string(out))
	r := s.do(t, "GET", "/v1.0/me/presence", tok, nil)
	wantStatus(t, r, 200)
	if r.str("id") != user {
		t.Errorf("dev token: %s, want id %s", r, user)
	}
}

// DESIGN "store contract": an acknowledged write survives a restart.
func TestOperatorRestartKeepsState(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	args := []string{"--data", data, "--jwks-file", writeJWKSFile(t), "--issuer", issuer, "--audience", audience}
	s1 := startRestartableServer(t, args)
	f := newFixture(t)
	f.s = s1
	f.mustSet(f.U1, "Busy", "InACall", "PT4H", "APPrw")
	wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("durable", nil)))
	seq := f.wantPresence(f.U1, "Busy", "InACall").str("sequenceNumber")
	if err := s1.stop(); err != nil {
		t.Fatalf("first server did not stop cleanly: %v\n%s", err, tail(s1.log.String(), 30))
	}

	s2 := startTestServer(t, args, nil)
	f.s = s2
	r := f.wantPresence(f.U1, "Busy", "InACall")
	if got := r.str("statusMessage", "message", "content"); got != "durable" {
		t.Errorf("after a restart: status message %q, want durable", got)
	}
	if got := r.str("sequenceNumber"); got != seq {
		t.Errorf("after a restart without change: sequenceNumber %q, want %q (3.7)", got, seq)
	}
	// The sessions gauge counts what is stored, not what was written since
	// the start.
	m := s2.do(t, "GET", "/metrics", "", nil)
	if !regexp.MustCompile(`(?m)^presenced_sessions 1$`).Match(m.Body) {
		t.Errorf("after a restart, /metrics does not show the one stored session as presenced_sessions 1")
	}
	wantEmptyOK(t, f.clear(f.U1, "APPrw"))
}

// Methods a client invents are answered 405 in Graph's envelope and
// counted under method="other" in the request metrics, so they cannot grow
// the metrics without bound.
func TestOperatorInventedMethodsInMetrics(t *testing.T) {
	f := newFixture(t)
	for _, m := range []string{"BREW", "WHEN"} {
		r := f.s.do(t, m, f.p("/users/%s/presence", f.U1), f.tok("APPrw"), nil)
		wantError(t, r, 405, "", "")
	}
	m := f.s.do(t, "GET", "/metrics", "", nil)
	if bytes.Contains(m.Body, []byte(`method="BREW"`)) || !regexp.MustCompile(`presenced_http_requests_total\{[^}]*method="other"`).Match(m.Body) {
		t.Errorf("/metrics counts invented methods by name, or not under method=\"other\"")
	}
}
