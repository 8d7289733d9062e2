package redisstore

import (
	"context"
	"testing"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
	"github.com/prometheus/client_golang/prometheus"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := open(t, redistest.Start(t).URL(), Options{Registerer: reg})
	k := presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
	if _, _, err := s.Update(context.Background(), k, appendOne); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, mf := range mfs {
		have[mf.GetName()] = true
	}
	for _, name := range []string{"presenced_redis_roundtrip_seconds", "presenced_partitions_owned", "presenced_lease_takeovers_total", "presenced_redis_cas_conflicts_total"} {
		if !have[name] {
			t.Errorf("metric %s not registered (have %v)", name, have)
		}
	}
	st := s.Stats()
	if st.RoundTrips < 2 || st.PartitionsOwned != Partitions || st.LeaseTakeovers != Partitions || st.RoundTripSeconds <= 0 {
		t.Errorf("Stats = %+v", st)
	}
}

// TestMissingKeyIsNoError: reading what does not exist yet (the
// subscriptions' version before any subscription, users never written,
// alone or in a batch)
// is an answer, not a Redis error in the metrics.
func TestMissingKeyIsNoError(t *testing.T) {
	s := open(t, redistest.Start(t).URL(), Options{Registerer: prometheus.NewRegistry()})
	ctx := context.Background()
	if v, err := s.Subscriptions().Version(ctx); err != nil || v != 0 {
		t.Fatalf("Version = %d, %v; want 0, nil", v, err)
	}
	if _, err := s.Get(ctx, presence.NewGUID(), []string{presence.NewGUID()}); err != nil {
		t.Fatal(err)
	}
	// A batch of users never written reads nil replies in one pipeline.
	fresh := []presence.Key{{Tenant: "t", User: presence.NewGUID()}, {Tenant: "t", User: presence.NewGUID()}}
	for i, r := range s.UpdateEach(ctx, fresh, func(_ int, st *presence.State) error { st.Seq++; return nil }) {
		if r.Err != nil {
			t.Fatalf("UpdateEach of new user %d: %v", i, r.Err)
		}
	}
	if st := s.Stats(); st.Errors != 0 {
		t.Fatalf("%d Redis errors counted for reads of missing keys", st.Errors)
	}
}
