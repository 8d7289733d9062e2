package notify

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	presence "github.com/presenced/presenced"
)

func TestDeliveryLogRecordsAttempts(t *testing.T) {
	h := newHarness(t)
	sub := h.subscribe(tUser1)
	h.sink.answer(http.StatusInternalServerError)
	h.set(tUser1, "Busy", "InACall")
	at := h.clock.Now()
	h.advance(0)
	got, _ := h.n.Deliveries(context.Background(), sub.ID)
	if len(got) != 1 {
		t.Fatalf("after one attempt the log holds %d: %+v", len(got), got)
	}
	a := got[0]
	if a.Status != 500 || a.Outcome != presence.DeliveryRetrying || a.Attempt != 1 || !a.At.Equal(at) ||
		!a.NextRetry.Equal(at.Add(firstBackoff)) || a.Count != 1 || a.Lifecycle || a.Latency <= 0 {
		t.Fatalf("the failed attempt: %+v", a)
	}
	if len(a.Items) != 1 || a.Items[0].User != tUser1 || a.Items[0].Seq == 0 || a.Items[0].Pair != (presence.Pair{Availability: "Busy", Activity: "InACall"}) {
		t.Fatalf("the failed attempt's items: %+v", a.Items)
	}
	h.sink.answer(http.StatusAccepted)
	h.advance(firstBackoff)
	got, _ = h.n.Deliveries(context.Background(), sub.ID)
	if len(got) != 2 {
		t.Fatalf("after the retry the log holds %d: %+v", len(got), got)
	}
	if r := got[0]; r.Status != 202 || r.Outcome != presence.DeliveryDelivered || r.Attempt != 2 || !r.NextRetry.IsZero() {
		t.Fatalf("the retry (newest first): %+v", r)
	}
	if subs, err := h.n.TenantSubscriptions(context.Background(), tTenant); err != nil || len(subs) != 1 || subs[0].ID != sub.ID {
		t.Fatalf("TenantSubscriptions: %+v", subs)
	}
	if subs, err := h.n.TenantSubscriptions(context.Background(), "5e1f0a2b-1111-4111-8111-0000000000b2"); err != nil || len(subs) != 0 {
		t.Fatalf("another tenant's subscriptions: %+v", subs)
	}
}

func TestDeliveryLogIsBounded(t *testing.T) {
	l := NewMemoryDeliveryLog()
	for i := range logPerSubscription + 10 {
		l.add(presence.DeliveryAttempt{Subscription: "a", Attempt: i})
	}
	got := l.recent("a")
	if len(got) != logPerSubscription || got[0].Attempt != logPerSubscription+9 || got[len(got)-1].Attempt != 10 {
		t.Fatalf("a full ring: %d kept, newest %d, oldest %d", len(got), got[0].Attempt, got[len(got)-1].Attempt)
	}
	for i := range logSubscriptions {
		l.add(presence.DeliveryAttempt{Subscription: fmt.Sprint("s", i)})
	}
	if len(l.bySub) != logSubscriptions {
		t.Fatalf("%d subscriptions kept, want %d", len(l.bySub), logSubscriptions)
	}
	if l.recent("a") != nil {
		t.Fatal("the least recently written subscription was not forgotten")
	}
	if l.recent("nope") != nil {
		t.Fatal("an unknown subscription has attempts")
	}
}
