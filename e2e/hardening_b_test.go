package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 9 point 7: the HTTP edge answers in Graph's shape.

// Headers beyond 64 KiB are refused 431 in Graph's envelope.
func TestHardeningHeaderLimit(t *testing.T) {
	f := newFixture(t)
	big := strings.Repeat("a", 70<<10)
	r := srv.do(t, "GET", f.p("/users/%s/presence", f.U1), f.tok("APPr"), nil, withHeader("X-Padding", big))
	wantError(t, r, http.StatusRequestHeaderFieldsTooLarge, "RequestHeaderFieldsTooLarge", "")
	// Just under the limit is fine.
	r = srv.do(t, "GET", f.p("/users/%s/presence", f.U1), f.tok("APPr"), nil, withHeader("X-Padding", strings.Repeat("a", 60<<10)))
	wantStatus(t, r, http.StatusOK)
}

// A path that is not canonical answers Graph's JSON 404, not the HTML 301
// of http.ServeMux.
func TestHardeningNonCanonicalPath(t *testing.T) {
	f := newFixture(t)
	for _, p := range []string{"//v1.0/me/presence", "/v1.0/./me/presence", "/v1.0/me/../me/presence", "/v1.0//me/presence", "/v1.0/me/presence/.", "/_test//clock"} {
		r := srv.do(t, "GET", p, f.tok("D1r"), nil)
		wantError(t, r, http.StatusNotFound, "NotFound", "")
		if loc := r.Header.Get("Location"); loc != "" {
			t.Errorf("%s: redirected to %s", p, loc)
		}
	}
	wantStatus(t, srv.do(t, "GET", "/v1.0/me/presence", f.tok("D1r"), nil), http.StatusOK)
}

// Deleting a subscription needs what creating one needs.
func TestHardeningDeleteSubscriptionNeedsCreatePermission(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	id := f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))).str("id")
	sra := f.mint(f.delegated(f.T, f.U1, f.A, "Subscription.Read.All"))
	for name, tok := range map[string]string{"D1r": f.tok("D1r"), "D1rw": f.tok("D1rw"), "D1x": f.tok("D1x"), "Subscription.Read.All": sra} {
		r := f.s.do(t, "DELETE", f.p("/subscriptions/%s", id), tok, nil)
		if r.Status != http.StatusForbidden {
			t.Errorf("DELETE with %s: %s, want 403", name, r)
		}
	}
	wantStatus(t, f.get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusOK)
	wantStatus(t, f.s.do(t, "DELETE", f.p("/subscriptions/%s", id), f.tok("D1ra"), nil), http.StatusNoContent)
}

// A token whose nbf is in the future is "not yet valid", not "expired";
// tokens with a crit header or a time claim that is not a number are
// refused.
func TestHardeningTokenLifetimeAndHeaders(t *testing.T) {
	f := newFixture(t)
	c := f.tokClaims("D1r")
	c["nbf"] = time.Now().Add(time.Hour).Unix()
	r := srv.do(t, "GET", "/v1.0/me/presence", keys.Mint("RS256", c), nil)
	wantError(t, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "")
	if msg := r.str("error", "message"); !strings.Contains(msg, "not yet valid") || strings.Contains(msg, "expired") {
		t.Errorf("future nbf: message %q", msg)
	}

	c = f.tokClaims("D1r")
	c["exp"] = fmt.Sprint(time.Now().Add(time.Hour).Unix())
	wantError(t, srv.do(t, "GET", "/v1.0/me/presence", keys.Mint("RS256", c), nil), http.StatusUnauthorized, "InvalidAuthenticationToken", "")

	crit := keys.MintWithHeader("RS256", map[string]any{"crit": []string{"urn:example:must-understand"}, "urn:example:must-understand": true}, f.tokClaims("D1r"))
	wantError(t, srv.do(t, "GET", "/v1.0/me/presence", crit, nil), http.StatusUnauthorized, "InvalidAuthenticationToken", "")
	wantStatus(t, srv.do(t, "GET", "/v1.0/me/presence", f.tok("D1r"), nil), http.StatusOK)
}

// --metrics-addr serves /metrics on its own address, and not on the API's.
func TestHardeningMetricsAddr(t *testing.T) {
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	maddr := fmt.Sprintf("127.0.0.1:%d", port)
	s := startTestServer(t, hookedArgs(t), []string{"PRESENCED_METRICS_ADDR=" + maddr})
	var resp *http.Response
	eventually(t, 10*time.Second, func() bool {
		resp, err = http.Get("http://" + maddr + "/metrics")
		return err == nil
	}, func() string { return fmt.Sprint(err) })
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "presenced_store_records_total") {
		t.Fatalf("/metrics on %s: %d %.200s", maddr, resp.StatusCode, body)
	}
	resp, err = http.Get(s.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/metrics still on the API's address: %d", resp.StatusCode)
	}
}

// --max-connections caps the connections served at once: one more waits
// until one closes.
func TestHardeningMaxConnections(t *testing.T) {
	s := startTestServer(t, hookedArgs(t, "--max-connections", "2"), nil)
	addr := strings.TrimPrefix(s.base, "http://")
	// The start-up health checks left a keep-alive connection open.
	client.CloseIdleConnections()
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("held connection: %v %v", resp, err)
		}
		resp.Body.Close()
		held = append(held, c) // kept alive and open
	}
	third := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/healthz", nil)
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err == nil {
			resp.Body.Close()
		}
		third <- err
	}()
	select {
	case err := <-third:
		t.Fatalf("a third connection was served while two were open (err %v)", err)
	case <-time.After(300 * time.Millisecond): // not served while the cap is reached
	}
	held[0].Close()
	if err := <-third; err != nil {
		t.Fatalf("the waiting connection was not served once one closed: %v", err)
	}
}

// --validation-timeout longer than the write timeout is a configuration
// error: the handshake could never finish within the request.
func TestHardeningValidationTimeoutBeyondWriteTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, append(hookedArgs(t), "--addr", "127.0.0.1:0", "--validation-timeout", "45s")...).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "--validation-timeout") || !strings.Contains(string(out), "write timeout") {
		t.Fatalf("presenced accepted --validation-timeout 45s (err %v):\n%s", err, out)
	}
}

// A development key readable by others makes presenced warn.
func TestHardeningDevKeyPermissionsWarn(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	s := startRestartableServer(t, []string{"--data", data})
	if strings.Contains(s.log.String(), "readable by others") {
		t.Fatalf("warned about a key of mode 0600:\n%s", tail(s.log.String(), 20))
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(data, "dev-signing-key.pem")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	s2 := startTestServer(t, []string{"--data", data}, nil)
	if !strings.Contains(s2.log.String(), "readable by others") {
		t.Fatalf("no warning about a key of mode 0644:\n%s", tail(s2.log.String(), 20))
	}
}
