package redisstore

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

// unavailableWithin checks that op fails with an error matching
// presence.ErrUnavailable, and fast.
func unavailableWithin(t *testing.T, what string, d time.Duration, op func() error) {
	t.Helper()
	start := time.Now()
	err := op()
	took := time.Since(start)
	if !errors.Is(err, presence.ErrUnavailable) {
		t.Errorf("%s with redis down: %v, want an error matching ErrUnavailable", what, err)
	}
	if took > d {
		t.Errorf("%s with redis down took %v, want at most %v", what, took, d)
	}
}

func TestRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), Options{OpTimeout: time.Second, UpdateTimeout: 2 * time.Second})
	ctx := context.Background()
	k := presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
	if _, _, err := s.Update(ctx, k, appendOne); err != nil {
		t.Fatal(err)
	}
	check := func(phase string) {
		t.Helper()
		unavailableWithin(t, phase+": Update", 2*time.Second, func() error { _, _, err := s.Update(ctx, k, appendOne); return err })
		unavailableWithin(t, phase+": Get", 2*time.Second, func() error { _, err := s.Get(ctx, k.Tenant, []string{k.User}); return err })
		unavailableWithin(t, phase+": Due", 2*time.Second, func() error { _, err := s.Due(ctx, time.Now(), 10); return err })
		unavailableWithin(t, phase+": Ping", 2*time.Second, func() error { return s.Ping(ctx) })
	}
	recovered := func(phase string, want uint64) {
		t.Helper()
		// Each pooled connection finds out about the restart on its
		// next use (and answers 503 once); none needs a reopen.
		var after presence.State
		waitFor(t, 10*time.Second, phase+": the store recovers by itself", func() bool {
			var err error
			_, after, err = s.Update(ctx, k, appendOne)
			if err != nil && !errors.Is(err, presence.ErrUnavailable) {
				t.Fatalf("%s: Update: %v", phase, err)
			}
			return err == nil
		})
		if after.Seq != want {
			t.Fatalf("%s: Update after recovery: Seq %d, want %d", phase, after.Seq, want)
		}
	}

	// Killed: connections refused.
	srv.Kill9()
	check("killed")
	srv.Restart()
	recovered("killed", 2)

	// Hung (SIGSTOP): nothing answers; the deadlines must.
	srv.Pause()
	check("paused")
	srv.Resume()
	recovered("paused", 3)
}

func TestOpenWhileDown(t *testing.T) {
	srv := redistest.Start(t)
	srv.Kill9()
	start := time.Now()
	s := open(t, srv.URL(), Options{})
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Open with redis down took %v", d)
	}
	ctx := context.Background()
	if err := s.Ping(ctx); !errors.Is(err, presence.ErrUnavailable) {
		t.Errorf("Ping before connecting: %v", err)
	}
	k := presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
	if _, _, err := s.Update(ctx, k, appendOne); !errors.Is(err, presence.ErrUnavailable) {
		t.Errorf("Update before connecting: %v", err)
	}
	srv.Restart()
	waitFor(t, 10*time.Second, "the store connects once redis is up", func() bool { return s.Ping(ctx) == nil })
	if _, _, err := s.Update(ctx, k, appendOne); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "partitions owned after connecting", func() bool { return s.OwnedPartitions() == Partitions })
}

// TestKill9DuringWrites kills redis-server (appendfsync always) three
// times under 16 writers and restarts it on the same append-only file:
// every acknowledged write reads back.
func TestKill9DuringWrites(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), Options{})
	ctx := context.Background()
	tenant := presence.NewGUID()
	const writers = 16
	// acked[w] is the Seq of writer w's user last acknowledged.
	var acked [writers]atomic.Uint64
	users := make([]string, writers)
	for i := range users {
		users[i] = presence.NewGUID()
	}
	var failures atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			k := presence.Key{Tenant: tenant, User: users[w]}
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, after, err := s.Update(ctx, k, func(st *presence.State) error { st.Seq++; return nil })
				if err != nil {
					if !errors.Is(err, presence.ErrUnavailable) {
						t.Errorf("Update: %v, want ErrUnavailable while redis is down", err)
					}
					failures.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if prev := acked[w].Load(); after.Seq <= prev {
					t.Errorf("writer %d: Seq %d acknowledged after %d: an acknowledged write was lost", w, after.Seq, prev)
				}
				acked[w].Store(after.Seq)
			}
		})
	}
	for range 3 {
		time.Sleep(300 * time.Millisecond)
		srv.Kill9()
		// What was acknowledged before the kill must come back.
		var before [writers]uint64
		for w := range writers {
			before[w] = acked[w].Load()
		}
		time.Sleep(100 * time.Millisecond)
		srv.Restart()
		waitFor(t, 10*time.Second, "recovery", func() bool { return s.Ping(ctx) == nil })
		got, err := s.Get(ctx, tenant, users)
		if err != nil {
			t.Fatal(err)
		}
		for w := range writers {
			if got[w].Seq < before[w] {
				t.Errorf("writer %d: Seq %d after restart, %d acknowledged before the kill", w, got[w].Seq, before[w])
			}
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	got, err := s.Get(ctx, tenant, users)
	if err != nil {
		t.Fatal(err)
	}
	var total uint64
	for w := range writers {
		if got[w].Seq < acked[w].Load() {
			t.Errorf("writer %d: final Seq %d < acknowledged %d", w, got[w].Seq, acked[w].Load())
		}
		total += acked[w].Load()
	}
	t.Logf("%d acknowledged writes, %d refused while redis was down", total, failures.Load())
	if total == 0 || failures.Load() == 0 {
		t.Errorf("the test did not exercise anything: %d writes, %d failures", total, failures.Load())
	}
}

// TestEventsAfterRestart checks that a node keeps receiving other nodes'
// events after redis-server restarts (the subscriptions come back).
func TestEventsAfterRestart(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "evr" + presence.NewGUID()[:8]
	a := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "a"})
	b := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "b"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan RemoteEvent, 1000)
	done := make(chan error, 1)
	go func() { done <- b.Events(ctx, func(ev RemoteEvent) { got <- ev }) }()
	app := presence.NewGUID()
	now := time.Now().UTC()
	flows := func(phase string) {
		t.Helper()
		waitFor(t, 15*time.Second, phase+": events flow", func() bool {
			k := presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
			_, _, err := a.Update(ctx, k, func(st *presence.State) error {
				cmd := &presence.SetPresence{CallerApp: app, SessionID: app, Availability: "Busy", Activity: "InACall"}
				if err := cmd.Validate(&presence.Env{}); err != nil {
					return err
				}
				_, err := presence.Step(k, st, cmd, now)
				return err
			})
			if err != nil {
				return false
			}
			select {
			case ev := <-got:
				return ev.Origin == "a"
			case <-time.After(200 * time.Millisecond):
				return false
			}
		})
	}
	flows("before the restart")
	srv.Kill9()
	srv.Restart()
	flows("after the restart")
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Events returned %v, want context.Canceled", err)
	}
}
