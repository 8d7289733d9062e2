package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

func TestTags(t *testing.T) {
	tags := makeTags()
	seen := map[string]bool{}
	const width = slotCount / Partitions
	for p, tag := range tags {
		if tag == "" || seen[tag] || strings.ContainsAny(tag, "{}*?[]\\") {
			t.Fatalf("partition %d: bad tag %q", p, tag)
		}
		seen[tag] = true
		if got := slotOf(tag) / width; got != p {
			t.Errorf("partition %d: tag %q in slot %d (range %d)", p, tag, slotOf(tag), got)
		}
	}
	// The tags are part of the keyspace's format: they must never change.
	if got := strings.Join(tags[:8], ","); got != pinnedTags {
		t.Errorf("tags changed: %s, want %s", got, pinnedTags)
	}
	// Redis's own CRC16 test vector.
	if crc16("123456789") != 0x31c3 {
		t.Errorf("crc16 = %#x", crc16("123456789"))
	}
}

// pinnedTags are the first tags; see TestTags.
const pinnedTags = "14,10,6u,18,6l,6h,6d,7z"

// chain checks that, for each key, the (before, after) pairs of every
// acknowledged Update form one chain 0→1→2…→n: no lost update, no fork.
type chain struct {
	mu   sync.Mutex
	seen map[presence.Key][]uint64 // after.Seq values
}

func (c *chain) add(t testing.TB, k presence.Key, before, after presence.State) {
	if after.Seq != before.Seq+1 {
		t.Errorf("%v: before %d after %d", k, before.Seq, after.Seq)
	}
	c.mu.Lock()
	c.seen[k] = append(c.seen[k], after.Seq)
	c.mu.Unlock()
}

func (c *chain) check(t testing.TB, stores ...*Store) {
	t.Helper()
	for k, seqs := range c.seen {
		slices.Sort(seqs)
		for i, v := range seqs {
			if v != uint64(i+1) {
				t.Fatalf("%v: Seq values %v: an update was lost or applied twice", k, seqs)
			}
		}
		for _, s := range stores {
			st, err := s.Get(context.Background(), k.Tenant, []string{k.User})
			if err != nil {
				t.Fatal(err)
			}
			if st[0].Seq != uint64(len(seqs)) || len(st[0].Sessions) != len(seqs) {
				t.Fatalf("%v: stored Seq %d with %d sessions, want %d", k, st[0].Seq, len(st[0].Sessions), len(seqs))
			}
			for i, ses := range st[0].Sessions {
				if ses.ID != fmt.Sprint(i+1) {
					t.Fatalf("%v: session %d is %q: history forked", k, i, ses.ID)
				}
			}
		}
	}
}

func appendOne(st *presence.State) error {
	st.Seq++
	st.Sessions = append(st.Sessions, presence.Session{ID: fmt.Sprint(st.Seq)})
	return nil
}

// testConcurrentCAS runs 3 stores on one keyspace, many goroutines each,
// updating a few overlapping keys.
func testConcurrentCAS(t *testing.T, url string) {
	prefix := "cas" + presence.NewGUID()[:8]
	var stores []*Store
	for i := range 3 {
		stores = append(stores, open(t, url, Options{Prefix: prefix, NodeID: fmt.Sprintf("n%d", i)}))
	}
	tenant := presence.NewGUID()
	keys := make([]presence.Key, 6)
	for i := range keys {
		keys[i] = presence.Key{Tenant: tenant, User: presence.NewGUID()}
	}
	c := &chain{seen: map[presence.Key][]uint64{}}
	var wg sync.WaitGroup
	for _, s := range stores {
		for g := range 12 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 7))
				for range 25 {
					k := keys[r.IntN(len(keys))]
					before, after, err := s.Update(context.Background(), k, appendOne)
					if err != nil {
						t.Errorf("Update: %v", err)
						return
					}
					c.add(t, k, before, after)
				}
			})
		}
	}
	wg.Wait()
	c.check(t, stores...)
	var conflicts uint64
	for _, s := range stores {
		conflicts += s.Stats().CASConflicts
	}
	t.Logf("%d updates, %d compare-and-set conflicts", 3*12*25, conflicts)
}

func TestConcurrentCAS(t *testing.T) {
	testConcurrentCAS(t, redistest.Start(t).URL())
}

func TestConcurrentCASCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	testConcurrentCAS(t, redistest.StartCluster(t).Seeds())
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// checkSingleOwner fails when a partition is owned by two stores.
func checkSingleOwner(t testing.TB, stores ...*Store) {
	t.Helper()
	for p := range Partitions {
		n := 0
		for _, s := range stores {
			if s.OwnsPartition(p) {
				n++
			}
		}
		if n > 1 {
			t.Fatalf("partition %d owned by %d stores at once", p, n)
		}
	}
}

func TestLeases(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "lease" + presence.NewGUID()[:8]
	var mu sync.Mutex
	events := map[string][2]int{}
	onParts := func(name string) func(g, l []int) {
		return func(g, l []int) {
			mu.Lock()
			e := events[name]
			events[name] = [2]int{e[0] + len(g), e[1] + len(l)}
			mu.Unlock()
		}
	}
	a := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "a", OnPartitions: onParts("a")})
	if a.OwnedPartitions() != Partitions {
		t.Fatalf("a alone owns %d", a.OwnedPartitions())
	}
	b := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "b", OnPartitions: onParts("b")})
	c := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "c", OnPartitions: onParts("c")})
	stores := []*Store{a, b, c}
	balanced := func() bool {
		checkSingleOwner(t, stores...)
		sum := 0
		for _, s := range stores {
			n := s.OwnedPartitions()
			if n < Partitions/6 {
				return false
			}
			sum += n
		}
		return sum == Partitions
	}
	d := waitFor(t, 10*time.Second, "three nodes share the partitions", balanced)
	t.Logf("balanced after %v: a %d, b %d, c %d", d, a.OwnedPartitions(), b.OwnedPartitions(), c.OwnedPartitions())

	if n := btoi(a.Leader()) + btoi(b.Leader()) + btoi(c.Leader()); n != 1 {
		t.Errorf("%d leaders", n)
	}
	// Every key is owned by exactly one node.
	for range 100 {
		k := presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
		n := 0
		for _, s := range stores {
			if s.Owns(k) {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("%v owned by %d nodes", k, n)
		}
	}

	// b dies without releasing (it stops renewing, as a killed process
	// does): a and c take its partitions within 5 s.
	if err := b.shutdown(false); err != nil {
		t.Fatal(err)
	}
	d = waitFor(t, 5*time.Second, "a dead node's partitions taken over", func() bool {
		checkSingleOwner(t, a, c)
		return a.OwnedPartitions()+c.OwnedPartitions() == Partitions
	})
	t.Logf("taken over %v after the kill", d)

	// c leaves gracefully: a takes everything at its next round.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	d = waitFor(t, 3*time.Second, "a graceful leaver's partitions taken over", func() bool {
		return a.OwnedPartitions() == Partitions
	})
	t.Logf("taken over %v after a graceful close", d)
	mu.Lock()
	defer mu.Unlock()
	if events["a"][0] < Partitions || events["b"][0] == 0 || events["c"][1] == 0 {
		t.Errorf("partition callbacks: %v", events)
	}
	if st := a.Stats(); st.LeaseTakeovers < Partitions || st.PartitionsOwned != Partitions {
		t.Errorf("stats: %+v", st)
	}
}

// TestFireOnce runs two Services, each on its own store of one keyspace,
// with one test clock: a fade fires exactly once, by the owner of the
// user's partition, and the other node receives its event.
func TestFireOnce(t *testing.T) { testFireOnce(t, redistest.Start(t).URL()) }

func TestFireOnceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster")
	}
	testFireOnce(t, redistest.StartCluster(t).Seeds())
}

func testFireOnce(t *testing.T, url string) {
	prefix := "fire" + presence.NewGUID()[:8]
	a := open(t, url, Options{Prefix: prefix, NodeID: "a"})
	b := open(t, url, Options{Prefix: prefix, NodeID: "b"})
	waitFor(t, 10*time.Second, "two nodes share the partitions", func() bool {
		return a.OwnedPartitions() > 0 && b.OwnedPartitions() > 0 && a.OwnedPartitions()+b.OwnedPartitions() == Partitions
	})
	clock := presence.NewTestClock(time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC))
	sa := presence.NewService(a, clock, nil)
	sb := presence.NewService(b, clock, nil)
	local, cancelLocal := sa.Subscribe(100)
	defer cancelLocal()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	remote := make(chan RemoteEvent, 100)
	go b.Events(ctx, func(ev RemoteEvent) { remote <- ev })
	// Subscriptions take a moment: write until events arrive and b
	// follows every partition (one event proves one partition only).
	app := presence.NewGUID()
	const users = 20
	keys := make([]presence.Key, users)
	for i := range keys {
		keys[i] = presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
	}
	probes := 0
	waitFor(t, 5*time.Second, "events flow", func() bool {
		probes++
		k := presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
		if _, err := sa.Do(ctx, k, &presence.SetPresence{CallerApp: app, SessionID: app, Availability: "Busy", Activity: "InACall"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-remote:
			return b.Following() == nil
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
	for len(local) > 0 {
		<-local
	}
	for len(remote) > 0 { // the probes' events
		<-remote
	}
	for _, k := range keys {
		if _, err := sa.Do(ctx, k, &presence.SetPresence{CallerApp: app, SessionID: app, Availability: "Available", Activity: "Available"}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(5*time.Minute + time.Second)
	fired := 0
	for _, s := range []*presence.Service{sa, sb, sa, sb} {
		n, err := s.Fire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		fired += n
	}
	if fired != users+probes {
		t.Errorf("Fire re-evaluated %d users, want %d (each once)", fired, users+probes)
	}
	states, err := a.Get(ctx, keys[0].Tenant, []string{keys[0].User})
	if err != nil {
		t.Fatal(err)
	}
	if v := states[0].ViewAt(clock.Now()); v.Availability == "Available" || v.Seq != states[0].Seq {
		t.Errorf("after the fade: %+v, stored Seq %d", v, states[0].Seq)
	}
	// Node b sees every change a made (sets, and the fades a fired),
	// with a's pairs, versions and instants.
	var want []presence.Event
	for len(local) > 0 {
		if ev := <-local; slices.Contains(keys, ev.Key) {
			want = append(want, ev)
		}
	}
	var got []presence.Event
	deadline := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case ev := <-remote:
			if ev.Origin != "a" {
				t.Errorf("event from %q", ev.Origin)
			}
			if slices.Contains(keys, ev.Key) { // not a late probe's
				got = append(got, ev.Events...)
			}
		case <-deadline:
			t.Fatalf("b received %d events of a's %d", len(got), len(want))
		}
	}
	key := func(e presence.Event) string {
		return fmt.Sprintf("%v %v %v/%d→%v/%d", e.Key, e.At.UnixNano(), e.Before.Pair, e.Before.Seq, e.After.Pair, e.After.Seq)
	}
	var gk, wk []string
	for i := range want {
		wk = append(wk, key(want[i]))
		gk = append(gk, key(got[i]))
	}
	slices.Sort(gk)
	slices.Sort(wk)
	if !slices.Equal(gk, wk) {
		t.Errorf("remote events differ:\n got %v\nwant %v", gk, wk)
	}
}

func TestPendingOutboxes(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), Options{})
	ctx := context.Background()
	k1 := presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
	k2 := presence.Key{Tenant: k1.Tenant, User: presence.NewGUID()}
	notice := presence.Notice{Seq: 1, At: time.Now().UTC(), Pair: presence.Pair{Availability: "Away", Activity: "Away"}}
	for _, k := range []presence.Key{k1, k2} {
		if _, _, err := s.Update(ctx, k, func(st *presence.State) error {
			st.Seq = 1
			st.Outbox = []presence.Notice{notice}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	pending := func() []presence.Key {
		var ks []presence.Key
		if err := s.PendingOutboxes(ctx, func(k presence.Key) { ks = append(ks, k) }); err != nil {
			t.Fatal(err)
		}
		return ks
	}
	if got := pending(); len(got) != 2 || !slices.Contains(got, k1) || !slices.Contains(got, k2) {
		t.Fatalf("pending = %v, want %v and %v", got, k1, k2)
	}
	if n, err := s.PendingOutboxUsers(ctx); err != nil || n != 2 {
		t.Fatalf("PendingOutboxUsers = %d (%v), want 2", n, err)
	}
	if _, _, err := s.Update(ctx, k1, func(st *presence.State) error { st.Outbox = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := pending(); !slices.Equal(got, []presence.Key{k2}) {
		t.Fatalf("pending after delivery = %v, want %v", got, k2)
	}
	if n, err := s.PendingOutboxUsers(ctx); err != nil || n != 1 {
		t.Fatalf("PendingOutboxUsers after delivery = %d (%v), want 1", n, err)
	}
}

func TestConfigCheck(t *testing.T) {
	srv := redistest.Start(t, "--appendfsync", "everysec", "--maxmemory-policy", "allkeys-lru")
	var log syncBuffer
	s := open(t, srv.URL(), Options{Logger: slogTo(&log)})
	cfg := s.ServerConfig()
	if cfg == nil || cfg.Durable || cfg.AppendFsync != "everysec" || cfg.MaxmemoryPolicy != "allkeys-lru" || cfg.AppendOnly != "yes" {
		t.Errorf("ServerConfig = %+v", cfg)
	}
	out := log.String()
	if !strings.Contains(out, "level=ERROR") || !strings.Contains(out, "maxmemory-policy") || !strings.Contains(out, "appendfsync is not always") {
		t.Errorf("log does not warn:\n%s", out)
	}
	good := open(t, redistest.Start(t).URL(), Options{})
	if cfg := good.ServerConfig(); cfg == nil || !cfg.Durable {
		t.Errorf("ServerConfig of a durable server = %+v", cfg)
	}
}

func TestWaitReplicasShort(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), Options{WaitReplicas: 1, WaitTimeout: 50 * time.Millisecond})
	k := presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
	_, _, err := s.Update(context.Background(), k, appendOne)
	if !errors.Is(err, presence.ErrUnavailable) || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Fatalf("Update waiting for a replica that does not exist: %v", err)
	}
}

func TestWaitReplicas(t *testing.T) {
	master, replica := redistest.StartReplicated(t)
	// A generous timeout: a loaded machine delays the replica's ack.
	s := open(t, master.URL(), Options{WaitReplicas: 1, WaitTimeout: 3 * time.Second, OpTimeout: 5 * time.Second})
	ctx := context.Background()
	k := presence.Key{Tenant: presence.NewGUID(), User: presence.NewGUID()}
	for range 20 {
		if _, _, err := s.Update(ctx, k, appendOne); err != nil {
			t.Fatalf("Update with a live replica: %v", err)
		}
	}
	// What WAIT acknowledged is on the replica.
	raw := replica.MustDo("GET", s.stateKey(s.Partition(k), memberOf(k)))
	if _, st, err := decodeValue(raw); err != nil || st.Seq != 20 {
		t.Fatalf("replica holds Seq %d (%v), want 20", st.Seq, err)
	}
	replica.Kill9()
	_, _, err := s.Update(ctx, k, appendOne)
	if !errors.Is(err, presence.ErrUnavailable) || !strings.Contains(err.Error(), "of 1 replicas") {
		t.Fatalf("Update with the replica dead: %v", err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FireAll on one node fires what fell due on every node's partitions, so a
// test clock's advance answers after everything due has happened; the
// owners then find nothing left to fire.
func TestFireAll(t *testing.T) {
	url := redistest.Start(t).URL()
	prefix := "fireall" + presence.NewGUID()[:8]
	a := open(t, url, Options{Prefix: prefix, NodeID: "a"})
	b := open(t, url, Options{Prefix: prefix, NodeID: "b"})
	waitFor(t, 10*time.Second, "two nodes share the partitions", func() bool {
		return a.OwnedPartitions() > 0 && b.OwnedPartitions() > 0 && a.OwnedPartitions()+b.OwnedPartitions() == Partitions
	})
	clock := presence.NewTestClock(time.Date(2026, 1, 2, 9, 0, 0, 0, time.UTC))
	sa := presence.NewService(a, clock, nil)
	sb := presence.NewService(b, clock, nil)
	ctx := context.Background()
	app := presence.NewGUID()
	tenant := presence.NewGUID()
	users := make([]string, 40)
	hour := time.Hour
	onB := 0
	for i := range users {
		users[i] = presence.NewGUID()
		k := presence.Key{Tenant: tenant, User: users[i]}
		if b.Owns(k) {
			onB++
		}
		if _, err := sa.Do(ctx, k, &presence.SetPresence{CallerApp: app, SessionID: app, Availability: "Available", Activity: "Available", Expiration: &hour}); err != nil {
			t.Fatal(err)
		}
	}
	if onB == 0 {
		t.Fatal("no user fell in node b's partitions; the test shows nothing")
	}
	clock.Advance(presence.IdleTimeout)
	n, err := sa.FireAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < len(users) {
		t.Fatalf("FireAll re-evaluated %d users, want at least %d", n, len(users))
	}
	for _, s := range []*presence.Service{sa, sb} {
		if n, err := s.Fire(ctx); err != nil || n != 0 {
			t.Fatalf("after FireAll a node's Fire found %d users due (err %v), want none", n, err)
		}
	}
	states, err := b.Get(ctx, tenant, users)
	if err != nil {
		t.Fatal(err)
	}
	for i, st := range states {
		// Stored, not derived: the fade was written by FireAll.
		if v := st.ViewAt(st.SeqAt); v.Activity != "AvailableInactive" || !st.SeqAt.Equal(clock.Now()) {
			t.Fatalf("user %d after FireAll: stored at %v shows %v", i, st.SeqAt, v.Pair)
		}
	}
}

// A partition given up while Busy names it stays leased, acted on by
// nobody, until the work ends; then the next owner takes it. Leave hands
// every partition over the same way.
func TestHandOverWaitsForBusy(t *testing.T) {
	srv := redistest.Start(t)
	prefix := "drain" + presence.NewGUID()[:8]
	var busyAll atomic.Bool
	busyAll.Store(true)
	var lostA atomic.Int64
	a := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "a", DrainTimeout: time.Minute,
		OnPartitions: func(_, l []int) { lostA.Add(int64(len(l))) },
		Busy: func() []int {
			if !busyAll.Load() {
				return nil
			}
			ps := make([]int, Partitions)
			for p := range ps {
				ps[p] = p
			}
			return ps
		}})
	if a.OwnedPartitions() != Partitions {
		t.Fatalf("a alone owns %d", a.OwnedPartitions())
	}
	b := open(t, srv.URL(), Options{Prefix: prefix, NodeID: "b"})
	// a gives up b's share (it stops acting on it) but keeps the leases
	// while busy: b gains nothing.
	waitFor(t, 10*time.Second, "a gives up b's share", func() bool { return a.OwnedPartitions() < Partitions })
	given := Partitions - a.OwnedPartitions()
	waitRounds(t, b) // b must still own nothing
	if n := b.OwnedPartitions(); n != 0 {
		t.Fatalf("b took %d partitions while a was still busy with them", n)
	}
	if lostA.Load() < int64(given) {
		t.Fatalf("a reported %d lost, gave up %d", lostA.Load(), given)
	}
	checkSingleOwner(t, a, b)
	// The work ends: b takes its share.
	busyAll.Store(false)
	waitFor(t, 5*time.Second, "b takes its share once a is idle", func() bool {
		checkSingleOwner(t, a, b)
		return a.OwnedPartitions()+b.OwnedPartitions() == Partitions && b.OwnedPartitions() == given
	})

	// a leaves while busy: it acts on nothing at once, and its leases
	// wait for the work.
	busyAll.Store(true)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- a.Leave(ctx)
	}()
	waitFor(t, 5*time.Second, "a stops acting at once", func() bool { return a.OwnedPartitions() == 0 })
	waitRounds(t, b)
	if n := b.OwnedPartitions(); n != given {
		t.Fatalf("b owns %d partitions while a, leaving, is still busy with its own (want %d)", n, given)
	}
	select {
	case err := <-done:
		t.Fatalf("Leave returned while busy: %v", err)
	default:
	}
	busyAll.Store(false)
	if err := <-done; err != nil {
		t.Fatalf("Leave: %v", err)
	}
	waitFor(t, 5*time.Second, "b takes everything after a left", func() bool { return b.OwnedPartitions() == Partitions })
}

// waitRounds waits until s has run at least two more lease rounds (each
// counts one round trip, its heartbeat).
func waitRounds(t testing.TB, s *Store) {
	t.Helper()
	from := s.Stats().RoundTrips
	waitFor(t, 10*time.Second, "lease rounds", func() bool { return s.Stats().RoundTrips >= from+3 })
}
