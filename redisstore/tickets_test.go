package redisstore

import (
	"context"
	"reflect"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

// A ticket put through one node is taken through another, once; an
// expired one is not.
func TestTickets(t *testing.T) {
	url := redistest.Start(t).URL()
	prefix := "tickets" + presence.NewGUID()[:8]
	a := open(t, url, Options{Prefix: prefix, NodeID: "a"}).Tickets()
	b := open(t, url, Options{Prefix: prefix, NodeID: "b"}).Tickets()
	ctx := context.Background()
	p := presence.Principal{Tenant: presence.NewGUID(), User: presence.NewGUID(), AppID: presence.NewGUID(), Delegated: true,
		Scopes: []string{presence.ScopePresenceRead}, ExpiresAt: time.Now().Add(time.Hour).Unix()}
	now := time.Now()
	if err := a.Put(ctx, "t1", p, now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := b.Take(ctx, "t1", now)
	if err != nil || !ok || !reflect.DeepEqual(got, p) {
		t.Fatalf("take through node b: %+v %v %v, want %+v", got, ok, err, p)
	}
	if _, ok, err := a.Take(ctx, "t1", now); ok || err != nil {
		t.Fatalf("a ticket was taken twice (%v, %v)", ok, err)
	}
	if err := a.Put(ctx, "t2", p, now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Take(ctx, "t2", now.Add(31*time.Second)); ok {
		t.Fatal("an expired ticket was taken")
	}
	if _, ok, _ := b.Take(ctx, "never", now); ok {
		t.Fatal("an unknown ticket was taken")
	}
}
