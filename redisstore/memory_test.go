package redisstore

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

// TestMemory writes 1,000,000 users, each with one application session and
// a preferred presence (made by the domain's Step), through the store's
// own compare-and-set calls (pipelined 1,000 at a time, as new users), and
// reports redis-server's used_memory. It runs only with
// PRESENCED_REDIS_MEMORY=1 (PRESENCED_REDIS_USERS overrides the count);
// the goal is at most 600 MB per million users.
func TestMemory(t *testing.T) {
	if os.Getenv("PRESENCED_REDIS_MEMORY") != "1" {
		t.Skip("set PRESENCED_REDIS_MEMORY=1 to measure Redis memory per user")
	}
	users := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("PRESENCED_REDIS_USERS")); err == nil && n > 0 {
		users = n
	}
	// everysec only to make the load quicker; memory does not depend on it.
	srv := redistest.Start(t, "--appendfsync", "everysec")
	s := open(t, srv.URL(), Options{})
	cli, err := s.client()
	if err != nil {
		t.Fatal(err)
	}
	base, _ := strconv.ParseInt(srv.Info("used_memory"), 10, 64)
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	app := presence.NewGUID()
	set := &presence.SetPresence{CallerApp: app, SessionID: app, Availability: "Busy", Activity: "InACall"}
	pref := &presence.SetPreferred{Availability: "DoNotDisturb", Activity: "DoNotDisturb"}
	for _, c := range []presence.Command{set, pref} {
		if err := c.Validate(&presence.Env{}); err != nil {
			t.Fatal(err)
		}
	}
	const batch, workers = 1000, 4
	tenants := []string{presence.NewGUID(), presence.NewGUID(), presence.NewGUID()}
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			calls := make([]scriptCall, 0, batch)
			for i := w * batch; i < users; i += workers * batch {
				calls = calls[:0]
				for j := i; j < min(i+batch, users); j++ {
					k := presence.Key{Tenant: tenants[j%len(tenants)], User: presence.NewGUID()}
					var before, st presence.State
					at := now.Add(time.Duration(j) * time.Millisecond)
					if _, err := presence.Step(k, &st, set, at); err != nil {
						t.Error(err)
						return
					}
					if _, err := presence.Step(k, &st, pref, at); err != nil {
						t.Error(err)
						return
					}
					m := memberOf(k)
					calls = append(calls, s.casCall(k, m, partitionOf(m), "", &before, &st))
				}
				for _, r := range casScript.runMulti(context.Background(), cli, calls) {
					if err := r.Error(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	used, _ := strconv.ParseInt(srv.Info("used_memory"), 10, 64)
	per := float64(used-base) / float64(users)
	t.Logf("%d users written in %v: used_memory %.1f MB (%.0f bytes per user; %.0f MB per million), dataset %s, keys %s",
		users, time.Since(start).Round(time.Second), float64(used)/1e6, per, per, srv.Info("used_memory_dataset"), srv.Info("db0"))
	if per*1e6 > 600e6 {
		t.Errorf("%.0f bytes per user: over the 600 MB per million goal", per)
	}
}
