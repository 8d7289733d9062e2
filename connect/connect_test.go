package connect

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
	"github.com/presenced/presenced/ticket"
)

const (
	tenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	userA  = "5c7f0bb9-3a0e-4d4f-9d39-3f0f7d1b6a10"
)

// fakeAuth takes a token "user" as a delegated Presence.ReadWrite token of
// that user, and counts the verifications that may fill a token cache
// (Verify) and those that may not (VerifyUncached).
type fakeAuth struct{ cached, uncached atomic.Int64 }

func (a *fakeAuth) Verify(_ context.Context, raw string) (presence.Principal, error) {
	a.cached.Add(1)
	return fakePrincipal(raw)
}

func (a *fakeAuth) VerifyUncached(_ context.Context, raw string) (presence.Principal, error) {
	a.uncached.Add(1)
	return fakePrincipal(raw)
}

func fakePrincipal(raw string) (presence.Principal, error) {
	if raw == "" || strings.Contains(raw, " ") {
		return presence.Principal{}, presence.Errorf(presence.CodeInvalidAuthenticationToken, "bad token")
	}
	return presence.Principal{Tenant: tenant, User: raw, Delegated: true, Scopes: []string{"Presence.ReadWrite", "Presence.Read.All"}}, nil
}

type harness struct {
	auth  *fakeAuth
	store *memstore.Store
	svc   *presence.Service
	clock *presence.TestClock
	srv   *Server
	url   string
}

func newHarness(t *testing.T, heartbeat, timeout time.Duration) *harness {
	t.Helper()
	return newHarnessWith(t, heartbeat, timeout, nil)
}

// newHarnessWith is newHarness with a registry of holders (nil for none).
func newHarnessWith(t *testing.T, heartbeat, timeout time.Duration, holders presence.Holders) *harness {
	t.Helper()
	clock := presence.NewTestClock(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	store := memstore.New()
	svc := presence.NewService(store, clock, nil)
	auth := &fakeAuth{}
	s, err := New(Config{
		Service: svc, Auth: auth,
		Tickets: &ticket.Issuer{Store: ticket.NewMemory(0), Clock: clock},
		WriteError: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusUnauthorized)
		},
		Heartbeat: heartbeat, Timeout: timeout,
		Holders: holders, HolderPrefix: "n1",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	mux := http.NewServeMux()
	s.Routes(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		s.Close()
		cancel()
		<-done
		hs.Close()
	})
	return &harness{auth: auth, store: store, svc: svc, clock: clock, srv: s, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/presenced/connect"}
}

func (h *harness) dial(t *testing.T, user string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(context.Background(), h.url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + user}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

// hold connects user, says hello as device "d", waits for ready, and
// keeps reading (so pings are answered) until the test ends.
func (h *harness) hold(t *testing.T, user string) {
	t.Helper()
	ws := h.dial(t, user)
	write(t, ws, map[string]any{"type": "hello", "device": "d"})
	if _, _, err := ws.Read(context.Background()); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	}()
}

func write(t *testing.T, ws *websocket.Conn, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatKeepsReaderDropsSilent(t *testing.T) {
	h := newHarness(t, 50*time.Millisecond, 300*time.Millisecond)
	live := h.dial(t, userA)
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := live.Read(context.Background()); err != nil {
				readErr <- err
				return
			}
		}
	}()
	write(t, live, map[string]any{"type": "hello", "device": "d"})
	silent := h.dial(t, "11111111-1111-1111-1111-111111111111")
	write(t, silent, map[string]any{"type": "hello", "device": "d"})
	deadline := time.Now().Add(10 * time.Second)
	for h.srv.m.timeouts != nil {
		if open, _, _ := h.srv.counts(); open == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the silent connection was not dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The live one stays through many heartbeats.
	time.Sleep(time.Second)
	select {
	case err := <-readErr:
		t.Fatalf("the live connection ended: %v", err)
	default:
	}
	if open, _, _ := h.srv.counts(); open != 1 {
		t.Fatalf("%d open", open)
	}
}

// The renewals extend a held lease a third of the grace window after it
// was taken, on the service clock, so the session outlives many grace
// windows while its connection lives (e2e tests the end after a close).
func TestLeaseRenewedOnTheServiceClock(t *testing.T) {
	h := newHarness(t, time.Second, 5*time.Second)
	h.hold(t, userA)
	expires := func() time.Time {
		st, err := h.store.Get(context.Background(), tenant, []string{userA})
		if err != nil || len(st[0].Sessions) != 1 {
			return time.Time{}
		}
		return st[0].Sessions[0].ExpiresAt
	}
	for range 5 {
		h.clock.Advance(DefaultGrace / 3)
		want := h.clock.Now().Add(DefaultGrace)
		deadline := time.Now().Add(10 * time.Second)
		for !expires().Equal(want) {
			if time.Now().After(deadline) {
				t.Fatalf("lease expires at %v, want it renewed to %v", expires(), want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if _, err := h.svc.Fire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v, _ := h.svc.Read(context.Background(), tenant, []string{userA}); v[0].Availability != presence.Available {
		t.Fatalf("after five renewals: %v", v[0].Pair)
	}
}

// TestRenewalsArePaced: leases taken together are not all renewed in one
// burst when they fall due together, but a share at a time (the oldest
// first), and every one is renewed well within the grace window.
func TestRenewalsArePaced(t *testing.T) {
	h := newHarness(t, time.Minute, 3*time.Minute)
	const n = 200
	users := make([]string, n)
	for i := range users {
		users[i] = presence.NewGUID()
		h.hold(t, users[i])
	}
	h.clock.Advance(DefaultGrace / 3)
	want := h.clock.Now().Add(DefaultGrace)
	renewed := func() int {
		st, err := h.store.Get(context.Background(), tenant, users)
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for _, u := range st {
			if len(u.Sessions) == 1 && u.Sessions[0].ExpiresAt.Equal(want) {
				k++
			}
		}
		return k
	}
	var partial []int
	deadline := time.Now().Add(30 * time.Second)
	for k := renewed(); k < n; k = renewed() {
		if k > 0 {
			partial = append(partial, k)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d leases renewed after 30 s", k, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if len(partial) == 0 {
		t.Fatalf("all %d leases due together were renewed at once, want them paced", n)
	}
}

// TestPingsArePaced: connections last pinged together are not all pinged
// again in one look of the heartbeat loop, but a share per look, so a
// heartbeat pings each of them once, spread over it.
func TestPingsArePaced(t *testing.T) {
	const n, heartbeat = 2000, 15 * time.Second
	start := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	all := make([]*conn, n)
	for i := range all {
		all[i] = &conn{}
		all[i].pinged.Store(start.UnixNano())
	}
	if due := pingsDue(start.Add(heartbeat/2), all, heartbeat); len(due) != 0 {
		t.Fatalf("half a heartbeat after their last ping, %d connections were pinged", len(due))
	}
	now := start.Add(heartbeat)
	pinged := map[*conn]bool{}
	looks := 0
	for len(pinged) < n {
		due := pingsDue(now, all, heartbeat)
		if len(due) == 0 || len(due) > paced(n, heartbeatTicks) {
			t.Fatalf("look %d pinged %d of %d connections due, want 1 to %d", looks, len(due), n-len(pinged), paced(n, heartbeatTicks))
		}
		for _, c := range due {
			if pinged[c] {
				t.Fatalf("look %d pinged a connection twice", looks)
			}
			pinged[c] = true
			c.pinging.Store(false) // its ping was written
		}
		looks++
		now = now.Add(heartbeat / heartbeatTicks)
	}
	if looks < 2 || time.Duration(looks)*heartbeat/heartbeatTicks > heartbeat {
		t.Fatalf("%d connections due together took %d looks (%v), want them spread within a heartbeat", n, looks, time.Duration(looks)*heartbeat/heartbeatTicks)
	}
}

// TestConnectionTokensNotCached: a connection's token is verified without
// filling the verifier's token cache (VerifyUncached), which would keep a
// copy of every connection's token for requests that do not come.
func TestConnectionTokensNotCached(t *testing.T) {
	h := newHarness(t, time.Minute, 3*time.Minute)
	h.hold(t, userA)
	if c, u := h.auth.cached.Load(), h.auth.uncached.Load(); c != 0 || u != 1 {
		t.Fatalf("a connect verified its token %d times through Verify and %d through VerifyUncached, want 0 and 1", c, u)
	}
}
