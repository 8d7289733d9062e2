package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/redisstore"
)

// fakeNode is what a relay reads from and publishes to: each user's
// current presence, and the events published, in order.
type fakeNode struct {
	mu        sync.Mutex
	current   map[presence.Key]presence.View
	reads     int
	published []presence.Event
	pairs     []presence.Event // published at once, before the read
	gate      chan struct{}    // when set, reads wait for it to close
}

func (f *fakeNode) relay(queue int) *remoteRelay {
	return &remoteRelay{
		queue: make(chan redisstore.RemoteEvent, queue),
		read: func(_ context.Context, tenant string, users []string) ([]presence.View, error) {
			if f.gate != nil {
				<-f.gate
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			f.reads++
			out := make([]presence.View, len(users))
			for i, u := range users {
				out[i] = f.current[presence.Key{Tenant: tenant, User: u}]
			}
			return out, nil
		},
		clock: func() time.Time { return time.Unix(0, 0) },
		loud: func(ev presence.Event) {
			f.mu.Lock()
			f.published = append(f.published, ev)
			f.mu.Unlock()
		},
		pair: func(ev presence.Event) {
			f.mu.Lock()
			f.pairs = append(f.pairs, ev)
			f.mu.Unlock()
		},
		quiet:  func(presence.Event) {},
		logger: slog.New(slog.DiscardHandler),
		lost:   map[presence.Key]struct{}{},
	}
}

// change is the n-th change of user u: the event another node sends, and
// the presence it leaves.
func change(u string, n int) (redisstore.RemoteEvent, presence.View) {
	k := presence.Key{Tenant: "84bd8158-6d4d-4958-8b9f-9d6445542f95", User: u}
	v := presence.View{Pair: presence.Pair{Availability: "Busy", Activity: fmt.Sprintf("act-%d", n)}, Seq: uint64(n)}
	return redisstore.RemoteEvent{Key: k, Events: []presence.Event{{Key: k, After: presence.View{Pair: v.Pair, Seq: v.Seq}}}}, v
}

// latest returns each user's last published presence (of the pairs
// published at once, with pairs).
func (f *fakeNode) latest(pairs bool) map[presence.Key]presence.View {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.latestLocked(pairs)
}

// latestLocked is latest with f locked.
func (f *fakeNode) latestLocked(pairs bool) map[presence.Key]presence.View {
	out := map[presence.Key]presence.View{}
	evs := f.published
	if pairs {
		evs = f.pairs
	}
	for _, ev := range evs {
		if ev.After.Seq >= out[ev.Key].Seq {
			out[ev.Key] = ev.After
		}
	}
	return out
}

// waitFor polls cond, with f locked, until it holds; after 10 s it fails
// the test with what.
func (f *fakeNode) waitFor(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		ok := cond()
		f.mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			f.mu.Lock()
			msg := what()
			f.mu.Unlock()
			t.Fatal(msg)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRemoteRelayReadsABatchAtOnce: other nodes' changes are relayed with
// one read per batch and tenant, not one per change, each change carrying
// the user's presence as read.
func TestRemoteRelayReadsABatchAtOnce(t *testing.T) {
	f := &fakeNode{current: map[presence.Key]presence.View{}}
	r := f.relay(4096)
	const users, rounds = 20, 50
	for n := 1; n <= rounds; n++ {
		for i := range users {
			re, v := change(fmt.Sprintf("user-%d", i), n)
			f.current[re.Key] = v
			r.offer(re)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.run(ctx)
	f.waitFor(t, func() string { return fmt.Sprintf("%d of %d changes relayed", len(f.published), users*rounds) },
		func() bool { return len(f.published) == users*rounds })
	f.mu.Lock()
	reads := f.reads
	f.mu.Unlock()
	if max := (users*rounds + remoteBatch - 1) / remoteBatch; reads > max {
		t.Fatalf("%d changes took %d reads, want at most %d (one per batch)", users*rounds, reads, max)
	}
	for _, pairs := range []bool{false, true} {
		for k, v := range f.latest(pairs) {
			if v != f.current[k] {
				t.Fatalf("%s: relayed %v (pairs %v), want %v", k.User, v, pairs, f.current[k])
			}
		}
	}
	if len(f.pairs) != users*rounds {
		t.Fatalf("%d changes published at once, want %d", len(f.pairs), users*rounds)
	}
}

// TestRemoteRelayPairsDoNotWaitForTheRead: a change's pair and version are
// published before the read of the user's view returns (connections'
// watchers need nothing else); its view follows once read.
func TestRemoteRelayPairsDoNotWaitForTheRead(t *testing.T) {
	f := &fakeNode{current: map[presence.Key]presence.View{}, gate: make(chan struct{})}
	r := f.relay(16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.run(ctx)
	re, v := change("user-1", 7)
	f.mu.Lock()
	f.current[re.Key] = v
	f.mu.Unlock()
	r.offer(re)
	f.waitFor(t, func() string { return "the pair was not published while the read waits" },
		func() bool { return len(f.pairs) == 1 })
	f.mu.Lock()
	published, reads := len(f.published), f.reads
	f.mu.Unlock()
	if published != 0 || reads != 0 {
		t.Fatalf("published %d with views after %d reads, while the read waits", published, reads)
	}
	close(f.gate)
	f.waitFor(t, func() string { return "the view was not published once read" },
		func() bool { return len(f.published) == 1 })
	if got := f.latest(true)[re.Key]; got != v {
		t.Fatalf("pair published %v, want %v", got, v)
	}
}

// TestRemoteRelayKeepsTheLatestStateOfDroppedChanges: when changes arrive
// faster than the relay takes them, some are dropped, but every user's
// latest presence is still relayed.
func TestRemoteRelayKeepsTheLatestStateOfDroppedChanges(t *testing.T) {
	f := &fakeNode{current: map[presence.Key]presence.View{}, gate: make(chan struct{})}
	r := f.relay(8)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.run(ctx)
	const users, rounds = 50, 4
	for n := 1; n <= rounds; n++ {
		for i := range users {
			re, v := change(fmt.Sprintf("user-%d", i), n)
			f.mu.Lock()
			f.current[re.Key] = v
			f.mu.Unlock()
			r.offer(re)
		}
	}
	if r.dropped.Load() == 0 {
		t.Fatal("no change was dropped: the test does not test drops")
	}
	close(f.gate) // the relay reads again
	missing := func() int {
		got, pairs := f.latestLocked(false), f.latestLocked(true)
		n := 0
		for k, v := range f.current {
			if got[k] != v || pairs[k] != v {
				n++
			}
		}
		return n
	}
	f.waitFor(t, func() string {
		return fmt.Sprintf("%d of %d users' latest presence never relayed (%d changes dropped)", missing(), users, r.dropped.Load())
	}, func() bool { return missing() == 0 })
}
