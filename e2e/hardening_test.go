package e2e

// Issue #9 (bounded resources, no server-side request forgery) and #13's
// throttling in real time.

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// #13.2: under --test-hooks a throttling window also ends in real time, so
// a client that honours Retry-After gets 200 again without any clock
// advance. The window is shortened to 2 s through PUT /_test/limits, so
// the test waits seconds, not Graph's 30.
func TestThrottleWindowEndsInRealTime(t *testing.T) {
	f := newFixture(t)
	r := srv.do(t, "PUT", "/_test/limits", "", map[string]int{"presencePer30s": 2, "windowSeconds": 2})
	wantStatus(t, r, http.StatusNoContent)
	t.Cleanup(func() {
		wantStatus(t, srv.do(t, "PUT", "/_test/limits", "", map[string]int{"presencePer30s": defaultRateLimit, "windowSeconds": 30}), http.StatusNoContent)
	})
	path := f.p("/users/%s/presence", f.U1)
	wantStatus(t, f.get(path, "APPr"), 200)
	wantStatus(t, f.get(path, "APPr"), 200)
	ra := want429(t, f.get(path, "APPr"))
	if ra < 1 || ra > 2 {
		t.Errorf("Retry-After = %d, want 1 or 2 (the window is 2 s)", ra)
	}
	// No clock advance: real time alone ends the window.
	deadline := time.Now().Add(time.Duration(ra)*time.Second + 5*time.Second)
	for {
		r := f.get(path, "APPr")
		if r.Status == 200 {
			break
		}
		want429(t, r)
		if time.Now().After(deadline) {
			t.Fatalf("still 429 %v after the Retry-After of %d s", time.Since(deadline.Add(-time.Duration(ra)*time.Second-5*time.Second)), ra)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// #9.2: creating, updating and reauthorizing subscriptions draw from the
// (app, tenant) request budget.
func TestSubscriptionWritesAreThrottled(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	exp := nowOn(t, srv).Add(50 * time.Minute)
	limitFor(t, 2)
	sub := f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, exp)) // the first request
	id := sub.str("id")
	wantStatus(t, f.get(f.p("/users/%s/presence", f.U1), "D1ra"), 200)
	want429(t, f.post(f.p("/subscriptions"), "D1ra", subBody(userRes(f.U3), sk.URL, exp)))
	want429(t, f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"expirationDateTime": graphTime(exp)}))
	want429(t, f.post(f.p("/subscriptions/%s/reauthorize", id), "D1ra", nil))
}

// #9.2: with --webhook-allow-private=false (as without --test-hooks),
// notification URLs that reach loopback, link-local or private addresses,
// named or resolved, are refused with a 400 that says why, and the
// receiver is never called.
func TestWebhookPrivateAddressesRefused(t *testing.T) {
	s := startTestServer(t, hookedArgs(t, "--webhook-allow-private=false"), nil)
	f := newFixture(t)
	f.s = s
	sk := newSink(t)
	port := sk.URL[strings.LastIndexByte(sk.URL, ':')+1:]
	exp := nowOn(t, s).Add(50 * time.Minute)
	for _, c := range []struct{ url, kind string }{
		{sk.URL + "/hook", "loopback"},
		{"https://localhost:" + port + "/hook", "loopback"},
		{"https://[::ffff:127.0.0.1]:" + port + "/hook", "loopback"},
		{"https://[::1]:" + port + "/hook", "loopback"},
		{"https://169.254.169.254/latest/meta-data/", "link-local"},
		{"https://[::ffff:169.254.169.254]/", "link-local"},
		{"https://10.0.0.1:9/hook", "private"},
		{"https://0.0.0.0:" + port + "/hook", "unspecified"},
	} {
		r := f.subscribe("D1ra", subBody(userRes(f.U2), c.url, exp))
		wantStatus(t, r, http.StatusBadRequest)
		if msg := r.str("error", "message"); !strings.Contains(msg, "a "+c.kind+" address") {
			t.Errorf("%s: message %q does not say it is a %s address", c.url, msg, c.kind)
		}
	}
	// A lifecycle URL is checked the same way (after the notification URL,
	// which here must be refused first: no public receiver in a test).
	body := subBody(userRes(f.U2), sk.URL+"/hook", exp)
	body["lifecycleNotificationUrl"] = "https://169.254.169.254/"
	wantStatus(t, f.subscribe("D1ra", body), http.StatusBadRequest)
	if n := len(sk.handshakeList()) + len(sk.deliveries()); n != 0 {
		t.Errorf("the receiver got %d requests", n)
	}
}
