package filestore

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// benchState is a typical stored state: one application session.
func benchState(seq uint64) presence.State {
	at := time.Date(2025, 3, 14, 9, 26, 53, 0, time.UTC)
	return presence.State{
		Sessions: []presence.Session{{ID: "3f2504e0", Pair: presence.Pair{Availability: "Busy", Activity: "InACall"},
			RefreshedAt: at, ExpiresAt: at.Add(5 * time.Minute)}},
		Seq:   seq,
		SeqAt: at,
		Due:   at.Add(5 * time.Minute),
	}
}

// BenchmarkUpdateParallel measures durable Updates from 64 goroutines
// (SetParallelism(32) on 2 cores), each on its own users, and reports
// writes/s, the 99th percentile latency, the records per fsync and the
// mean commit latency (queued to durable).
//
//	go test -run '^$' -bench UpdateParallel -benchtime 3s -count 3 ./filestore/
//
// Sub-benchmarks: group is the store as shipped (group commit), group-16
// the same with 16 goroutines; depth2 and depth2-16 allow a second fsync
// to overlap the first (Options.SyncDepth 2); one-fsync-per-write lets only one Update in at a time, so each fsync
// carries one record, which is what a log without group commit does;
// nosync skips fsync, the ceiling set by the CPU.
func BenchmarkUpdateParallel(b *testing.B) {
	js, _ := json.Marshal(benchState(1))
	rec, _ := appendStateRecord(nil, presence.Key{Tenant: "bench", User: "user-1-1"}, benchState(1))
	for _, bc := range []struct {
		name   string
		opts   Options
		serial bool
		par    int
	}{
		{"group", Options{}, false, 32},
		{"group-16", Options{}, false, 8},
		{"depth2", Options{SyncDepth: 2}, false, 32},
		{"depth2-16", Options{SyncDepth: 2}, false, 8},
		{"one-fsync-per-write", Options{}, true, 32},
		{"nosync", Options{NoSync: true}, false, 32},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s, err := Open(context.Background(), b.TempDir(), bc.opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var (
				serial sync.Mutex
				gid    atomic.Int64
				latMu  sync.Mutex
				lat    []time.Duration
			)
			b.SetParallelism(bc.par)
			b.ReportAllocs()
			b.ResetTimer()
			syncs0 := s.syncs.Load()
			commit0, records0 := s.commitNanos.Load(), s.records.Load()
			disk0 := diskWriteBytes()
			b.RunParallel(func(pb *testing.PB) {
				g := gid.Add(1)
				var mine []time.Duration
				for i := 0; pb.Next(); i++ {
					k := presence.Key{Tenant: "bench", User: fmt.Sprintf("user-%d-%d", g, i%100)}
					start := time.Now()
					if bc.serial {
						serial.Lock()
					}
					_, _, err := s.Update(context.Background(), k, func(st *presence.State) error {
						*st = benchState(st.Seq + 1)
						return nil
					})
					if bc.serial {
						serial.Unlock()
					}
					mine = append(mine, time.Since(start))
					if err != nil {
						b.Error(err)
						return
					}
				}
				latMu.Lock()
				lat = append(lat, mine...)
				latMu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
			if n := s.syncs.Load() - syncs0; n > 0 {
				b.ReportMetric(float64(b.N)/float64(n), "records/fsync")
			}
			if n := s.records.Load() - records0; n > 0 {
				b.ReportMetric(float64(s.commitNanos.Load()-commit0)/float64(n)/1e6, "commit-ms")
			}
			b.ReportMetric(float64(len(js)), "state-json-B")
			b.ReportMetric(float64(len(rec)), "record-B")
			if disk0 >= 0 {
				// Bytes this process sent to the block layer (page
				// granularity, journal excluded) per durable write.
				b.ReportMetric(float64(diskWriteBytes()-disk0)/float64(b.N), "disk-B/write")
			}
		})
	}
}

// diskWriteBytes returns write_bytes from /proc/self/io, or -1.
func diskWriteBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil {
				return n
			}
		}
	}
	return -1
}

// BenchmarkGet650 measures a batch read of 650 users, as
// getPresencesByUserId sends.
func BenchmarkGet650(b *testing.B) {
	s, err := Open(context.Background(), b.TempDir(), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	users := make([]string, 650)
	for i := range users {
		users[i] = fmt.Sprint("user-", i)
		if _, _, err := s.Update(context.Background(), presence.Key{Tenant: "t", User: users[i]}, func(st *presence.State) error {
			*st = benchState(1)
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Get(context.Background(), "t", users); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpen measures Open of a store of 100,000 users: reading the
// snapshot and rebuilding the map and the due index.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s, err := Open(context.Background(), dir, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	const users = 100_000
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < users; i += 8 {
				if _, _, err := s.Update(context.Background(), presence.Key{Tenant: "t", User: fmt.Sprint("user-", i)}, func(st *presence.State) error {
					*st = benchState(uint64(i))
					return nil
				}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s, err := Open(context.Background(), dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(users), "users")
}
