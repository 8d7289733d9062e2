package presence_test

import (
	"context"
	"errors"
	"sync/atomic"
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
	f := newWatchedService(t)
	clock, svc, k1, k2, w, events := f.clock, f.svc, f.k1, f.k2, f.w, f.events

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

// syncingWatcher is a watcher whose subscriptions other nodes share: its
// sync learns of a subscription to learns, or fails with err.
type syncingWatcher struct {
	watcher
	shared bool
	learns presence.Key
	err    error
	syncs  atomic.Int32
}

func (w *syncingWatcher) WatchShared() bool { return w.shared }

func (w *syncingWatcher) SyncWatching(context.Context) error {
	w.syncs.Add(1)
	if w.err != nil {
		return w.err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.watched[w.learns] = true
	return nil
}

// TestServiceSyncsSharedSubscriptions checks the subscriptions' sync
// around a write on a shared store: a subscription the sync learns of is
// honoured by the write it began with, a failed sync fails the write with
// nothing stored, DoEach syncs once for all its commands, and a watcher
// whose subscriptions are not shared is never synced.
func TestServiceSyncsSharedSubscriptions(t *testing.T) {
	ctx := context.Background()
	k1 := presence.Key{Tenant: tenant, User: u1}
	k2 := presence.Key{Tenant: tenant, User: u2}
	start := func(w *syncingWatcher) *presence.Service {
		w.watched = map[presence.Key]bool{}
		svc := presence.NewService(memstore.New(), presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)), nil)
		svc.SetWatcher(w)
		return svc
	}

	w := &syncingWatcher{shared: true, learns: k1}
	svc := start(w)
	if _, err := svc.Do(ctx, k1, setPresence("Busy", "InACall", time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(w.pending) != 1 || w.pending[0] != k1 || w.syncs.Load() != 1 {
		t.Errorf("notices for %v after %d syncs; want the user the sync learned of, after 1", w.pending, w.syncs.Load())
	}
	errs := svc.DoEach(ctx, []presence.Key{k1, k2}, []presence.Command{setPresence("Away", "Away", time.Hour), setPresence("Away", "Away", time.Hour)})
	if errs[0] != nil || errs[1] != nil || w.syncs.Load() != 2 {
		t.Errorf("DoEach: %v, %d syncs in all; want one more", errs, w.syncs.Load())
	}

	boom := errors.New("subscriptions unreadable")
	w = &syncingWatcher{shared: true, learns: k1, err: boom}
	svc = start(w)
	if _, err := svc.Do(ctx, k1, setPresence("Busy", "InACall", time.Hour)); !errors.Is(err, boom) {
		t.Errorf("write with a failed sync: %v, want the sync's error", err)
	}
	if v, err := svc.Read(ctx, tenant, []string{u1}); err != nil || v[0].Pair.Availability == "Busy" {
		t.Errorf("a write whose sync failed was stored: %+v, %v", v, err)
	}

	w = &syncingWatcher{learns: k1}
	svc = start(w)
	if _, err := svc.Do(ctx, k1, setPresence("Busy", "InACall", time.Hour)); err != nil || w.syncs.Load() != 0 {
		t.Errorf("subscriptions of this node alone: %v, %d syncs; want none", err, w.syncs.Load())
	}
}
