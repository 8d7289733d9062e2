package filestore

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// millionUsers is the population of BenchmarkMillionUsers.
const millionUsers = 1_000_000

// benchGUID returns a random canonical lower-case GUID.
func benchGUID(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return presence.GUIDFrom(b)
}

// heapInUse returns runtime.MemStats.HeapInuse after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// dirBytes returns the total size of the files in dir.
func dirBytes(tb testing.TB, dir string) int64 {
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var n int64
	for _, e := range ents {
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			tb.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// BenchmarkMillionUsers is the load tool's population in miniature, without
// HTTP: a million users of one tenant, each with one live application
// session (one of 8 apps) and a preferred presence, made by the service's
// own Step at realistic instants (nanosecond precision). It publishes them
// all through Update (NoSync, to keep the set-up short), closes the store
// (which writes the snapshot) and reopens it, and reports:
//
//	open-s            time to Open the store of a million users
//	heap-B/user       runtime HeapInuse after a GC, per user, after the reopen
//	pop-heap-B/user   the same after populating, before the first Close
//	disk-B/user       size of the data directory after Close, per user
//
// It takes 10-20 seconds (a minute and some 2 GB of memory with the JSON
// format); run it alone:
//
//	go test -run '^$' -bench MillionUsers -benchtime 1x ./filestore/
func BenchmarkMillionUsers(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	tenant := benchGUID(r)
	apps := make([]string, 8)
	for i := range apps {
		apps[i] = benchGUID(r)
	}
	users := make([]string, millionUsers)
	for i := range users {
		users[i] = benchGUID(r)
	}
	sessionPairs := presence.SessionPairs()
	preferredPairs := presence.PreferredPairs()
	dir := b.TempDir()

	base := heapInUse()
	s, err := Open(context.Background(), dir, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC)
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < millionUsers; i += workers {
				// Keys built as a request would: strings of their own.
				key := presence.Key{Tenant: string([]byte(tenant)), User: string([]byte(users[i]))}
				app := string([]byte(apps[i%len(apps)]))
				now := start.Add(time.Duration(i) * 3777 * time.Microsecond).Add(time.Duration(i%1000) * 17)
				sp := sessionPairs[i%len(sessionPairs)]
				set := &presence.SetPresence{CallerApp: app, SessionID: app, Availability: sp.Availability, Activity: sp.Activity}
				pp := preferredPairs[i%len(preferredPairs)]
				pref := &presence.SetPreferred{Availability: pp.Availability, Activity: pp.Activity}
				if err := set.Validate(nil); err != nil {
					b.Error(err)
					return
				}
				if err := pref.Validate(nil); err != nil {
					b.Error(err)
					return
				}
				if _, _, err := s.Update(context.Background(), key, func(st *presence.State) error {
					if _, err := presence.Step(key, st, set, now); err != nil {
						return err
					}
					_, err := presence.Step(key, st, pref, now.Add(20*time.Millisecond))
					return err
				}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		s.Close()
		return
	}
	popHeap := heapInUse() - base
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	disk := dirBytes(b, dir)
	s = nil

	var openTime time.Duration
	var heap uint64
	for b.Loop() {
		b.StopTimer()
		base := heapInUse()
		b.StartTimer()
		t0 := time.Now()
		s, err := Open(context.Background(), dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		openTime = time.Since(t0)
		b.StopTimer()
		heap = heapInUse() - base
		if got := s.Stats().Users; got != millionUsers {
			b.Fatalf("reopened with %d users", got)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	runtime.KeepAlive(users) // in every base as in every measurement
	b.ReportMetric(openTime.Seconds(), "open-s")
	b.ReportMetric(float64(heap)/millionUsers, "heap-B/user")
	b.ReportMetric(float64(popHeap)/millionUsers, "pop-heap-B/user")
	b.ReportMetric(float64(disk)/millionUsers, "disk-B/user")
}
