package statemap

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func key(i int) presence.Key {
	return presence.Key{Tenant: "t", User: fmt.Sprint("u", i)}
}

func at(sec int) time.Time { return time.Unix(1_700_000_000+int64(sec), 0).UTC() }

func publishDue(m *Map, k presence.Key, due time.Time) {
	s := m.Load(k)
	s.Seq++
	s.Due = due
	m.Publish(k, s)
}

func TestLockContext(t *testing.T) {
	m := New()
	k := key(1)
	if err := m.Lock(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := m.Lock(ctx, k); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held stripe: %v, want DeadlineExceeded", err)
	}
	// Another goroutine may release the lock.
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Unlock(k)
	}()
	<-done
	if err := m.Lock(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	m.Unlock(k)
	cancelled, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := m.Lock(cancelled, k); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with a cancelled context on a free stripe: %v", err)
	}
	defer func() {
		if recover() == nil {
			t.Error("Unlock of an unlocked stripe did not panic")
		}
	}()
	m.Unlock(k)
}

func TestLoadPublishCopies(t *testing.T) {
	m := New()
	k := key(1)
	msg := "m"
	s := presence.State{Sessions: []presence.Session{{ID: "a"}}, Preferred: &presence.Preferred{}, OOF: presence.OutOfOfficeSettings{Message: &msg}}
	m.Publish(k, s)
	s.Sessions[0].ID = "changed"
	s.Preferred.Pair.Activity = "changed"
	*s.OOF.Message = "changed"
	got := m.Load(k)
	if got.Sessions[0].ID != "a" || got.Preferred.Pair.Activity != "" || *got.OOF.Message != "m" {
		t.Fatalf("Publish kept the caller's memory: %+v", got)
	}
	got.Sessions[0].ID = "changed"
	if m.Load(k).Sessions[0].ID != "a" {
		t.Fatal("Load returned the stored memory")
	}
	if !m.Load(key(2)).IsZero() {
		t.Fatal("Load of an unknown key is not the zero State")
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d", m.Len())
	}
	g := m.Get("t", []string{"u1", "u2", "u1"})
	if len(g) != 3 || g[0].Sessions[0].ID != "a" || !g[1].IsZero() || g[2].Sessions[0].ID != "a" {
		t.Fatalf("Get = %+v", g)
	}
}

func TestDueSemantics(t *testing.T) {
	m := New()
	for i := range 5 {
		publishDue(m, key(i), at(i))
	}
	m.Publish(key(9), presence.State{Seq: 1}) // never due
	if got := m.Due(at(2), 0); got != nil {
		t.Fatalf("limit 0: %v", got)
	}
	want := []presence.Key{key(0), key(1), key(2)}
	for range 3 { // not consumed: the same answer every time
		if got := m.Due(at(2), 10); !slices.Equal(got, want) {
			t.Fatalf("Due = %v, want %v", got, want)
		}
	}
	if got := m.Due(at(2), 2); !slices.Equal(got, want[:2]) {
		t.Fatalf("Due(limit 2) = %v", got)
	}
	publishDue(m, key(0), time.Time{}) // cleared
	publishDue(m, key(1), at(100))     // moved on
	publishDue(m, key(3), at(-1))      // moved earlier: two pairs, one live
	if got, want := m.Due(at(3), 10), []presence.Key{key(3), key(2)}; !slices.Equal(got, want) {
		t.Fatalf("Due after updates = %v, want %v", got, want)
	}
	// Away and back: two live pairs for one key, returned once.
	publishDue(m, key(4), at(50))
	publishDue(m, key(4), at(4))
	publishDue(m, key(4), at(50))
	publishDue(m, key(4), at(4))
	if got, want := m.Due(at(4), 10), []presence.Key{key(3), key(2), key(4)}; !slices.Equal(got, want) {
		t.Fatalf("Due with duplicate pairs = %v, want %v", got, want)
	}
	if got, want := m.Due(at(4), 10), []presence.Key{key(3), key(2), key(4)}; !slices.Equal(got, want) {
		t.Fatalf("Due again = %v, want %v", got, want)
	}
	// Republishing with the same Due does not add a pair.
	n := m.DueLen()
	s := m.Load(key(2))
	s.Seq++
	m.Publish(key(2), s)
	if m.DueLen() != n {
		t.Fatalf("a Publish that kept Due grew the index from %d to %d", n, m.DueLen())
	}
}

func TestDueIndexStaysBounded(t *testing.T) {
	m := New()
	const users = 100
	for r := range 200 {
		for u := range users {
			publishDue(m, key(u), at(1000+r*users+u)) // every write moves Due
		}
	}
	if n := m.DueLen(); n > 2*users+compactSlack+1 {
		t.Fatalf("due index holds %d pairs for %d users", n, users)
	}
	got := m.Due(at(math.MaxInt32), 1000)
	if len(got) != users {
		t.Fatalf("Due returned %d keys, want %d", len(got), users)
	}
	for i, k := range got {
		if k != key(i) {
			t.Fatalf("Due[%d] = %v, want %v", i, k, key(i))
		}
	}
}

func TestDueNanos(t *testing.T) {
	if dueNanos(time.Time{}) != noDue {
		t.Error("zero time is not noDue")
	}
	if got := dueNanos(time.Unix(0, 0)); got != 0 {
		t.Errorf("epoch: %d", got)
	}
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := dueNanos(far); got != math.MaxInt64 {
		t.Errorf("far future: %d", got)
	}
	early := time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)
	if got := dueNanos(early); got != math.MinInt64+1 {
		t.Errorf("far past: %d", got)
	}
	m := New()
	publishDue(m, key(1), far)
	publishDue(m, key(2), early)
	if got := m.Due(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), 10); !slices.Equal(got, []presence.Key{key(2)}) {
		t.Errorf("Due = %v", got)
	}
}

// TestSnapshotWaitsForWriters checks that Snapshot includes a write whose
// stripe lock is held when Snapshot starts.
func TestSnapshotWaitsForWriters(t *testing.T) {
	m := New()
	m.Publish(key(1), presence.State{Seq: 1})
	k := key(2)
	if err := m.Lock(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	got := make(chan map[presence.Key]uint64)
	go func() {
		seen := make(map[presence.Key]uint64)
		m.Snapshot(context.Background(), func(k presence.Key, s presence.State) error {
			seen[k] = s.Seq
			return nil
		})
		got <- seen
	}()
	time.Sleep(20 * time.Millisecond)
	m.Publish(k, presence.State{Seq: 2}) // a new key, written under its lock
	m.Unlock(k)
	seen := <-got
	if seen[key(1)] != 1 || seen[k] != 2 || len(seen) != 2 {
		t.Fatalf("Snapshot saw %v", seen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.Snapshot(ctx, func(presence.Key, presence.State) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Snapshot with a cancelled context: %v", err)
	}
	stop := errors.New("stop")
	if err := m.Snapshot(context.Background(), func(presence.Key, presence.State) error { return stop }); err != stop {
		t.Fatalf("Snapshot did not return fn's error: %v", err)
	}
}

// TestConcurrent runs writers, readers and Due callers together under the
// race detector, then checks the counters and the due index.
func TestConcurrent(t *testing.T) {
	m := New()
	const writers, users, rounds = 8, 50, 40
	stop := repeatOnCores(func() bool {
		m.Due(at(rounds), 100)
		m.Get("t", []string{"u1", "u2", "u3"})
		return true
	})
	var ww sync.WaitGroup
	for w := range writers {
		ww.Go(func() {
			for r := range rounds {
				for u := range users {
					k := key(u)
					if err := m.Lock(context.Background(), k); err != nil {
						t.Error(err)
						return
					}
					s := m.Load(k)
					s.Seq++
					s.Due = at(r + w%2)
					m.Publish(k, s)
					m.Unlock(k)
				}
			}
		})
	}
	ww.Wait()
	stop()
	for u := range users {
		if s := m.Load(key(u)); s.Seq != writers*rounds {
			t.Fatalf("user %d: Seq %d, want %d", u, s.Seq, writers*rounds)
		}
	}
	if got := m.Due(at(rounds+1), 1000); len(got) != users {
		t.Fatalf("Due returned %d keys, want %d", len(got), users)
	}
}

func BenchmarkLoad(b *testing.B) {
	m := New()
	for i := range 1000 {
		m.Publish(key(i), presence.State{Seq: 1, Sessions: []presence.Session{{ID: "a"}}})
	}
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			m.Load(key(i % 1000))
			i++
		}
	})
}

// TestRestore fills a Map with Restore from several goroutines, the way
// filestore loads a snapshot, then rebuilds the due index.
func TestRestore(t *testing.T) {
	m := New()
	m.Reserve(1000)
	encs := make([][]byte, 1000)
	for i := range encs {
		s := presence.State{Seq: uint64(i)}
		if i%3 != 0 {
			s.Due = at(i)
		}
		encs[i] = AppendState(nil, &s)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < len(encs); i += 4 {
				if err := m.Restore(key(i), encs[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := m.Restore(key(5000), []byte("{}")); err == nil {
		t.Error("Restore of a bad encoding succeeded")
	}
	// The last Restore of a key wins, and so does RestoreState.
	s1 := presence.State{Seq: 1001, Due: at(-1)}
	if err := m.Restore(key(1), AppendState(nil, &s1)); err != nil {
		t.Fatal(err)
	}
	m.RestoreState(key(2), presence.State{Seq: 1002})
	m.IndexDue()
	if m.Len() != 1000 {
		t.Fatalf("Len = %d", m.Len())
	}
	if got := m.Load(key(1)).Seq; got != 1001 {
		t.Errorf("key 1: Seq %d", got)
	}
	if got := m.Load(key(7)).Seq; got != 7 {
		t.Errorf("key 7: Seq %d", got)
	}
	got := m.Due(at(10), 100)
	want := []presence.Key{key(1), key(4), key(5), key(7), key(8), key(10)}
	if !slices.Equal(got, want) {
		t.Errorf("Due = %v, want %v", got, want)
	}
	// The index goes on as usual after the rebuild.
	publishDue(m, key(4), time.Time{})
	if got := m.Due(at(10), 3); !slices.Equal(got, []presence.Key{key(1), key(5), key(7)}) {
		t.Errorf("Due after a Publish = %v", got)
	}
}

// TestHashCollisions checks that keys sharing a 64-bit hash are kept
// apart, in a shard's published table and in the keys inserted since, by
// putting entries under one hash directly.
func TestHashCollisions(t *testing.T) {
	var sh shard
	const h = 42
	es := []*entry{{key: key(1)}, {key: key(2)}, {key: key(3)}, {key: key(4)}, {key: key(5)}}
	check := func(when string, in []*entry) {
		t.Helper()
		for _, e := range in {
			if got := sh.lookup(h, e.key); got != e {
				t.Errorf("%s: lookup(%v) = %v", when, e.key, got)
			}
		}
		if sh.lookup(h, key(9)) != nil || sh.lookup(h+1, key(1)) != nil {
			t.Errorf("%s: found a key never inserted", when)
		}
		var seen []presence.Key
		sh.mu.Lock()
		sh.each(func(e *entry) { seen = append(seen, e.key) })
		sh.mu.Unlock()
		if len(seen) != len(in) {
			t.Errorf("%s: each visited %v", when, seen)
		}
	}
	sh.mu.Lock()
	for _, e := range es[:3] {
		if sh.findLocked(h, e.key) != nil {
			t.Fatalf("%v found before it was inserted", e.key)
		}
		sh.insert(h, e)
	}
	sh.mu.Unlock()
	check("in dirty", es[:3])
	sh.mu.Lock()
	sh.promote()
	for _, e := range es[3:] {
		sh.insert(h, e)
	}
	sh.mu.Unlock()
	if sh.read.Load().len() != 3 || sh.fresh.Load() != 2 {
		t.Fatalf("published %d keys, %d fresh; want 3 and 2", sh.read.Load().len(), sh.fresh.Load())
	}
	check("in both tables", es)
	sh.mu.Lock()
	sh.promote()
	sh.mu.Unlock()
	if sh.read.Load().len() != 5 || sh.fresh.Load() != 0 {
		t.Fatalf("published %d keys, %d fresh; want 5 and 0", sh.read.Load().len(), sh.fresh.Load())
	}
	check("published", es)
}

// TestReadsPublishFreshKeys checks that the keys inserted after a shard's
// table was published are found, and that lookups of them move them into
// a new published table, after which reading them takes no lock.
func TestReadsPublishFreshKeys(t *testing.T) {
	m := New()
	const users = 40_000 // about ten a shard
	fresh := func() (n int) {
		for i := range m.shards {
			n += int(m.shards[i].fresh.Load())
		}
		return n
	}
	// First into empty shards (published by a move), then beside the keys
	// published (published by a copy that merges them in).
	for _, from := range []int{0, users} {
		for i := from; i < from+users; i++ {
			m.Publish(key(i), presence.State{Seq: uint64(i + 1)})
		}
		if fresh() == 0 {
			t.Fatal("no key waits to be published after the inserts")
		}
		// A shard publishes once its lookups missed a quarter of its
		// published table's size times: a lone fresh key beside the
		// largest table needs that many reads, and two more for the move.
		largest := 0
		for i := range m.shards {
			largest = max(largest, m.shards[i].read.Load().len())
		}
		rounds := largest/4 + 2
		for range rounds {
			for i := from; i < from+users; i++ {
				if s := m.Load(key(i)); s.Seq != uint64(i+1) {
					t.Fatalf("user %d: Seq %d", i, s.Seq)
				}
			}
		}
		if n := fresh(); n != 0 {
			t.Errorf("%d keys still wait to be published after %d reads of every key (largest table %d)", n, rounds, largest)
		}
	}
	const users2 = 2 * users
	// A read of a key never published does not lock once nothing waits.
	if s := m.Load(key(users2 + 1)); s.Seq != 0 {
		t.Errorf("a key never published has Seq %d", s.Seq)
	}
}

// TestReadsAreNeverTorn swaps encodings of different lengths under
// readers that take no lock: every read is one of the states published,
// whole.
func TestReadsAreNeverTorn(t *testing.T) {
	m := New()
	k := key(1)
	states := []presence.State{
		{Seq: 1},
		{Seq: 2, Sessions: []presence.Session{{ID: "22553876-f5ab-4529-bffb-cfe50aa89f87", Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}}}},
		{Seq: 3, Sessions: []presence.Session{{ID: "a-session-id-that-is-not-a-guid-and-is-long"}, {ID: "another"}}},
	}
	m.Publish(k, states[0])
	stop := repeatOnCores(func() bool {
		got := m.Load(k)
		if got.Seq < 1 || got.Seq > 3 || !reflect.DeepEqual(got.Sessions, m.decode(string(AppendState(nil, &states[got.Seq-1]))).Sessions) {
			t.Errorf("read a state never published: %+v", got)
			return false
		}
		return true
	})
	for i := range 20_000 {
		m.Publish(k, states[i%3])
	}
	stop()
}

// repeatOnCores runs fn on two goroutines, again and again until it
// returns false or the returned stop is called; stop waits for them.
func repeatOnCores(fn func() bool) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if !fn() {
					return
				}
			}
		})
	}
	return func() {
		close(done)
		wg.Wait()
	}
}

// TestInterning checks that the tenants of keys and the GUIDs of session
// ids are shared by the states the Map hands out.
func TestInterning(t *testing.T) {
	m := New()
	tenant, app := "84bd8158-6d4d-4958-8b9f-9d6445542f95", "22553876-f5ab-4529-bffb-cfe50aa89f87"
	s := presence.State{Sessions: []presence.Session{{ID: app}}}
	for i := range 3 {
		m.Publish(presence.Key{Tenant: strings.Clone(tenant), User: fmt.Sprint("u", i)}, s)
	}
	var keys []presence.Key
	m.Snapshot(context.Background(), func(k presence.Key, st presence.State) error {
		keys = append(keys, k)
		return nil
	})
	a, b := m.Load(keys[0]), m.Load(keys[1])
	if !sameMemory(keys[0].Tenant, keys[1].Tenant) || !sameMemory(keys[1].Tenant, keys[2].Tenant) {
		t.Error("tenants are not shared")
	}
	if !sameMemory(a.Sessions[0].ID, b.Sessions[0].ID) || a.Sessions[0].ID != app {
		t.Error("session ids are not shared")
	}
}

func TestInternerBound(t *testing.T) {
	var in interner
	first := in.intern(strings.Clone("first"))
	for i := range internMax + 10 {
		in.intern(fmt.Sprint(i))
	}
	if !in.full.Load() {
		t.Fatal("the interner is not full")
	}
	if v := in.intern(strings.Clone("first")); !sameMemory(v, first) {
		t.Error("a string interned before the table filled is no longer shared")
	}
	if _, ok := in.lookup("new one"); ok {
		t.Error("found a string never interned")
	}
	if v := in.intern("new one"); v != "new one" {
		t.Errorf("intern past the bound = %q", v)
	}
	if n := len(*in.read.Load()); n > internMax {
		t.Errorf("%d strings interned, more than %d", n, internMax)
	}
}

func TestInternerConcurrent(t *testing.T) {
	var in interner
	var wg sync.WaitGroup
	got := make([][]string, 4)
	for w := range got {
		wg.Go(func() {
			for i := range 2000 {
				got[w] = append(got[w], in.intern(fmt.Sprint(i%500)))
			}
		})
	}
	wg.Wait()
	for w := 1; w < len(got); w++ {
		for i := range got[w] {
			if !sameMemory(got[w][i], got[0][i]) {
				t.Fatalf("goroutines %d and 0 got different copies of %q", w, got[w][i])
			}
		}
	}
}

// TestPublishEncoded checks that publishing a state's encoding is the same
// as publishing the state: what Load gives back, and the due index.
func TestPublishEncoded(t *testing.T) {
	a, b := New(), New()
	s := presence.State{Seq: 3, SeqAt: at(1), Due: at(5), Sessions: []presence.Session{{ID: "s", Kind: presence.AppSession,
		Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}, RefreshedAt: at(1), ExpiresAt: at(5)}}}
	a.Publish(key(1), s)
	b.PublishEncoded(key(1), string(AppendState(nil, &s)), s.Due)
	if got, want := b.Load(key(1)), a.Load(key(1)); !reflect.DeepEqual(got, want) {
		t.Fatalf("PublishEncoded then Load = %+v, want %+v", got, want)
	}
	if got := b.Due(at(5), 10); !slices.Equal(got, []presence.Key{key(1)}) {
		t.Fatalf("Due after PublishEncoded = %v", got)
	}
}

// TestVisitReusesStorage checks the package's claim that visiting many
// users allocates next to nothing: what a Visit allocates (its storage,
// grown once) does not grow with the users visited, whose states have
// sessions, outboxes, GUID session ids and pointed-to parts.
func TestVisitReusesStorage(t *testing.T) {
	m := New()
	var users []string
	for i := range 50 {
		s := richState()
		s.Seq = uint64(i)
		m.Publish(key(i), s)
		users = append(users, key(i).User)
	}
	allocs := func(users []string) float64 {
		return testing.AllocsPerRun(20, func() { m.Visit("t", users, func(int, *presence.State) {}) })
	}
	if one, all := allocs(users[:1]), allocs(users); all > one {
		t.Errorf("a Visit of 1 user allocates %v times, of %d users %v times", one, len(users), all)
	}
}

// TestKeyUserCopies checks whose memory a new entry's user id is: a copy
// of its own after Publish and PublishEncoded (the caller's may be part of
// a request it keeps alive), the caller's own after Restore (DecodeKey
// made it for the entry).
func TestKeyUserCopies(t *testing.T) {
	m := New()
	request := strings.Repeat("x", 1000) + "u1u2u3"
	k1 := presence.Key{Tenant: "t", User: request[1000:1002]}
	k2 := presence.Key{Tenant: "t", User: request[1002:1004]}
	k3 := presence.Key{Tenant: "t", User: request[1004:1006]}
	s := presence.State{Seq: 1}
	m.Publish(k1, s)
	m.PublishEncoded(k2, string(AppendState(nil, &s)), s.Due)
	if err := m.Restore(k3, AppendState(nil, &s)); err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	m.SnapshotEncoded(context.Background(), func(k presence.Key, _ string) error {
		stored[k.User] = k.User
		return nil
	})
	if u := stored["u1"]; sameMemory(u, k1.User) {
		t.Error("Publish kept the caller's user id")
	}
	if u := stored["u2"]; sameMemory(u, k2.User) {
		t.Error("PublishEncoded kept the caller's user id")
	}
	if u := stored["u3"]; !sameMemory(u, k3.User) {
		t.Error("Restore copied the user id")
	}
}

// BenchmarkVisit reads 650 users of 100,000 (a bulk read's most) from
// every core at once, the way concurrent bulk reads of the same users do.
func BenchmarkVisit(b *testing.B) {
	m := New()
	s := presence.State{Seq: 1, Sessions: []presence.Session{{ID: "22553876-f5ab-4529-bffb-cfe50aa89f87", Pair: presence.Pair{Availability: "Available", Activity: "Available"}}}}
	for i := range 100_000 {
		m.Publish(key(i), s)
	}
	users := make([]string, 650)
	for i := range users {
		users[i] = key(i * 150).User
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var n uint64
		for pb.Next() {
			m.Visit("t", users, func(_ int, s *presence.State) { n += s.Seq })
		}
		_ = n
	})
}
