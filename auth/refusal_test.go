package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presenced/presenced/auth/authtest"
)

// lockedBuffer is a log sink safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines(t *testing.T) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

// Every refused token is logged at info with its reason, kid and iss, and
// the log never holds the token.
func TestRefusalsAreLoggedWithReason(t *testing.T) {
	ks, other := authtest.NewKeySet(t), authtest.NewKeySet(t)
	var logBuf lockedBuffer
	cfg := testConfig()
	cfg.Logger = slog.New(slog.NewJSONHandler(&logBuf, nil))
	v := fileVerifier(t, ks, cfg)

	with := func(change func(c map[string]any)) map[string]any {
		c := appClaims()
		change(c)
		return c
	}
	now := time.Now()
	cases := []struct {
		reason string
		token  string
	}{
		{ReasonUnknownKey, other.Mint("RS256", appClaims())},
		{ReasonExpired, ks.Mint("RS256", with(func(c map[string]any) { c["exp"] = now.Add(-time.Hour).Unix() }))},
		{ReasonNotYetValid, ks.Mint("RS256", with(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() }))},
		{ReasonAudience, ks.Mint("RS256", with(func(c map[string]any) { c["aud"] = "api://elsewhere" }))},
		{ReasonIssuer, ks.Mint("RS256", with(func(c map[string]any) { c["iss"] = "https://evil.example/" }))},
		{ReasonClaims, ks.Mint("RS256", with(func(c map[string]any) { delete(c, "tid") }))},
		{ReasonMalformed, "not.a-token"},
	}
	// A token whose signature is another key's under the right kid.
	good := ks.Mint("RS256", appClaims())
	forged := other.Mint("RS256", appClaims())
	parts, fparts := strings.Split(good, "."), strings.Split(forged, ".")
	cases = append(cases, struct{ reason, token string }{ReasonSignature, parts[0] + "." + parts[1] + "." + fparts[2]})

	for _, c := range cases {
		if _, err := v.Verify(context.Background(), c.token); err == nil {
			t.Fatalf("%s: token accepted", c.reason)
		} else if got := Reason(err); got != c.reason {
			t.Errorf("Reason = %q, want %q (%v)", got, c.reason, err)
		}
	}
	var lines []map[string]any
	for _, l := range logBuf.lines(t) {
		if l["msg"] == "auth: token refused" {
			lines = append(lines, l)
		}
	}
	if len(lines) != len(cases) {
		t.Fatalf("%d log lines for %d refusals:\n%s", len(lines), len(cases), logBuf.buf.String())
	}
	for i, l := range lines {
		if l["level"] != "INFO" || l["msg"] != "auth: token refused" || l["reason"] != cases[i].reason {
			t.Errorf("line %d: %v, want an info line with reason %q", i, l, cases[i].reason)
		}
		if strings.Contains(logBuf.buf.String(), cases[i].token) {
			t.Errorf("the log holds the token refused for %s", cases[i].reason)
		}
	}
	if lines[0]["kid"] != other.KeyID("RS256") || lines[0]["iss"] != testIssuer {
		t.Errorf("unknown key: kid %v iss %v, want %s and %s", lines[0]["kid"], lines[0]["iss"], other.KeyID("RS256"), testIssuer)
	}
}

// In development auth mode a token of another development key is refused
// as "unknown key", and the log names the key file the server accepts.
func TestDevRefusalNamesKeyFile(t *testing.T) {
	dir := t.TempDir()
	mine, err := NewDevIssuer(filepath.Join(dir, "mine.pem"))
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := NewDevIssuer(filepath.Join(dir, "theirs.pem"))
	if err != nil {
		t.Fatal(err)
	}
	var logBuf lockedBuffer
	v := mine.Verifier(Config{Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	defer v.Close()
	tok, err := theirs.Mint(TokenRequest{Tenant: testTenant, AppID: testApp, Roles: []string{"Presence.Read.All"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), tok); Reason(err) != ReasonUnknownKey {
		t.Fatalf("another dev key's token: %v (reason %q)", err, Reason(err))
	}
	l := logBuf.lines(t)
	if len(l) != 1 || l[0]["kid"] != theirs.KeyID() || !strings.Contains(l[0]["hint"].(string), filepath.Join(dir, "mine.pem")) {
		t.Errorf("log %v: want the other key's kid and a hint naming mine.pem", l)
	}
}

// LoadDevIssuer never creates a key.
func TestLoadDevIssuerMissing(t *testing.T) {
	file := filepath.Join(t.TempDir(), "none.pem")
	if _, err := LoadDevIssuer(file); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("LoadDevIssuer of a missing file: %v, want not-exist", err)
	}
	if _, err := os.Stat(file); err == nil {
		t.Error("LoadDevIssuer created a key")
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

// A JWKS URL unreachable at start leaves the verifier not ready, retried in
// the background until the set loads, then ready.
func TestURLReadyOnceLoaded(t *testing.T) {
	ks := authtest.NewKeySet(t)
	srv := newJWKSServer(t, []byte("not JSON"))
	v := urlVerifier(t, srv, testConfig())
	if err := v.Ready(); err == nil || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("Ready before the set loads: %v, want an error naming the URL", err)
	}
	srv.set(ks.JWKS())
	deadline := time.Now().Add(10 * time.Second)
	for v.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still not ready after the set became available: %v", v.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := v.Verify(context.Background(), ks.Mint("ES256", appClaims())); err != nil {
		t.Fatalf("Verify once ready: %v", err)
	}
}

// FuzzPeek reads the header and claims of arbitrary tokens for the log:
// never a panic, and never more than the limit of each value.
func FuzzPeek(f *testing.F) {
	ks := authtest.NewKeySet(f)
	f.Add(ks.Mint("RS256", appClaims()))
	for _, seed := range []string{"", ".", "..", "a.b.c", "eyJraWQiOjF9.eyJpc3MiOltdfQ.x", "eyJraWQiOiJ4In0.%%%.x"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		kid, alg, iss := peek(raw)
		for _, v := range []string{kid, alg, iss} {
			if len(v) > 200+len("…") {
				t.Fatalf("peek returned %d bytes", len(v))
			}
		}
	})
}
