// Package storetest is the conformance suite that every presence.Store
// implementation runs:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) presence.Store { return memstore.New() })
//	}
//
// Run checks the contract of presence.Store; RunDurable adds the checks of
// a store that keeps its data across Close and a new open.
//
// The suite closes every store it opens (and expects Close to succeed), so
// factories must not close them. Every store a factory returns must be
// empty: the suite uses random tenant ids, but Due spans all tenants.
//
// Beyond the interface's comments, the suite pins down these rules:
//
//   - Get answers every requested user in order, duplicates included.
//   - On any error from Update, nothing is written; an error from fn is
//     returned unchanged (errors.Is holds).
//   - Update with a context that has already ended writes nothing and
//     returns an error wrapping the context's error.
//   - Every State handed out, and the State fn edits, is the caller's own
//     deep copy.
//   - presence.UpdateEach (a store's own UpdateEach, if it has one) updates
//     each user exactly once, as Update would, in any interleaving with
//     Updates of the same users.
//   - Due returns keys earliest Due first, each at most once per call, and
//     does not consume them: a key is returned again by later calls until an
//     Update changes its Due to zero or to an instant after now.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// t0 is the instant around which the suite's states are built.
func t0() time.Time { return time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC) }

// Run runs the conformance suite against the stores open returns. Each call
// of open must return a new, empty store.
func Run(t *testing.T, open func(t *testing.T) presence.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(*testing.T, presence.Store)
	}{
		{"GetUnknown", testGetUnknown},
		{"UpdateBeforeAfter", testUpdateBeforeAfter},
		{"UpdateFnError", testUpdateFnError},
		{"UpdateCancelled", testUpdateCancelled},
		{"Copies", testCopies},
		{"ConcurrentSameKey", testConcurrentSameKey},
		{"ConcurrentKeys", testConcurrentKeys},
		{"TenantIsolation", testTenantIsolation},
		{"Due", testDue},
		{"DueLimit", testDueLimit},
		{"LargeGet", testLargeGet},
		{"Scan", testScan},
		{"Visit", testVisit},
		{"UpdateEach", testUpdateEach},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			defer closeStore(t, s)
			tc.fn(t, s)
		})
	}
	t.Run("Model", func(t *testing.T) { testModel(t, open) })
}

func closeStore(t *testing.T, s presence.Store) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// newID returns a random lower-case GUID.
func newID() string { return presence.NewGUID() }

// richState returns a State with every field set, distinct for each i.
func richState(i int) presence.State {
	msg := fmt.Sprintf("away %d", i)
	at := t0().Add(time.Duration(i) * time.Second)
	st := presence.State{
		Sessions: []presence.Session{
			{ID: newID(), Kind: presence.AppSession, Pair: presence.Pair{Availability: "Busy", Activity: "InACall"},
				RefreshedAt: at, ExpiresAt: at.Add(5 * time.Minute)},
			{ID: fmt.Sprintf("client-%d", i), Kind: presence.ClientSession, Pair: presence.Pair{Availability: "Available", Activity: "Available"},
				RefreshedAt: at},
		},
		Preferred: &presence.Preferred{Pair: presence.Pair{Availability: "DoNotDisturb", Activity: "Presenting"}, ExpiresAt: at.Add(time.Hour)},
		Status: &presence.StatusMessage{Content: fmt.Sprintf("<p>status %d</p>", i), ContentType: "html", PublishedAt: at,
			Expiry: &presence.Expiry{DateTime: "2025-03-15T08:00:00.0000000", TimeZone: "Pacific Standard Time", At: at.Add(24 * time.Hour)}},
		OOF:          presence.OutOfOfficeSettings{IsOutOfOffice: i%2 == 0, Message: &msg},
		CalendarBusy: i%3 == 0,
		Seq:          uint64(i + 1),
		SeqAt:        at,
		Due:          at.Add(5 * time.Minute),
		Outbox:       []presence.Notice{{Seq: uint64(i + 1), At: at, Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}}},
	}
	if i%3 == 1 { // a third with a connection's session held under a record
		st.Sessions = append(st.Sessions, presence.Session{ID: fmt.Sprintf("laptop-%d", i), Kind: presence.ConnectionSession,
			Pair: presence.Pair{Availability: "Busy", Activity: "Busy"}, RefreshedAt: at, ExpiresAt: at.Add(10 * time.Minute), Holder: fmt.Sprintf("n%d.%s", i, newID()[:13])})
	}
	if i%2 == 1 { // half of them with a work location and plan (a newer encoding)
		st.Work = &presence.WorkState{
			Manual:   &presence.LocationSignal{Type: "office", PlaceID: fmt.Sprintf("building-%d", i), Until: at.Add(8 * time.Hour)},
			TimeZone: "Europe/Berlin",
			Recurrences: []presence.PlanRecurrence{{ID: newID(),
				Start: presence.PlanTime{DateTime: "2025-03-10T09:00:00", TimeZone: "W. Europe Standard Time"},
				End:   presence.PlanTime{DateTime: "2025-03-10T17:00:00", TimeZone: "W. Europe Standard Time"},
				Type:  "remote", Days: 0x3e, Interval: 1, RangeType: "noEnd", StartDate: "2025-03-10"}},
			Occurrences: []presence.PlanOccurrence{{ID: newID(), StartAt: at, EndAt: at.Add(time.Hour), Type: "timeOff",
				TimeOff: &presence.TimeOffDetails{Subject: "dentist"}}},
		}
	}
	return st
}

// testScan checks that Scan visits every written user exactly once, with
// its latest state, across tenants, and stops at fn's error.
func testScan(t *testing.T, s presence.Store) {
	ctx := context.Background()
	want := map[presence.Key]presence.State{}
	for i := 0; i < 300; i++ {
		k := presence.Key{Tenant: newID(), User: newID()}
		if i%2 == 1 {
			k.Tenant = "shared-tenant"
		}
		st := richState(i)
		mustUpdate(t, s, k, set(st))
		want[k] = st
	}
	seen := map[presence.Key]int{}
	err := s.Scan(ctx, func(k presence.Key, st presence.State) error {
		seen[k]++
		w, ok := want[k]
		if !ok {
			t.Errorf("Scan visited unknown key %v", k)
		} else {
			wantState(t, "Scan of "+k.String(), st, w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range want {
		if seen[k] != 1 {
			t.Errorf("Scan visited %v %d times", k, seen[k])
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.Scan(ctx, func(presence.Key, presence.State) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Scan after fn error: %v after %d calls", err, calls)
	}
}

// testVisit checks that Visit lends each user's state in order, the same
// as Get's, including when a rich state is followed by sparse or unknown
// ones (storage reused from one user to the next must not leak), and that
// a closed context is refused.
func testVisit(t *testing.T, s presence.Store) {
	ctx := context.Background()
	tenant := newID()
	var users []string
	for i := 0; i < 40; i++ {
		u := newID()
		users = append(users, u)
		switch i % 4 {
		case 0:
			mustUpdate(t, s, presence.Key{Tenant: tenant, User: u}, set(richState(i)))
		case 1:
			sparse := presence.State{Seq: uint64(i), SeqAt: t0(), Sessions: []presence.Session{{ID: newID(), Kind: presence.AppSession,
				Pair: presence.Pair{Availability: "Away", Activity: "Away"}, RefreshedAt: t0(), ExpiresAt: t0().Add(time.Hour)}}}
			mustUpdate(t, s, presence.Key{Tenant: tenant, User: u}, set(sparse))
		case 2:
			// never written
		case 3:
			mustUpdate(t, s, presence.Key{Tenant: tenant, User: u}, set(presence.State{Seq: 7, SeqAt: t0(), CalendarBusy: true}))
		}
	}
	users = append(users, users[0], users[2], users[1])
	want := mustGet(t, s, tenant, users...)
	next := 0
	err := s.Visit(ctx, tenant, users, func(i int, st *presence.State) {
		if i != next {
			t.Errorf("Visit: index %d, want %d", i, next)
		}
		next++
		wantState(t, fmt.Sprintf("Visit of user %d", i), *st, want[i])
	})
	if err != nil {
		t.Fatal(err)
	}
	if next != len(users) {
		t.Errorf("Visit called fn %d times, want %d", next, len(users))
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Visit(cancelled, tenant, users, func(int, *presence.State) {}); !errors.Is(err, context.Canceled) {
		t.Errorf("Visit with a cancelled context: %v, want context.Canceled", err)
	}
}

// set returns an update function that replaces the state with want.
func set(want presence.State) func(*presence.State) error {
	return func(s *presence.State) error {
		*s = want.Clone()
		return nil
	}
}

// sameState reports whether a and b are equal as stored: by their JSON,
// which compares instants with their encoding rather than Go's internals.
func sameState(a, b presence.State) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(ja) == string(jb)
}

func mustJSON(s presence.State) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func mustUpdate(t testing.TB, s presence.Store, key presence.Key, fn func(*presence.State) error) (presence.State, presence.State) {
	t.Helper()
	before, after, err := s.Update(context.Background(), key, fn)
	if err != nil {
		t.Fatalf("Update(%s): %v", key, err)
	}
	return before, after
}

func mustGet(t testing.TB, s presence.Store, tenant string, users ...string) []presence.State {
	t.Helper()
	got, err := s.Get(context.Background(), tenant, users)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if len(got) != len(users) {
		t.Fatalf("Get of %d users returned %d states", len(users), len(got))
	}
	return got
}

func mustDue(t testing.TB, s presence.Store, now time.Time, limit int) []presence.Key {
	t.Helper()
	got, err := s.Due(context.Background(), now, limit)
	if err != nil {
		t.Fatalf("Due: %v", err)
	}
	return got
}

func wantState(t testing.TB, what string, got, want presence.State) {
	t.Helper()
	if !sameState(got, want) {
		t.Errorf("%s:\n got %s\nwant %s", what, mustJSON(got), mustJSON(want))
	}
}

func testGetUnknown(t *testing.T, s presence.Store) {
	tenant, u1, u2 := newID(), newID(), newID()
	got := mustGet(t, s, tenant, u1, u2, u1)
	for i, st := range got {
		if !st.IsZero() {
			t.Errorf("Get of unknown user [%d] = %s, want the zero State", i, mustJSON(st))
		}
	}
	if got := mustGet(t, s, tenant); len(got) != 0 {
		t.Errorf("Get of no users returned %d states", len(got))
	}
	want := richState(1)
	mustUpdate(t, s, presence.Key{Tenant: tenant, User: u2}, set(want))
	got = mustGet(t, s, tenant, u1, u2, u1, u2)
	for i, w := range []presence.State{{}, want, {}, want} {
		wantState(t, fmt.Sprintf("Get[%d]", i), got[i], w)
	}
}

func testUpdateBeforeAfter(t *testing.T, s presence.Store) {
	key := presence.Key{Tenant: newID(), User: newID()}
	first := richState(1)
	before, after := mustUpdate(t, s, key, func(st *presence.State) error {
		if !st.IsZero() {
			t.Errorf("fn saw %s for a new user, want the zero State", mustJSON(*st))
		}
		*st = first.Clone()
		return nil
	})
	if !before.IsZero() {
		t.Errorf("first Update: before = %s, want zero", mustJSON(before))
	}
	wantState(t, "first Update: after", after, first)

	before, after = mustUpdate(t, s, key, func(st *presence.State) error {
		wantState(t, "fn input", *st, first)
		st.Seq++
		st.CalendarBusy = !st.CalendarBusy
		st.Sessions = st.Sessions[:1]
		return nil
	})
	second := first.Clone()
	second.Seq++
	second.CalendarBusy = !second.CalendarBusy
	second.Sessions = second.Sessions[:1]
	wantState(t, "second Update: before", before, first)
	wantState(t, "second Update: after", after, second)
	wantState(t, "Get after Update", mustGet(t, s, key.Tenant, key.User)[0], second)
}

func testUpdateFnError(t *testing.T, s presence.Store) {
	key := presence.Key{Tenant: newID(), User: newID()}
	want := richState(2)
	mustUpdate(t, s, key, set(want))
	sentinel := errors.New("rejected by the domain")
	_, _, err := s.Update(context.Background(), key, func(st *presence.State) error {
		// A function that edits the state and then fails must leave nothing.
		st.Seq = 999
		st.Sessions = nil
		st.Preferred.Pair.Availability = "Away"
		*st.OOF.Message = "edited"
		return fmt.Errorf("wrapped: %w", sentinel)
	})
	if !errors.Is(err, sentinel) {
		t.Fatalf("Update with failing fn: err = %v, want one wrapping %v", err, sentinel)
	}
	wantState(t, "state after a failed Update", mustGet(t, s, key.Tenant, key.User)[0], want)

	// A failing fn on a new user creates nothing either.
	fresh := presence.Key{Tenant: key.Tenant, User: newID()}
	if _, _, err := s.Update(context.Background(), fresh, func(st *presence.State) error {
		st.Seq = 1
		st.Due = t0()
		return sentinel
	}); !errors.Is(err, sentinel) {
		t.Fatalf("Update with failing fn: err = %v, want %v", err, sentinel)
	}
	if got := mustGet(t, s, fresh.Tenant, fresh.User)[0]; !got.IsZero() {
		t.Errorf("failed Update created %s", mustJSON(got))
	}
	if keys := mustDue(t, s, t0().Add(time.Hour), 10); slices.Contains(keys, fresh) {
		t.Errorf("failed Update indexed %s as due", fresh)
	}
}

func testUpdateCancelled(t *testing.T, s presence.Store) {
	key := presence.Key{Tenant: newID(), User: newID()}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.Update(ctx, key, func(st *presence.State) error {
		st.Seq = 7
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a cancelled context: err = %v, want one wrapping context.Canceled", err)
	}
	if got := mustGet(t, s, key.Tenant, key.User)[0]; !got.IsZero() {
		t.Errorf("cancelled Update wrote %s", mustJSON(got))
	}
}

func testCopies(t *testing.T, s presence.Store) {
	key := presence.Key{Tenant: newID(), User: newID()}
	want := richState(3)
	var kept *presence.State
	_, after := mustUpdate(t, s, key, func(st *presence.State) error {
		*st = want.Clone()
		kept = st // a misbehaving fn keeps its pointer
		return nil
	})
	mutate := func(st *presence.State) {
		st.Sessions[0].ID = "mutated"
		st.Sessions = append(st.Sessions[:1], presence.Session{ID: "extra"})
		st.Preferred.Pair.Activity = "Mutated"
		st.Status.Content = "mutated"
		st.Status.Expiry.TimeZone = "UTC"
		*st.OOF.Message = "mutated"
		st.Seq = 1000
	}
	mutate(&after)
	mutate(kept)
	got := mustGet(t, s, key.Tenant, key.User)[0]
	wantState(t, "state after mutating the Update's results", got, want)
	mutate(&got)
	wantState(t, "state after mutating a Get's result", mustGet(t, s, key.Tenant, key.User)[0], want)

	if _, _, err := s.Update(context.Background(), key, func(st *presence.State) error {
		mutate(st)
		return errors.New("no")
	}); err == nil {
		t.Fatal("Update with failing fn succeeded")
	}
	wantState(t, "state after a failed Update mutated its input", mustGet(t, s, key.Tenant, key.User)[0], want)
	before, _ := mustUpdate(t, s, key, func(*presence.State) error { return nil })
	mutate(&before)
	wantState(t, "state after mutating an Update's before", mustGet(t, s, key.Tenant, key.User)[0], want)
}

func testConcurrentSameKey(t *testing.T, s presence.Store) {
	key := presence.Key{Tenant: newID(), User: newID()}
	const workers, each = 16, 16
	seen := make(chan uint64, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				before, after, err := s.Update(context.Background(), key, func(st *presence.State) error {
					st.Seq++
					st.Sessions = append(st.Sessions, presence.Session{ID: fmt.Sprint(st.Seq)})
					return nil
				})
				if err != nil {
					t.Errorf("Update: %v", err)
					return
				}
				if after.Seq != before.Seq+1 || len(after.Sessions) != int(after.Seq) {
					t.Errorf("Update: before.Seq %d, after.Seq %d with %d sessions", before.Seq, after.Seq, len(after.Sessions))
				}
				seen <- after.Seq
			}
		})
	}
	wg.Wait()
	close(seen)
	var all []uint64
	for v := range seen {
		all = append(all, v)
	}
	slices.Sort(all)
	for i, v := range all {
		if v != uint64(i+1) {
			t.Fatalf("concurrent Updates returned Seq values %v..., want each of 1..%d once", all[:i+1], workers*each)
		}
	}
	got := mustGet(t, s, key.Tenant, key.User)[0]
	if got.Seq != workers*each {
		t.Errorf("Seq after %d concurrent increments = %d", workers*each, got.Seq)
	}
	for i, ses := range got.Sessions {
		if ses.ID != fmt.Sprint(i+1) {
			t.Fatalf("session %d has id %q: a concurrent Update was lost or reordered", i, ses.ID)
		}
	}
}

func testConcurrentKeys(t *testing.T, s presence.Store) {
	tenant := newID()
	const workers, users, rounds = 8, 8, 4
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		ids[w] = make([]string, users)
		for u := range users {
			ids[w][u] = newID()
		}
		wg.Go(func() {
			for r := range rounds {
				for u, id := range ids[w] {
					if _, _, err := s.Update(context.Background(), presence.Key{Tenant: tenant, User: id}, func(st *presence.State) error {
						st.Seq++
						st.Due = t0().Add(time.Duration(w*users+u) * time.Second)
						return nil
					}); err != nil {
						t.Errorf("Update: %v", err)
						return
					}
					// Readers run alongside the writers.
					if got := mustGet(t, s, tenant, id)[0]; got.Seq != uint64(r+1) {
						t.Errorf("Get after own Update: Seq %d, want %d", got.Seq, r+1)
					}
				}
			}
		})
	}
	wg.Wait()
	for w := range workers {
		for u, st := range mustGet(t, s, tenant, ids[w]...) {
			if st.Seq != rounds {
				t.Errorf("user %d/%d: Seq %d, want %d", w, u, st.Seq, rounds)
			}
		}
	}
	if keys := mustDue(t, s, t0().Add(time.Hour), 1000); len(keys) != workers*users {
		t.Errorf("Due returned %d keys, want %d", len(keys), workers*users)
	}
}

func testTenantIsolation(t *testing.T, s presence.Store) {
	user := newID()
	a := presence.Key{Tenant: newID(), User: user}
	b := presence.Key{Tenant: newID(), User: user}
	wa, wb := richState(4), richState(5)
	wa.Due = t0().Add(time.Second)
	wb.Due = time.Time{}
	mustUpdate(t, s, a, set(wa))
	wantState(t, "other tenant before its write", mustGet(t, s, b.Tenant, user)[0], presence.State{})
	before, _ := mustUpdate(t, s, b, set(wb))
	if !before.IsZero() {
		t.Errorf("same user in another tenant: before = %s, want zero", mustJSON(before))
	}
	wantState(t, "tenant A", mustGet(t, s, a.Tenant, user)[0], wa)
	wantState(t, "tenant B", mustGet(t, s, b.Tenant, user)[0], wb)
	keys := mustDue(t, s, t0().Add(time.Minute), 100)
	if !slices.Contains(keys, a) || slices.Contains(keys, b) {
		t.Errorf("Due = %v, want %v and not %v", keys, a, b)
	}
	// Keys that would collide if joined naively are distinct too.
	c := presence.Key{Tenant: a.Tenant + ":x", User: "y"}
	d := presence.Key{Tenant: a.Tenant, User: "x:y"}
	mustUpdate(t, s, c, func(st *presence.State) error { st.Seq = 1; return nil })
	if got := mustGet(t, s, d.Tenant, d.User)[0]; !got.IsZero() {
		t.Errorf("key %q read the state of key %q", d, c)
	}
}

// setDue returns an update function that sets Due (and bumps Seq).
func setDue(at time.Time) func(*presence.State) error {
	return func(st *presence.State) error {
		st.Seq++
		st.Due = at
		return nil
	}
}

func testDue(t *testing.T, s presence.Store) {
	tenant := newID()
	keys := make([]presence.Key, 6)
	for i := range keys {
		keys[i] = presence.Key{Tenant: tenant, User: newID()}
	}
	// keys[i] is due at t0+i s, but keys[5] is never due. Written out of
	// order.
	for _, i := range []int{3, 0, 5, 4, 1, 2} {
		due := t0().Add(time.Duration(i) * time.Second)
		if i == 5 {
			due = time.Time{}
		}
		mustUpdate(t, s, keys[i], setDue(due))
	}
	check := func(what string, now time.Time, want ...presence.Key) {
		t.Helper()
		got := mustDue(t, s, now, 100)
		if !slices.Equal(got, want) {
			t.Errorf("%s: Due(%v) = %v, want %v", what, now.Sub(t0()), got, want)
		}
	}
	check("before any", t0().Add(-time.Nanosecond))
	check("first instant", t0(), keys[0])
	check("up to 3s", t0().Add(3*time.Second), keys[0], keys[1], keys[2], keys[3])
	check("again, nothing updated", t0().Add(3*time.Second), keys[0], keys[1], keys[2], keys[3])

	mustUpdate(t, s, keys[0], setDue(time.Time{}))          // cleared
	mustUpdate(t, s, keys[1], setDue(t0().Add(time.Hour)))  // moved later
	mustUpdate(t, s, keys[2], setDue(t0().Add(-time.Hour))) // moved earlier
	mustUpdate(t, s, keys[3], func(st *presence.State) error {
		st.Seq++ // Due unchanged: still due
		return nil
	})
	check("after updates", t0().Add(3*time.Second), keys[2], keys[3])
	check("an hour on", t0().Add(time.Hour), keys[2], keys[3], keys[4], keys[1])

	// A Due moved away and back is returned once.
	mustUpdate(t, s, keys[4], setDue(t0().Add(2*time.Hour)))
	mustUpdate(t, s, keys[4], setDue(t0().Add(4*time.Second)))
	check("moved back", t0().Add(4*time.Second), keys[2], keys[3], keys[4])
	for _, k := range keys {
		mustUpdate(t, s, k, setDue(time.Time{}))
	}
	check("all cleared", t0().Add(24*time.Hour))
}

func testDueLimit(t *testing.T, s presence.Store) {
	tenant := newID()
	const n = 50
	keys := make([]presence.Key, n)
	for i := range keys {
		keys[i] = presence.Key{Tenant: tenant, User: newID()}
	}
	for _, i := range []int{17, 3, 44, 0, 29, 8, 49, 12, 36, 21, 5, 40, 1, 33, 26, 15, 47, 9, 38, 24,
		2, 42, 19, 31, 7, 45, 13, 27, 4, 39, 22, 10, 48, 34, 18, 6, 43, 28, 14, 37, 23, 11, 46, 30, 20, 41, 16, 35, 25, 32} {
		mustUpdate(t, s, keys[i], setDue(t0().Add(time.Duration(i)*time.Millisecond)))
	}
	if got := mustDue(t, s, t0().Add(time.Second), 0); len(got) != 0 {
		t.Errorf("Due with limit 0 returned %d keys", len(got))
	}
	got := mustDue(t, s, t0().Add(time.Second), 10)
	if !slices.Equal(got, keys[:10]) {
		t.Errorf("Due(limit 10) = %v, want the 10 earliest %v", got, keys[:10])
	}
	// The scheduler handles them: they move on, and the next ones come.
	for _, k := range got {
		mustUpdate(t, s, k, setDue(t0().Add(time.Hour)))
	}
	if got := mustDue(t, s, t0().Add(time.Second), 10); !slices.Equal(got, keys[10:20]) {
		t.Errorf("Due(limit 10) after handling = %v, want %v", got, keys[10:20])
	}
	if got := mustDue(t, s, t0().Add(time.Second), 1000); !slices.Equal(got, keys[10:]) {
		t.Errorf("Due(limit 1000) = %d keys, want %d", len(got), n-10)
	}
}

func testLargeGet(t *testing.T, s presence.Store) {
	tenant := newID()
	const n = 650
	users := make([]string, n)
	for i := range users {
		users[i] = newID()
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				if i%5 == 0 {
					continue // a fifth are never written
				}
				if _, _, err := s.Update(context.Background(), presence.Key{Tenant: tenant, User: users[i]}, func(st *presence.State) error {
					st.Seq = uint64(i)
					st.Sessions = []presence.Session{{ID: users[i]}}
					return nil
				}); err != nil {
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := mustGet(t, s, tenant, users...)
	for i, st := range got {
		switch {
		case i%5 == 0 && !st.IsZero():
			t.Fatalf("Get[%d] of an unwritten user = %s", i, mustJSON(st))
		case i%5 != 0 && (st.Seq != uint64(i) || len(st.Sessions) != 1 || st.Sessions[0].ID != users[i]):
			t.Fatalf("Get[%d] = %s, want the state of user %d", i, mustJSON(st), i)
		}
	}
}
