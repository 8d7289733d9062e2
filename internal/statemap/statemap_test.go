package statemap

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
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
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				m.Due(at(rounds), 100)
				m.Get("t", []string{"u1", "u2", "u3"})
			}
		})
	}
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
	close(stop)
	wg.Wait()
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
