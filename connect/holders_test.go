package connect

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
	"github.com/presenced/presenced/redisstore"
)

// openHolders opens a registry of holders on a redis-server of the test's
// own (skipped without one, unless PRESENCED_REQUIRE_REDIS=1).
func openHolders(t *testing.T) redisstore.Holders {
	t.Helper()
	r := redistest.Start(t)
	st, err := redisstore.Open(context.Background(), redisstore.Options{URL: r.URL(), NodeID: "n1", Prefix: "c" + presence.NewGUID()[:8]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st.Holders()
}

// A process found dead while it lives takes a new name and holds its
// sessions again, while some of its connections close at that very time:
// every session of a closed connection ends up released (no holder, the
// grace window's lease) and unlisted, every open one held under the new
// name and listed under it. Several rounds, for the interleavings.
func TestRenameRacesReleases(t *testing.T) {
	holders := openHolders(t)
	for round := range 4 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			h := newHarnessWith(t, time.Hour, 2*time.Hour, holders)
			ctx := context.Background()
			const n = 24
			users := make([]string, n)
			conns := make([]*websocket.Conn, n)
			for i := range users {
				users[i] = presence.NewGUID()
				conns[i] = h.dial(t, users[i])
				write(t, conns[i], map[string]any{"type": "hello", "device": "d"})
				if _, _, err := conns[i].Read(ctx); err != nil {
					t.Fatal(err)
				}
			}
			old := h.srv.currentHolder()
			if old == "" {
				t.Fatal("no holder after the hellos")
			}
			var wg sync.WaitGroup
			wg.Go(func() {
				h.srv.rename(old)
				if err := h.srv.reconcile(ctx); err != nil {
					t.Error(err)
				}
			})
			for i := range n / 2 {
				wg.Go(func() { _ = conns[2*i].Close(websocket.StatusNormalClosure, "bye") })
			}
			wg.Wait()
			// The closed connections' releases finish before they stop
			// counting as open; then one more look settles what is left.
			deadline := time.Now().Add(10 * time.Second)
			for open, _, _ := h.srv.counts(); open != n/2; open, _, _ = h.srv.counts() {
				if time.Now().After(deadline) {
					t.Fatalf("%d connections open, want %d", open, n/2)
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := h.srv.reconcile(ctx); err != nil {
				t.Fatal(err)
			}
			h.srv.retryReleases(ctx)
			cur := h.srv.currentHolder()
			if cur == old || cur == "" {
				t.Fatalf("holder %q after the rename of %q", cur, old)
			}
			now := h.clock.Now()
			states, err := h.store.Get(ctx, tenant, users)
			if err != nil {
				t.Fatal(err)
			}
			claimed, err := holders.Claim(ctx, now.Add(24*time.Hour), now.Add(25*time.Hour), 8)
			if err != nil {
				t.Fatal(err)
			}
			var listed []string
			for _, c := range claimed {
				if c.Holder == cur {
					for _, hs := range c.Held {
						listed = append(listed, hs.Key.User)
					}
				}
			}
			for i, st := range states {
				closed := i%2 == 0
				if len(st.Sessions) != 1 {
					t.Fatalf("user %d (closed %v): sessions %+v", i, closed, st.Sessions)
				}
				se := st.Sessions[0]
				if closed && (se.Holder != "" || se.ExpiresAt.After(now.Add(DefaultGrace))) {
					t.Errorf("closed connection %d: session %+v, want it released", i, se)
				}
				if !closed && (se.Holder != cur || !se.ExpiresAt.After(now.Add(DefaultGrace))) {
					t.Errorf("open connection %d: session %+v, want it held by %s", i, se, cur)
				}
				if in := slices.Contains(listed, users[i]); in == closed {
					t.Errorf("connection %d (closed %v): listed under %s %v", i, closed, cur, in)
				}
			}
		})
	}
}
