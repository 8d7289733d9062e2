package notify

import (
	"context"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// A subscription past its expirationDateTime frees its (user, app) slot at
// once, before lifecycle removes it; and removing it then leaves its
// successor's slot alone.
func TestExpiredSubscriptionFreesSlot(t *testing.T) {
	h := newHarness(t)
	old := h.subscribe(tUser2)
	h.clock.Advance(time.Hour) // expired, not yet removed
	next := h.subscribe(tUser2)
	if err := h.n.Flush(context.Background()); err != nil { // removes old
		t.Fatal(err)
	}
	if _, ok := h.n.subscription(old.ID); ok {
		t.Fatal("the expired subscription was not removed")
	}
	p := presence.Principal{Tenant: tTenant, User: tUser1, AppID: tApp, Delegated: true, Scopes: []string{"Presence.Read.All"}}
	str := func(s string) *string { return &s }
	_, err := h.n.Create(context.Background(), p, presence.SubscriptionRequest{
		ChangeType: str("updated"), NotificationURL: str(h.sink.srv.URL), Resource: str("communications/presences/" + tUser2),
		ExpirationDateTime: str(h.clock.Now().Add(time.Hour).Format(time.RFC3339)),
	})
	if presence.ErrorCode(err) != presence.CodeExtensionError {
		t.Fatalf("a second subscription beside %s: %v, want the 409", next.ID, err)
	}
}

// Nothing is delivered for a subscription whose expirationDateTime has
// passed, even before lifecycle removes it.
func TestNoDeliveryPastExpiry(t *testing.T) {
	h := newHarness(t)
	h.subscribe(tUser1)
	h.set(tUser1, "Busy", "InACall")
	h.clock.Advance(time.Hour)
	if err := h.n.d.flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := h.sink.count(); n != 0 {
		t.Fatalf("%d notifications for an expired subscription", n)
	}
}
