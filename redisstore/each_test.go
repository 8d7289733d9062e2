package redisstore

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

// TestUpdateEachRoundTrips checks that UpdateEach writes many users in a
// pipelined read and a pipelined write (the node's lease renewals depend
// on it), where Update takes two round trips per user, and that a user
// another writer changed between the two is still updated exactly once.
func TestUpdateEachRoundTrips(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), Options{Prefix: "each"})
	other := open(t, srv.URL(), Options{Prefix: "each", NodeID: "other"})
	ctx := context.Background()
	const users = 200
	keys := make([]presence.Key, users)
	for i := range keys {
		keys[i] = presence.Key{Tenant: "t", User: fmt.Sprintf("u%03d", i)}
	}
	inc := func(_ int, st *presence.State) error { st.Seq++; return nil }
	presence.UpdateEach(ctx, s, keys, inc) // the script is loaded
	before := s.Stats().RoundTrips
	for i, r := range s.UpdateEach(ctx, keys, inc) {
		if r.Err != nil || r.After.Seq != 2 {
			t.Fatalf("user %d: Seq %d, %v", i, r.After.Seq, r.Err)
		}
	}
	if trips := s.Stats().RoundTrips - before; trips > 2 {
		t.Errorf("UpdateEach of %d users took %d round trips, want 2", users, trips)
	}

	// Another node writes user 7 after this node read it: that user's
	// compare-and-set loses, and it is updated again on its own.
	conflicts := s.Stats().CASConflicts
	out := s.UpdateEach(ctx, keys, func(i int, st *presence.State) error {
		if i == 7 && st.Seq == 2 {
			if _, _, err := other.Update(ctx, keys[7], func(st *presence.State) error { st.Seq++; return nil }); err != nil {
				return err
			}
		}
		st.Seq++
		return nil
	})
	for i, r := range out {
		want := uint64(3)
		if i == 7 {
			want = 4
		}
		if r.Err != nil || r.After.Seq != want {
			t.Errorf("user %d: Seq %d (want %d), %v", i, r.After.Seq, want, r.Err)
		}
	}
	if got := s.Stats().CASConflicts - conflicts; got != 1 {
		t.Errorf("%d compare-and-sets lost, want 1", got)
	}
	states, err := s.Get(ctx, "t", []string{"u007", "u008"})
	if err != nil {
		t.Fatal(err)
	}
	if states[0].Seq != 4 || states[1].Seq != 3 {
		t.Errorf("stored Seq %d and %d, want 4 and 3", states[0].Seq, states[1].Seq)
	}
}

// TestUpdateEachWaitsForReplicas checks that with WaitReplicas UpdateEach
// writes through Update, which waits for the replicas: on a Redis that has
// none, every user's write is refused as unavailable, as Update's is,
// where the batch's pipelines would not have waited.
func TestUpdateEachWaitsForReplicas(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), Options{Prefix: "eachwait", WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	keys := []presence.Key{{Tenant: "t", User: "u1"}, {Tenant: "t", User: "u2"}, {Tenant: "t", User: "u3"}}
	for i, r := range s.UpdateEach(context.Background(), keys, func(_ int, st *presence.State) error { st.Seq++; return nil }) {
		if !errors.Is(r.Err, presence.ErrUnavailable) {
			t.Errorf("user %d: %v, want an error matching ErrUnavailable (no replica has the write)", i, r.Err)
		}
	}
}
