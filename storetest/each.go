package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// testUpdateEach checks presence.UpdateEach (the store's own UpdateEach
// when it has one): every user's update happens exactly once however the
// calls interleave with each other and with Updates of the same users (a
// user twice in one call is updated twice), outcomes come back in order,
// an fn error writes nothing for that user only, and Due follows.
func testUpdateEach(t *testing.T, s presence.Store) {
	tenant := newID()
	const users, batchers, updaters, rounds = 12, 4, 4, 6
	keys := make([]presence.Key, users, users+1)
	for u := range keys {
		keys[u] = presence.Key{Tenant: tenant, User: newID()}
	}
	keys = append(keys, keys[0]) // the first user twice in each call
	ctx := context.Background()
	var wg sync.WaitGroup
	for range batchers {
		wg.Go(func() {
			for range rounds {
				out := presence.UpdateEach(ctx, s, keys, func(i int, st *presence.State) error {
					st.Seq++
					st.Sessions = append(st.Sessions, presence.Session{ID: fmt.Sprint(st.Seq)})
					st.Due = t0().Add(time.Duration(i) * time.Second)
					return nil
				})
				if len(out) != len(keys) {
					t.Errorf("UpdateEach returned %d outcomes for %d users", len(out), len(keys))
					return
				}
				for i, r := range out {
					if r.Err != nil {
						t.Errorf("UpdateEach user %d: %v", i, r.Err)
						continue
					}
					if r.After.Seq != r.Before.Seq+1 || len(r.After.Sessions) != int(r.After.Seq) {
						t.Errorf("UpdateEach user %d: before.Seq %d, after.Seq %d with %d sessions", i, r.Before.Seq, r.After.Seq, len(r.After.Sessions))
					}
				}
			}
		})
	}
	for range updaters {
		wg.Go(func() {
			for range rounds {
				for _, k := range keys[:users] {
					if _, _, err := s.Update(ctx, k, func(st *presence.State) error {
						st.Seq++
						st.Sessions = append(st.Sessions, presence.Session{ID: fmt.Sprint(st.Seq)})
						return nil
					}); err != nil {
						t.Errorf("Update: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	users0 := make([]string, users)
	for u := range users0 {
		users0[u] = keys[u].User
	}
	for u, st := range mustGet(t, s, tenant, users0...) {
		want := uint64((batchers + updaters) * rounds)
		if u == 0 {
			want += batchers * rounds
		}
		if st.Seq != want {
			t.Errorf("user %d: Seq %d after %d increments: an update was lost or made twice", u, st.Seq, want)
		}
		for i, ses := range st.Sessions {
			if ses.ID != fmt.Sprint(i+1) {
				t.Fatalf("user %d: session %d has id %q: an update was lost or reordered", u, i, ses.ID)
			}
		}
	}
	if got := mustDue(t, s, t0().Add(time.Hour), 1000); len(got) != users {
		t.Errorf("Due after UpdateEach set every user's: %d keys, want %d", len(got), users)
	}

	// An fn error is that user's outcome alone, and writes nothing for it.
	errBad := errors.New("refused")
	before := mustGet(t, s, tenant, users0...)
	out := presence.UpdateEach(ctx, s, keys[:users], func(i int, st *presence.State) error {
		if i == 3 {
			return errBad
		}
		st.Seq++
		return nil
	})
	after := mustGet(t, s, tenant, users0...)
	for i, r := range out {
		switch {
		case i == 3:
			if !errors.Is(r.Err, errBad) {
				t.Errorf("user 3: err %v, want fn's error", r.Err)
			}
			wantState(t, "user 3 after its fn failed", after[i], before[i])
		case r.Err != nil:
			t.Errorf("user %d: %v", i, r.Err)
		case after[i].Seq != before[i].Seq+1 || r.After.Seq != after[i].Seq:
			t.Errorf("user %d: Seq %d -> %d (outcome %d)", i, before[i].Seq, after[i].Seq, r.After.Seq)
		}
	}

	// An ended context writes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	for i, r := range presence.UpdateEach(cctx, s, keys[:users], func(_ int, st *presence.State) error { st.Seq++; return nil }) {
		if r.Err == nil {
			t.Errorf("user %d: UpdateEach with an ended context succeeded", i)
		}
	}
	wantState(t, "user 0 after UpdateEach with an ended context", mustGet(t, s, tenant, users0[0])[0], after[0])
}
