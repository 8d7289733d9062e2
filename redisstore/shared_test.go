package redisstore

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

func TestLimiter(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "rl" + presence.NewGUID()[:8]
	ctx := context.Background()
	var lims []*Limiter
	for _, n := range []string{"n1", "n2", "n3"} {
		lims = append(lims, open(t, srv.URL(), Options{Prefix: prefix, NodeID: n}).Limiter())
	}
	now := time.Date(2026, 1, 1, 10, 0, 5, 0, time.UTC)
	app, tenant := presence.NewGUID(), presence.NewGUID()
	// C13 #134: 2 on n1, 3 on n2, the 6th on n3 is refused.
	for i, l := range []*Limiter{lims[0], lims[0], lims[1], lims[1], lims[1]} {
		if _, ok, err := l.Allow(ctx, app, tenant, now, 5); err != nil || !ok {
			t.Fatalf("request %d: ok %v, %v", i+1, ok, err)
		}
	}
	retry, ok, err := lims[2].Allow(ctx, app, tenant, now, 5)
	if err != nil || ok {
		t.Fatalf("6th request: ok %v, %v", ok, err)
	}
	if retry <= 29*time.Second || retry > LimitWindow {
		t.Errorf("retryAfter %v, want about a window (all five were admitted at this instant)", retry)
	}
	// Another pair has its own budget.
	if _, ok, _ := lims[2].Allow(ctx, app, presence.NewGUID(), now, 5); !ok {
		t.Error("another tenant was throttled")
	}
	// Sliding: the first admissions leave a window after their slot.
	later := now.Add(LimitWindow - 5*time.Second)
	if _, ok, _ := lims[2].Allow(ctx, app, tenant, later, 5); ok {
		t.Error("admitted before the first admissions left the window")
	}
	if _, ok, _ := lims[2].Allow(ctx, app, tenant, now.Add(LimitWindow), 5); !ok {
		t.Error("throttled a window after the first admissions")
	}
	// A limit of 0 admits everything.
	if _, ok, err := lims[0].Allow(ctx, app, tenant, now, 0); !ok || err != nil {
		t.Errorf("limit 0: %v, %v", ok, err)
	}
	// A frozen clock: the window ends with the real clock too.
	frozen := time.Date(2026, 1, 1, 11, 0, 0, 0, time.UTC)
	other := presence.NewGUID()
	if _, ok, _ := lims[0].AllowWindow(ctx, app, other, frozen, 1, 300*time.Millisecond); !ok {
		t.Fatal("first request refused")
	}
	if _, ok, _ := lims[0].AllowWindow(ctx, app, other, frozen, 1, 300*time.Millisecond); ok {
		t.Fatal("second request allowed")
	}
	waitFor(t, 3*time.Second, "a frozen clock's window ends in real time", func() bool {
		_, ok, _ := lims[0].AllowWindow(ctx, app, other, frozen, 1, 300*time.Millisecond)
		return ok
	})
}

func TestSharedKey(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "sk" + presence.NewGUID()[:8]
	ctx := context.Background()
	var stores []*Store
	for _, n := range []string{"n1", "n2", "n3"} {
		stores = append(stores, open(t, srv.URL(), Options{Prefix: prefix, NodeID: n}))
	}
	var wg sync.WaitGroup
	got := make([][]byte, 12)
	for i := range got {
		wg.Go(func() {
			b, err := stores[i%3].SharedKey(ctx, "signing", func() ([]byte, error) {
				return []byte("key-" + presence.NewGUID() + "\x00\xff"), nil
			})
			if err != nil {
				t.Error(err)
			}
			got[i] = b
		})
	}
	wg.Wait()
	for i := range got {
		if len(got[i]) == 0 || !bytes.Equal(got[i], got[0]) {
			t.Fatalf("node %d got %q, node 0 %q", i, got[i], got[0])
		}
	}
	boom := errors.New("boom")
	if _, err := stores[0].SharedKey(ctx, "other", func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("create error: %v", err)
	}
}

func TestClock(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "ck" + presence.NewGUID()[:8]
	ctx := context.Background()
	a := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "a"}).Clock()
	b := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "b"}).Clock()
	start := a.Now()
	if d := time.Since(start); d < 0 || d > time.Minute {
		t.Fatalf("a new clock starts at %v, not the real time", start)
	}
	time.Sleep(10 * time.Millisecond)
	if got := b.Now(); !got.Equal(start) {
		t.Fatalf("b sees %v, a started at %v (the clock stands still)", got, start)
	}
	at, err := b.Advance(ctx, 5*time.Minute+time.Nanosecond)
	if err != nil || !at.Equal(start.Add(5*time.Minute+time.Nanosecond)) {
		t.Fatalf("Advance: %v, %v", at, err)
	}
	if got := a.Now(); !got.Equal(at) {
		t.Fatalf("a sees %v after b advanced to %v", got, at)
	}
	if got, _ := a.Set(ctx, start); !got.Equal(at) {
		t.Errorf("Set backwards moved the clock to %v", got)
	}
	later := at.Add(time.Hour)
	if got, _ := a.Set(ctx, later); !got.Equal(later) || !b.Now().Equal(later) {
		t.Errorf("Set forward: %v, b sees %v", got, b.Now())
	}
	// Durable: a restart of redis keeps it.
	srv.Kill9()
	if got := a.Now(); !got.Equal(later) {
		t.Errorf("with redis down Now = %v, want the last read %v", got, later)
	}
	srv.Restart()
	waitFor(t, 10*time.Second, "clock readable after restart", func() bool {
		_, err := a.Advance(ctx, 0)
		return err == nil
	})
	if got := b.Now(); !got.Equal(later) {
		t.Errorf("after a redis restart Now = %v, want %v", got, later)
	}
}

// A setting made through one node is read by every other.
func TestSettings(t *testing.T) {
	url := redistest.Start(t).URL()
	prefix := "settings" + presence.NewGUID()[:8]
	a := open(t, url, Options{Prefix: prefix, NodeID: "a"})
	b := open(t, url, Options{Prefix: prefix, NodeID: "b"})
	ctx := context.Background()
	if m, err := b.Settings(ctx); err != nil || len(m) != 0 {
		t.Fatalf("settings before any: %v, %v", m, err)
	}
	if err := a.SetSetting(ctx, "presencePer30s", "5"); err != nil {
		t.Fatal(err)
	}
	m, err := b.Settings(ctx)
	if err != nil || m["presencePer30s"] != "5" {
		t.Fatalf("node b reads %v (%v), want presencePer30s=5", m, err)
	}
}
