package e2e

// Issue #9 (bounded resources, no server-side request forgery) and #13's
// throttling in real time.

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
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

// ownStream is the stream's address under presenced's own prefix.
const ownStream = "/presenced/stream"

// #9.1: the stream lives at /presenced/stream, authorized as before; under
// Graph's prefixes "stream" is a user key like any other, and not a GUID.
func TestStreamAtOwnPrefix(t *testing.T) {
	f := newFixture(t)
	f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
	res, es := openStreamAt(t, f.s, ownStream, f.tok("D1ra"), f.U1, f.U2)
	if es == nil {
		t.Fatalf("GET %s -> %d, want 200", ownStream, res.StatusCode)
	}
	if res.Header.Get("Deprecation") != "" {
		t.Errorf("the new address is marked deprecated")
	}
	wantEvent(t, es.next(t), f.U1, "Busy/InACall")
	wantEvent(t, es.next(t), f.U2, "Offline/Offline")
	f.mustSet(f.U2, "Away", "Away", "PT1H", "APPrw")
	wantEvent(t, es.next(t), f.U2, "Away/Away")
	// Permissions as before: Presence.Read reads only oneself.
	if res, _ := openStreamAt(t, f.s, ownStream, f.tok("D1r"), f.U2); res.StatusCode != http.StatusForbidden {
		t.Errorf("D1r on U2 -> %d, want 403", res.StatusCode)
	}
	if res, _ := openStreamAt(t, f.s, ownStream, "", f.U1); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token -> %d, want 401", res.StatusCode)
	}
	for _, v := range []string{"v1.0", "beta"} {
		res, _ := openStreamAt(t, f.s, "/"+v+"/communications/presences/stream", f.tok("D1ra"), f.U1)
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("GET /%s/communications/presences/stream -> %d, want 400 (not a user id)", v, res.StatusCode)
		}
	}
}

// #9.1: streams are capped per (app, tenant) and in all; beyond a cap a
// stream is refused with a Graph-shaped 429 and Retry-After, and a closed
// stream frees its place.
func TestStreamCaps(t *testing.T) {
	s := startTestServer(t, hookedArgs(t, "--max-streams-per-app", "2", "--max-streams", "3"), nil)
	f := newFixture(t)
	f.s = s
	open := func(tok string) (*http.Response, *eventStream) {
		t.Helper()
		return openStreamAt(t, s, ownStream, tok, f.U1)
	}
	_, a1 := open(f.tok("D1ra"))
	_, a2 := open(f.tok("APPr")) // same app A, another token
	if a1 == nil || a2 == nil {
		t.Fatal("the first two streams of app A were refused")
	}
	wantThrottledStream(t, s, f.tok("D1ra"), f.U1, "this application may hold 2")
	_, b1 := open(f.tok("APPBr"))
	if b1 == nil {
		t.Fatal("app B's stream was refused")
	}
	g := f.inTenant(newGUID())
	wantThrottledStream(t, s, g.tok("APPr"), g.U1, "at most 3")
	// A stream that ends frees its place.
	a1.cancel()
	eventually(t, 10*time.Second, func() bool {
		res, es := open(f.tok("D1ra"))
		if es != nil {
			es.cancel()
			return true
		}
		return res.StatusCode != http.StatusTooManyRequests
	}, func() string { return "a closed stream's place was not freed" })
}

// wantThrottledStream opens a stream that a cap must refuse.
func wantThrottledStream(t *testing.T, s *server, tok, user, msg string) {
	t.Helper()
	r := s.do(t, "GET", ownStream+"?$filter="+url.QueryEscape("id in ('"+user+"')"), tok, nil)
	wantError(t, r, http.StatusTooManyRequests, "TooManyRequests", "")
	if !strings.Contains(r.str("error", "message"), msg) {
		t.Errorf("429 message %q, want it to say %q", r.str("error", "message"), msg)
	}
	assertRetryAfter(t, r.Header.Get("Retry-After"), r.String())
}

// #9.1: a stream ends, with an event telling the client to reconnect, when
// the token it was opened with expires.
func TestStreamEndsWhenTokenExpires(t *testing.T) {
	f := newFixture(t)
	c := f.delegated(f.T, f.U1, f.A, "Presence.Read.All")
	c["exp"] = time.Now().Add(3 * time.Second).Unix()
	res, es := openStreamAt(t, f.s, ownStream, f.mint(c), f.U1)
	if es == nil {
		t.Fatalf("GET stream -> %d, want 200", res.StatusCode)
	}
	wantEvent(t, es.next(t), f.U1, "Offline/Offline")
	ev := es.next(t)
	if ev.Event != "reconnect" || ev.str("reason") != "tokenExpired" {
		t.Fatalf("got event %q %s, want reconnect with reason tokenExpired", ev.Event, ev.Raw)
	}
	select {
	case _, ok := <-es.events:
		if ok {
			t.Error("the stream went on after the reconnect event")
		}
	case <-time.After(deliveryWithin):
		t.Error("the stream did not end after the reconnect event")
	}
}

// #9.1: a client that stops reading is dropped rather than buffered
// without end: its stream ends (the server closes it within the write
// deadline), and the dropped events are counted.
func TestStreamSlowReaderDropped(t *testing.T) {
	s := startTestServer(t, hookedArgs(t, "--rate-limit", "0"), nil)
	f := newFixture(t)
	f.s = s
	// A client with a small receive buffer that reads nothing past the
	// headers.
	dialer := &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
		return errors.Join(err, serr)
	}}
	hc := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext, DisableCompression: true}}
	req, _ := http.NewRequest("GET", s.base+ownStream+"?$filter="+url.QueryEscape("id in ('"+f.U1+"')"), nil)
	req.Header.Set("Authorization", "Bearer "+f.tok("D1ra"))
	res, err := hc.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET stream: %v %v", res, err)
	}
	defer res.Body.Close()
	if n := streamsOpen(t, s); n != 1 {
		t.Fatalf("presenced_streams_open = %v, want 1", n)
	}
	// Large events (a 64 KB status message), changing fast.
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U1), "D1rw", statusText(strings.Repeat("x", 64<<10), nil)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2000 && streamsOpen(t, s) > 0; i++ {
			pair := [2]string{"Busy", "InACall"}
			if i%2 == 1 {
				pair = [2]string{"Available", "Available"}
			}
			f.set(f.U1, pair[0], pair[1], "PT1H", "APPrw")
		}
	}()
	eventually(t, 60*time.Second, func() bool { return streamsOpen(t, s) == 0 },
		func() string { return "the stream of a client that reads nothing is still open" })
	<-done
	if dropped := metricValue(t, s, "presenced_change_events_dropped_total"); dropped < 1 {
		t.Errorf("presenced_change_events_dropped_total = %v, want the dropped events counted", dropped)
	}
}

// metricValue reads one unlabelled metric from s's /metrics.
func metricValue(t testing.TB, s *server, name string) float64 {
	t.Helper()
	res, err := client.Get(s.base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

func streamsOpen(t testing.TB, s *server) float64 { return metricValue(t, s, "presenced_streams_open") }

// #9.3: a slow receiver costs only its own subscriptions. Forty
// subscriptions of one tenant point at a receiver that answers every
// notification in 2.8 s (inside presenced's delivery timeout); another
// tenant's notification to another receiver arrives before the slow
// receiver has answered any: the slow receiver holds only its own share of
// the delivery workers, so the other does not wait for it to answer.
func TestSlowReceiverDelaysOnlyItsOwn(t *testing.T) {
	s := startTestServer(t, hookedArgs(t, "--rate-limit", "0"), nil)
	var (
		mu               sync.Mutex
		inFlight, ended  int
		releaseSlow      = make(chan struct{})
		fastArrived      = make(chan struct{}, 16)
		endedWhenArrived = -1
	)
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			_, _ = io.WriteString(w, tok)
			return
		}
		mu.Lock()
		inFlight++
		mu.Unlock()
		select {
		case <-time.After(2800 * time.Millisecond):
		case <-releaseSlow:
		}
		mu.Lock()
		ended++ // before the answer leaves
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer slow.Close()
	defer close(releaseSlow)
	fast := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			_, _ = io.WriteString(w, tok)
			return
		}
		mu.Lock()
		if endedWhenArrived < 0 {
			endedWhenArrived = ended
		}
		mu.Unlock()
		fastArrived <- struct{}{}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer fast.Close()

	f := newFixture(t)
	f.s = s
	exp := nowOn(t, s).Add(50 * time.Minute)
	users := make([]string, 40)
	for i := range users {
		users[i] = newGUID()
		tok := f.mint(f.delegated(f.T, newGUID(), f.A, "Presence.Read.All"))
		f.mustSubscribeAs(tok, subBody(userRes(users[i]), slow.URL+"/hook", exp))
	}
	g := f.inTenant(newGUID())
	g.mustSubscribe("D1ra", subBody(userRes(g.U2), fast.URL+"/hook", exp))

	for _, u := range users {
		f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
	}
	eventually(t, deliveryWithin, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return inFlight >= 4
	}, func() string { return "the slow receiver's notifications were not sent" })
	g.mustSet(g.U2, "Busy", "InACall", "PT1H", "APPrw")
	select {
	case <-fastArrived:
	case <-time.After(deliveryWithin):
		t.Fatal("the other tenant's notification never arrived")
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("when the other tenant's notification arrived: %d of the slow receiver's requests sent, %d ended", inFlight, endedWhenArrived)
	if endedWhenArrived != 0 {
		t.Errorf("the other tenant's notification arrived only after %d of the slow receiver's requests ended (%d were sent): it waited for the slow receiver", endedWhenArrived, inFlight)
	}
}
