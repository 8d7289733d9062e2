package redisstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

func TestSubscriptionStore(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "subs" + presence.NewGUID()[:8]
	ctx := context.Background()
	a := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "a"}).Subscriptions()
	b := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "b"}).Subscriptions()
	now := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	tenant, creator, app := presence.NewGUID(), presence.NewGUID(), presence.NewGUID()
	mk := func(exp time.Time) presence.Subscription {
		return presence.Subscription{ID: presence.NewGUID(), Tenant: tenant, CreatorID: creator, ApplicationID: app,
			Users: []string{presence.NewGUID()}, ExpirationDateTime: exp, NotificationURL: "https://example.test/hook"}
	}
	v0, err := b.Version(ctx)
	if err != nil || v0 != 0 {
		t.Fatalf("Version of an empty store: %d, %v", v0, err)
	}
	// Two nodes race for one slot: exactly one wins.
	var wg sync.WaitGroup
	results := make([]error, 8)
	subs := make([]presence.Subscription, 8)
	for i := range results {
		subs[i] = mk(now.Add(time.Hour))
		wg.Go(func() {
			st := a
			if i%2 == 1 {
				st = b
			}
			results[i] = st.Put(ctx, subs[i], now)
		})
	}
	wg.Wait()
	won := -1
	for i, err := range results {
		switch {
		case err == nil && won < 0:
			won = i
		case err == nil:
			t.Fatalf("two subscriptions took one slot: %d and %d", won, i)
		case !errors.Is(err, presence.ErrSubscriptionSlotTaken):
			t.Fatalf("Put: %v", err)
		}
	}
	if won < 0 {
		t.Fatal("no Put won the slot")
	}
	got, ver, err := b.Load(ctx)
	if err != nil || len(got) != 1 || got[0].ID != subs[won].ID || ver == 0 {
		t.Fatalf("Load on b: %+v, %d, %v", got, ver, err)
	}
	// Patch on b, seen on a; the slot's expiry follows.
	patched := got[0]
	patched.ExpirationDateTime = now.Add(time.Minute)
	patched.ClientState = "x"
	if ok, err := b.Replace(ctx, patched); !ok || err != nil {
		t.Fatalf("Replace: %v, %v", ok, err)
	}
	if got, v, _ := a.Load(ctx); len(got) != 1 || got[0].ClientState != "x" || v <= ver {
		t.Fatalf("a after b's Replace: %+v version %d (was %d)", got, v, ver)
	}
	// Once the holder has expired, the slot is free.
	late := mk(now.Add(2 * time.Hour))
	if err := a.Put(ctx, late, now.Add(2*time.Minute)); err != nil {
		t.Fatalf("Put after the holder expired: %v", err)
	}
	// Delete on a; Replace of a deleted one writes nothing.
	if err := a.Delete(ctx, patched); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Replace(ctx, patched); ok || err != nil {
		t.Fatalf("Replace of a deleted subscription: %v, %v", ok, err)
	}
	if err := b.Delete(ctx, patched); err != nil {
		t.Fatalf("Delete twice: %v", err)
	}
	if got, _, _ := b.Load(ctx); len(got) != 1 || got[0].ID != late.ID {
		t.Fatalf("Load after delete: %+v", got)
	}
	if err := b.Delete(ctx, late); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, mk(now.Add(time.Hour)), now); err != nil {
		t.Fatalf("Put into a freed slot: %v", err)
	}
}
