package presence_test

import (
	"context"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
)

const (
	tenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	app    = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	u1     = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	u2     = "66825e03-7ef5-42da-9069-724602c31f6b"
)

// watcher watches a fixed set of users and remembers Pending calls.
type watcher struct {
	mu      sync.Mutex
	watched map[presence.Key]bool
	pending []presence.Key
}

func (w *watcher) Watching(k presence.Key) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.watched[k]
}

func (w *watcher) Pending(k presence.Key) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pending = append(w.pending, k)
}

func setPresence(av, ac string, d time.Duration) *presence.SetPresence {
	return &presence.SetPresence{CallerApp: app, SessionID: app, Availability: av, Activity: ac, Expiration: &d}
}

// watchedService is a service on a memory store at a test clock, with
// k1 (user u1) watched by w and k2 (u2) not, and its change events
// subscribed.
type watchedService struct {
	clock  *presence.TestClock
	store  *memstore.Store
	svc    *presence.Service
	k1, k2 presence.Key
	w      *watcher
	events <-chan presence.Event
}

func newWatchedService(t *testing.T) *watchedService {
	f := &watchedService{
		clock: presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)),
		store: memstore.New(),
		k1:    presence.Key{Tenant: tenant, User: u1},
		k2:    presence.Key{Tenant: tenant, User: u2},
	}
	f.svc = presence.NewService(f.store, f.clock, nil)
	f.w = &watcher{watched: map[presence.Key]bool{f.k1: true}}
	f.svc.SetWatcher(f.w)
	events, cancel := f.svc.Subscribe(16)
	t.Cleanup(cancel)
	f.events = events
	return f
}

func TestServiceOutbox(t *testing.T) {
	ctx := context.Background()
	f := newWatchedService(t)
	clock, store, svc, k1, k2, w, events := f.clock, f.store, f.svc, f.k1, f.k2, f.w, f.events

	for _, k := range []presence.Key{k1, k2} {
		if _, err := svc.Do(ctx, k, setPresence("Available", "Available", time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// A refresh that changes nothing visible records nothing.
	if _, err := svc.Do(ctx, k1, setPresence("Available", "Available", time.Hour)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Hour)
	if _, err := svc.Fire(ctx); err != nil {
		t.Fatal(err)
	}
	box, err := svc.Outbox(ctx, k1)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []presence.Pair
	for i, n := range box {
		pairs = append(pairs, n.Pair)
		if i > 0 && n.Seq <= box[i-1].Seq {
			t.Errorf("outbox not in sequence order: %+v", box)
		}
	}
	want := []presence.Pair{{Availability: "Available", Activity: "Available"}, {Availability: "Available", Activity: "AvailableInactive"},
		{Availability: "Away", Activity: "Away"}, {Availability: "Offline", Activity: "Offline"}}
	if len(pairs) != len(want) {
		t.Fatalf("outbox %v, want %v", pairs, want)
	}
	for i := range want {
		if pairs[i] != want[i] {
			t.Fatalf("outbox %v, want %v", pairs, want)
		}
	}
	if box2, _ := svc.Outbox(ctx, k2); len(box2) != 0 {
		t.Errorf("unwatched user has an outbox: %+v", box2)
	}
	if len(w.pending) == 0 || w.pending[0] != k1 {
		t.Errorf("Pending calls %v", w.pending)
	}
	// Both users' changes reach the in-process stream, watched or not.
	if got := len(events); got != 8 {
		t.Errorf("%d events on the stream, want 8", got)
	}

	if err := svc.TrimOutbox(ctx, k1, box[1].Seq); err != nil {
		t.Fatal(err)
	}
	if rest, _ := svc.Outbox(ctx, k1); len(rest) != 2 || rest[0].Seq != box[2].Seq {
		t.Fatalf("after trim: %+v", rest)
	}
	// A service started anew over the same store finds the outbox, and
	// counts the sessions stored.
	if _, err := svc.Do(ctx, presence.Key{Tenant: tenant, User: u2}, setPresence("Busy", "InACall", time.Hour)); err != nil {
		t.Fatal(err)
	}
	again := presence.NewService(store, clock, nil)
	found := 0
	if err := again.Recover(ctx, func(k presence.Key, n []presence.Notice) {
		if k == k1 && len(n) == 2 {
			found++
		}
	}); err != nil || found != 1 {
		t.Fatalf("Recover: %v, found %d outboxes", err, found)
	}
	if got, want := again.Stats().Sessions, svc.Stats().Sessions; got != want || got == 0 {
		t.Errorf("sessions after Recover: %d, want %d as counted by the writes", got, want)
	}
}

func TestServiceOutboxBounded(t *testing.T) {
	ctx := context.Background()
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(memstore.New(), clock, nil)
	k := presence.Key{Tenant: tenant, User: u1}
	svc.SetWatcher(&watcher{watched: map[presence.Key]bool{k: true}})
	pairs := [][2]string{{"Busy", "InACall"}, {"Away", "Away"}}
	for i := 0; i < presence.MaxOutbox+10; i++ {
		p := pairs[i%2]
		if _, err := svc.Do(ctx, k, setPresence(p[0], p[1], time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	box, _ := svc.Outbox(ctx, k)
	if len(box) != presence.MaxOutbox || svc.Stats().OutboxDropped != 10 {
		t.Fatalf("outbox %d notices, %d dropped", len(box), svc.Stats().OutboxDropped)
	}
	if box[len(box)-1].Pair.Availability != "Away" {
		t.Fatalf("newest notice %+v", box[len(box)-1])
	}
}

// TestServiceWatchQuiet checks that a write that leaves the visible pair as
// it was (a work location, a status message) makes no change event, and
// reaches the quiet watch instead; a change of the pair does not.
func TestServiceWatchQuiet(t *testing.T) {
	ctx := context.Background()
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(memstore.New(), clock, nil)
	k := presence.Key{Tenant: tenant, User: u1}
	events, cancel := svc.Subscribe(16)
	defer cancel()
	quiet := svc.WatchQuiet(16)
	defer quiet.Close()

	if _, err := svc.Do(ctx, k, setPresence("Available", "Available", time.Hour)); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.After.Pair.Availability != "Available" {
		t.Fatalf("pair event = %+v", ev)
	}
	if _, err := svc.Do(ctx, k, &presence.SetLocation{Type: "office", HasType: true, PlaceID: "Building 4"}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Do(ctx, k, &presence.SetStatusMessage{Content: "Heads down"}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-events:
		t.Fatalf("a change of the work location or status message made a change event: %+v", ev)
	default:
	}
	next := func() presence.Event {
		t.Helper()
		select {
		case ev := <-quiet.Events():
			return ev
		default:
			t.Fatal("a write that left the pair as it was is not on the quiet watch")
			return presence.Event{}
		}
	}
	if ev := next(); ev.Key != k || ev.After.WorkLocation != (presence.WorkLocation{Type: "office", Source: "manual", PlaceID: "Building 4"}) {
		t.Fatalf("quiet event = %+v, want the manual work location", ev)
	}
	if ev := next(); ev.After.Status == nil || ev.After.Status.Content != "Heads down" {
		t.Fatalf("quiet event = %+v, want the status message", ev)
	}
	select {
	case ev := <-quiet.Events():
		t.Fatalf("unexpected quiet event %+v (the first write changed the pair)", ev)
	default:
	}
}
