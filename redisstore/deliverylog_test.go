package redisstore

import (
	"context"
	"errors"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

func TestDeliveryLogShared(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "dl" + presence.NewGUID()[:8]
	ctx := context.Background()
	a := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "n1"}).DeliveryLog()
	b := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "n2"}).DeliveryLog()
	sub, other := presence.NewGUID(), presence.NewGUID()
	at := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

	// Nothing recorded: an empty log, no error.
	if got, err := b.Recent(ctx, sub); err != nil || len(got) != 0 {
		t.Fatalf("empty log: %v, %v", got, err)
	}
	first := presence.DeliveryAttempt{
		Subscription: sub, At: at, Count: 1, Status: 202, Latency: 3 * time.Millisecond, Attempt: 1,
		Outcome: presence.DeliveryDelivered,
		Items:   []presence.DeliveredItem{{User: "u1", Seq: 7, Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}}},
	}
	if err := a.Record(ctx, first); err != nil {
		t.Fatal(err)
	}
	got, err := b.Recent(ctx, sub)
	if err != nil || len(got) != 1 {
		t.Fatalf("recorded on n1, read on n2: %v, %v", got, err)
	}
	if g := got[0]; !g.At.Equal(at) || g.Status != 202 || g.Latency != first.Latency || g.Outcome != first.Outcome ||
		len(g.Items) != 1 || g.Items[0] != first.Items[0] {
		t.Errorf("read back %+v, want %+v", g, first)
	}

	// Bounded, newest first; many items are cut to the bound; another
	// subscription's log is apart.
	many := make([]presence.DeliveredItem, 30)
	for i := range deliveryLogLen + 10 {
		rec := presence.DeliveryAttempt{Subscription: sub, At: at.Add(time.Duration(i+1) * time.Second), Attempt: i + 2,
			Status: 500, Outcome: presence.DeliveryRetrying, NextRetry: at.Add(time.Hour), Items: many, Count: len(many)}
		l := a
		if i%2 == 1 {
			l = b
		}
		if err := l.Record(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Record(ctx, presence.DeliveryAttempt{Subscription: other, At: at, Outcome: presence.DeliveryDropped}); err != nil {
		t.Fatal(err)
	}
	got, err = a.Recent(ctx, sub)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != deliveryLogLen {
		t.Fatalf("%d attempts kept, want %d", len(got), deliveryLogLen)
	}
	for i, g := range got {
		if want := deliveryLogLen + 11 - i; g.Attempt != want {
			t.Fatalf("attempt %d is number %d, want %d (newest first)", i, g.Attempt, want)
		}
		if len(g.Items) != deliveryLogItems || g.Count != 30 {
			t.Fatalf("attempt %d keeps %d items of %d, want %d of 30", i, len(g.Items), g.Count, deliveryLogItems)
		}
	}
	if got, _ := a.Recent(ctx, other); len(got) != 1 || got[0].Outcome != presence.DeliveryDropped {
		t.Errorf("the other subscription's log: %+v", got)
	}

	// One key per subscription, with a TTL.
	s := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "n3"})
	cli, _ := s.client()
	ttl, err := cli.Do(ctx, cli.B().Pttl().Key(s.DeliveryLog().key(sub)).Build()).AsInt64()
	if err != nil || ttl <= 0 || ttl > DeliveryLogTTL.Milliseconds() {
		t.Errorf("the log's TTL is %d ms (%v), want within (0, %v]", ttl, err, DeliveryLogTTL)
	}

	// A closed store answers with its error, not a panic.
	_ = s.Close()
	if err := s.DeliveryLog().Record(ctx, first); !errors.Is(err, ErrClosed) {
		t.Errorf("Record on a closed store: %v", err)
	}
}
