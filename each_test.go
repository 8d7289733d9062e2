package presence_test

import (
	"context"
	"errors"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
)

// TestServiceDoEach checks that DoEach gives each command the outcome Do
// would: its own validation or domain error, the change events, the
// notices of watched users, and the stored result.
func TestServiceDoEach(t *testing.T) {
	ctx := context.Background()
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(memstore.New(), clock, nil)
	k1 := presence.Key{Tenant: tenant, User: u1}
	k2 := presence.Key{Tenant: tenant, User: u2}
	w := &watcher{watched: map[presence.Key]bool{k1: true}}
	svc.SetWatcher(w)
	events, cancel := svc.Subscribe(16)
	defer cancel()

	keys := []presence.Key{k1, k2, k2, k1}
	cmds := []presence.Command{
		setPresence("Available", "Available", time.Hour),
		setPresence("Available", "Busy", time.Hour), // not a valid pair
		setPresence("Busy", "InACall", time.Hour),
		&presence.RenewConnection{Device: "phone", Until: clock.Now().Add(time.Minute)}, // no such session
	}
	errs := svc.DoEach(ctx, keys, cmds)
	if len(errs) != len(keys) {
		t.Fatalf("DoEach returned %d errors for %d commands", len(errs), len(keys))
	}
	if errs[0] != nil || errs[2] != nil {
		t.Errorf("valid commands failed: %v, %v", errs[0], errs[2])
	}
	if !errors.Is(errs[1], &presence.Error{Code: presence.CodeInvalidArgument}) {
		t.Errorf("an invalid pair: %v, want invalidArgument", errs[1])
	}
	if !errors.Is(errs[3], &presence.Error{Code: presence.CodeNotFound}) {
		t.Errorf("renewing a session that does not exist: %v, want notFound", errs[3])
	}
	got := map[presence.Key]presence.Pair{}
	for range 2 {
		select {
		case ev := <-events:
			got[ev.Key] = ev.After.Pair
		default:
			t.Fatalf("DoEach published %d change events, want 2", len(got))
		}
	}
	if got[k1] != (presence.Pair{Availability: "Available", Activity: "Available"}) || got[k2] != (presence.Pair{Availability: "Busy", Activity: "InACall"}) {
		t.Errorf("change events %v", got)
	}
	if len(w.pending) != 1 || w.pending[0] != k1 {
		t.Errorf("notices recorded for %v, want the watched user only", w.pending)
	}
	views, err := svc.Read(ctx, tenant, []string{u1, u2})
	if err != nil {
		t.Fatal(err)
	}
	if views[0].Pair != got[k1] || views[1].Pair != got[k2] {
		t.Errorf("stored %v and %v, want what the events said", views[0].Pair, views[1].Pair)
	}
}
