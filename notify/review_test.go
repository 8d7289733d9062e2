package notify

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
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

// A subscription deleted while a PATCH of it waits for its new URL's
// handshake stays deleted: the PATCH answers 404 and does not store it
// again, so it does not come back at the next start.
func TestUpdateDoesNotResurrectDeleted(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	rx := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			close(entered)
			<-release
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
	}))
	defer rx.Close()
	dir := t.TempDir()
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	n, err := New(Config{Service: presence.NewService(memstore.New(), clock, nil), Dir: dir, Client: rx.Client()})
	if err != nil {
		t.Fatal(err)
	}
	p := presence.Principal{Tenant: tTenant, User: tUser1, AppID: tApp, Delegated: true, Scopes: []string{"Presence.Read.All"}}
	str := func(s string) *string { return &s }
	ctx := context.Background()
	sub, err := n.Create(ctx, p, presence.SubscriptionRequest{
		ChangeType: str("updated"), NotificationURL: str(rx.URL + "/hook"), Resource: str("communications/presences/" + tUser2),
		ExpirationDateTime: str(clock.Now().Add(time.Hour).Format(time.RFC3339)),
	})
	if err != nil {
		t.Fatal(err)
	}
	updated := make(chan error, 1)
	go func() {
		_, err := n.Update(ctx, p, sub.ID, presence.SubscriptionRequest{NotificationURL: str(rx.URL + "/moved")})
		updated <- err
	}()
	<-entered
	if err := n.Delete(ctx, p, sub.ID); err != nil {
		t.Fatal(err)
	}
	close(release)
	if err := <-updated; presence.ErrorCode(err) != presence.CodeNotFound {
		t.Errorf("the PATCH of a subscription deleted meanwhile: %v, want NotFound", err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := openSubStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if subs := st.all(); len(subs) != 0 {
		t.Errorf("after a restart, the deleted subscription is back: %+v", subs)
	}
}

// A receiver that answers the handshake's headers in time but not its body
// has timed out (4.3 #3): the answer is Graph's timeout message.
func TestHandshakeBodyTimeout(t *testing.T) {
	release := make(chan struct{})
	rx := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-release
	}))
	defer rx.Close()
	defer close(release)
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	n, err := New(Config{Service: presence.NewService(memstore.New(), clock, nil), Client: rx.Client(), ValidationTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = n.handshake(context.Background(), rx.URL+"/hook")
	var e *presence.Error
	if !errors.As(err, &e) || e.Message != msgTimeout {
		t.Errorf("a handshake whose body never came: %v, want %q", err, msgTimeout)
	}
}
