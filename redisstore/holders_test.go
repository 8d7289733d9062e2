package redisstore

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

// The registry of session holders, through two nodes: a live holder's
// record is renewed; an expired one is claimed by one node (not twice),
// with the sessions listed under it; a claimed holder cannot renew; and a
// forgotten one leaves nothing behind.
func TestHolders(t *testing.T) {
	url := redistest.Start(t).URL()
	prefix := "holders" + presence.NewGUID()[:8]
	a := open(t, url, Options{Prefix: prefix, NodeID: "a"}).Holders()
	b := open(t, url, Options{Prefix: prefix, NodeID: "b"}).Holders()
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
	tenant := presence.NewGUID()
	laptop := presence.HeldSession{Key: presence.Key{Tenant: tenant, User: presence.NewGUID()}, Device: "laptop"}
	phone := presence.HeldSession{Key: presence.Key{Tenant: tenant, User: "someone@example.com"}, Device: "phone.1:x_y-z"}
	gone := presence.HeldSession{Key: laptop.Key, Device: "gone"}

	for _, h := range []string{"a.1", "b.1"} {
		if err := a.Register(ctx, h, t0.Add(20*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Add(ctx, "a.1", laptop, phone, gone); err != nil {
		t.Fatal(err)
	}
	if err := a.Remove(ctx, "a.1", gone); err != nil {
		t.Fatal(err)
	}
	if alive, err := b.Renew(ctx, "b.1", t0.Add(40*time.Second)); !alive || err != nil {
		t.Fatalf("renew of a live holder: %v, %v", alive, err)
	}
	// A renewal to an earlier instant does not shorten the record.
	if alive, err := b.Renew(ctx, "b.1", t0.Add(10*time.Second)); !alive || err != nil {
		t.Fatalf("an earlier renewal of a live holder: %v, %v", alive, err)
	}
	if alive, err := b.Renew(ctx, "never", t0.Add(40*time.Second)); alive || err != nil {
		t.Fatalf("renew of an unknown holder: %v, %v", alive, err)
	}
	// Before either expires, nothing is claimed.
	if got, err := b.Claim(ctx, t0.Add(19*time.Second), t0.Add(29*time.Second), 8); len(got) != 0 || err != nil {
		t.Fatalf("claim before the expiry: %+v, %v", got, err)
	}
	// At 30 s a.1 is expired, b.1 (renewed to 40 s) is not.
	got, err := b.Claim(ctx, t0.Add(30*time.Second), t0.Add(40*time.Second), 8)
	if err != nil || len(got) != 1 || got[0].Holder != "a.1" {
		t.Fatalf("claim at 30 s: %+v, %v; want a.1", got, err)
	}
	held := slices.Clone(got[0].Held)
	slices.SortFunc(held, func(x, y presence.HeldSession) int { return strings.Compare(x.Device, y.Device) })
	if !slices.Equal(held, []presence.HeldSession{laptop, phone}) {
		t.Fatalf("held %+v, want the laptop and the phone", held)
	}
	// Claimed: neither claimed again before the claim's end nor renewed.
	if again, _ := a.Claim(ctx, t0.Add(35*time.Second), t0.Add(45*time.Second), 8); len(again) != 0 {
		t.Fatalf("claimed twice: %+v", again)
	}
	if alive, err := a.Renew(ctx, "a.1", t0.Add(60*time.Second)); alive || err != nil {
		t.Fatalf("renew of a claimed holder: %v, %v", alive, err)
	}
	// A claim whose node died runs out, and the next node takes it.
	if again, _ := a.Claim(ctx, t0.Add(41*time.Second), t0.Add(51*time.Second), 1); len(again) != 1 || again[0].Holder != "a.1" {
		t.Fatalf("claim after the first claim ran out: %+v, want a.1 (the limit keeps b.1 out)", again)
	}
	if err := a.Forget(ctx, "a.1"); err != nil {
		t.Fatal(err)
	}
	// b.1 expired at 40 s and is the only one left.
	rest, err := a.Claim(ctx, t0.Add(time.Hour), t0.Add(time.Hour+10*time.Second), 8)
	if err != nil || len(rest) != 1 || rest[0].Holder != "b.1" || len(rest[0].Held) != 0 {
		t.Fatalf("after forgetting a.1: %+v, %v; want only b.1, holding nothing", rest, err)
	}
	if err := a.Register(ctx, "a.1", t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if alive, _ := a.Renew(ctx, "a.1", t0.Add(2*time.Hour)); !alive {
		t.Fatal("a holder registered again after Forget is not alive")
	}
}
