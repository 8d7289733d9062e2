package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// RunDurable runs the checks of a durable store: what was acknowledged
// survives Close and a new open of the same directory, and the due index
// is rebuilt. open must open the store kept in dir (a directory from
// t.TempDir, or a name for the data of a database); the suite closes every
// store it opens.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) presence.Store) {
	t.Helper()
	t.Run("Reopen", func(t *testing.T) { testReopen(t, open) })
	t.Run("ManyReopens", func(t *testing.T) { testManyReopens(t, open) })
	t.Run("ConcurrentThenReopen", func(t *testing.T) { testConcurrentThenReopen(t, open) })
}

func testReopen(t *testing.T, open func(t *testing.T, dir string) presence.Store) {
	dir := t.TempDir()
	tenants := []string{newID(), newID()}
	type kv struct {
		key   presence.Key
		state presence.State
	}
	var all []kv
	s := open(t, dir)
	for i := range 40 {
		key := presence.Key{Tenant: tenants[i%2], User: newID()}
		st := richState(i)
		switch i % 4 {
		case 0:
			st.Due = time.Time{}
		case 1:
			st.Due = t0().Add(time.Duration(-i) * time.Minute) // already due
		}
		// Write an intermediate state first: the last write wins.
		mustUpdate(t, s, key, set(richState(100+i)))
		mustUpdate(t, s, key, set(st))
		all = append(all, kv{key, st})
	}
	if _, _, err := s.Update(context.Background(), all[0].key, func(st *presence.State) error {
		st.Seq = 12345
		return errors.New("rejected")
	}); err == nil {
		t.Fatal("Update with failing fn succeeded")
	}
	now := t0().Add(10 * time.Minute)
	// wantDue lists the keys due at now, earliest first (all Dues differ).
	wantDue := func() []presence.Key {
		var due []kv
		for _, x := range all {
			if !x.state.Due.IsZero() && !x.state.Due.After(now) {
				due = append(due, x)
			}
		}
		slices.SortFunc(due, func(a, b kv) int { return a.state.Due.Compare(b.state.Due) })
		keys := make([]presence.Key, len(due))
		for i, x := range due {
			keys[i] = x.key
		}
		return keys
	}
	if got, want := mustDue(t, s, now, 1000), wantDue(); !slices.Equal(got, want) {
		t.Fatalf("before reopen: Due = %v, want %v", got, want)
	}
	closeStore(t, s)

	check := func(s presence.Store, what string) {
		t.Helper()
		for _, x := range all {
			wantState(t, fmt.Sprintf("%s: %s", what, x.key), mustGet(t, s, x.key.Tenant, x.key.User)[0], x.state)
		}
		want := wantDue()
		if got := mustDue(t, s, now, 1000); !slices.Equal(got, want) {
			t.Errorf("%s: Due returned %d keys %v, want %d %v", what, len(got), got, len(want), want)
		}
		if got := mustDue(t, s, now, 3); !slices.Equal(got, want[:3]) {
			t.Errorf("%s: Due(limit 3) = %v, want %v", what, got, want[:3])
		}
	}
	s = open(t, dir)
	check(s, "after reopen")
	// Writes after a reopen are kept too, including clearing a Due.
	all[1].state.Due = time.Time{}
	all[1].state.Seq++
	mustUpdate(t, s, all[1].key, set(all[1].state))
	closeStore(t, s)
	s = open(t, dir)
	check(s, "after a second reopen")
	closeStore(t, s)
}

func testManyReopens(t *testing.T, open func(t *testing.T, dir string) presence.Store) {
	dir := t.TempDir()
	tenant := newID()
	users := make([]string, 20)
	for i := range users {
		users[i] = newID()
	}
	const rounds = 5
	for r := range rounds {
		s := open(t, dir)
		for i, u := range users {
			_, after := mustUpdate(t, s, presence.Key{Tenant: tenant, User: u}, func(st *presence.State) error {
				st.Seq++
				st.Due = t0().Add(time.Duration(r*len(users)+i) * time.Second)
				return nil
			})
			if after.Seq != uint64(r+1) {
				t.Fatalf("round %d: user %d has Seq %d, want %d", r, i, after.Seq, r+1)
			}
		}
		closeStore(t, s)
	}
	s := open(t, dir)
	defer closeStore(t, s)
	for i, st := range mustGet(t, s, tenant, users...) {
		if st.Seq != rounds {
			t.Errorf("user %d: Seq %d after %d reopens, want %d", i, st.Seq, rounds, rounds)
		}
	}
	// Every user's last Due is in the last round's window, in user order.
	last := t0().Add(time.Duration((rounds-1)*len(users)) * time.Second)
	if got := mustDue(t, s, last.Add(-time.Nanosecond), 100); len(got) != 0 {
		t.Errorf("Due before the last round's instants = %v, want none", got)
	}
	got := mustDue(t, s, last.Add(time.Hour), 100)
	want := make([]presence.Key, len(users))
	for i, u := range users {
		want[i] = presence.Key{Tenant: tenant, User: u}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Due after reopen = %v, want %v", got, want)
	}
}

func testConcurrentThenReopen(t *testing.T, open func(t *testing.T, dir string) presence.Store) {
	dir := t.TempDir()
	tenant := newID()
	const workers, each = 8, 24
	keys := make([]presence.Key, 4)
	for i := range keys {
		keys[i] = presence.Key{Tenant: tenant, User: newID()}
	}
	s := open(t, dir)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, _, err := s.Update(context.Background(), keys[(w+i)%len(keys)], func(st *presence.State) error {
					st.Seq++
					return nil
				}); err != nil {
					t.Errorf("Update: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	want := mustGet(t, s, tenant, keysUsers(keys)...)
	closeStore(t, s)
	s = open(t, dir)
	defer closeStore(t, s)
	got := mustGet(t, s, tenant, keysUsers(keys)...)
	var total uint64
	for i := range keys {
		wantState(t, fmt.Sprintf("key %d after reopen", i), got[i], want[i])
		total += got[i].Seq
	}
	if total != workers*each {
		t.Errorf("after reopen the counters add up to %d, want %d", total, workers*each)
	}
}

func keysUsers(keys []presence.Key) []string {
	users := make([]string, len(keys))
	for i, k := range keys {
		users[i] = k.User
	}
	return users
}
