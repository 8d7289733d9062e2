package filestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashDirEnv) != "" {
		// The crash child runs until it is killed; goleak has nothing to say.
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func mustOpen(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	s, err := Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) presence.Store { return mustOpen(t, t.TempDir(), Options{}) })
}

func TestDurable(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"Default", Options{}},
		// Compacting every few records exercises rotation and snapshots.
		{"CompactOften", Options{CompactBytes: 2 << 10}},
		// Never compacting leaves a log of many segments to replay.
		{"NeverCompact", Options{CompactBytes: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.RunDurable(t, func(t *testing.T, dir string) presence.Store { return mustOpen(t, dir, tc.opts) })
		})
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func key(i int) presence.Key { return presence.Key{Tenant: "tenant", User: fmt.Sprint("user-", i)} }

func setSeq(seq uint64) func(*presence.State) error {
	return func(s *presence.State) error {
		s.Seq = seq
		s.Sessions = []presence.Session{{ID: "app", Pair: presence.Pair{Availability: "Busy", Activity: "Busy"}}}
		return nil
	}
}

func mustUpdate(t testing.TB, s *Store, k presence.Key, fn func(*presence.State) error) presence.State {
	t.Helper()
	_, after, err := s.Update(context.Background(), k, fn)
	if err != nil {
		t.Fatalf("Update(%s): %v", k, err)
	}
	return after
}

func seqs(t testing.TB, s *Store, n int) []uint64 {
	t.Helper()
	users := make([]string, n)
	for i := range users {
		users[i] = key(i).User
	}
	states, err := s.Get(context.Background(), "tenant", users)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, n)
	for i, st := range states {
		out[i] = st.Seq
	}
	return out
}

// writeLog opens a store in a new directory that never compacts, writes
// n records (key i gets Seq i+1) and closes it. It returns the directory
// and the path of its one segment.
func writeLog(t *testing.T, n int) (dir, seg string) {
	t.Helper()
	dir = t.TempDir()
	s := mustOpen(t, dir, Options{CompactBytes: -1, NoSync: true})
	for i := range n {
		mustUpdate(t, s, key(i), setSeq(uint64(i+1)))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	return dir, segs[0]
}

func TestTornTail(t *testing.T) {
	const n = 10
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string, size int64)
		kept   int // records that survive
		// clean says the damage is no damage: zeros after the last
		// record are the ones the writer writes ahead (prefill), read as
		// never written, with no warning.
		clean bool
	}{
		{"TruncatedRecord", func(t *testing.T, path string, size int64) { truncate(t, path, size-3) }, n - 1, false},
		{"TruncatedHeader", func(t *testing.T, path string, size int64) {
			truncate(t, path, size)
			appendBytes(t, path, []byte{1, 2, 3})
		}, n, false},
		{"Garbage", func(t *testing.T, path string, size int64) {
			appendBytes(t, path, []byte("garbage that is not a record at all"))
		}, n, false},
		{"Zeros", func(t *testing.T, path string, size int64) { appendBytes(t, path, make([]byte, 4096)) }, n, true},
		{"PrefilledZeros", func(t *testing.T, path string, size int64) { appendBytes(t, path, make([]byte, prefillBytes)) }, n, true},
		{"GarbageThenPrefilledZeros", func(t *testing.T, path string, size int64) {
			appendBytes(t, path, []byte("a batch torn by a crash"))
			appendBytes(t, path, make([]byte, prefillBytes))
		}, n, false},
		{"TornRecordThenPrefilledZeros", func(t *testing.T, path string, size int64) {
			// The crash kept the first half of the last record's bytes
			// in blocks written with zeros ahead of it.
			writeAt(t, path, size-10, make([]byte, prefillBytes))
		}, n - 1, false},
		{"FlippedByte", func(t *testing.T, path string, size int64) { flip(t, path, size-5) }, n - 1, false},
		{"HugeLength", func(t *testing.T, path string, size int64) {
			appendBytes(t, path, []byte{0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f})
		}, n, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, seg := writeLog(t, n)
			fi, err := os.Stat(seg)
			if err != nil {
				t.Fatal(err)
			}
			tc.damage(t, seg, fi.Size())
			var logs syncBuffer
			s := mustOpen(t, dir, Options{CompactBytes: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			got := seqs(t, s, n)
			for i := range n {
				want := uint64(i + 1)
				if i >= tc.kept {
					want = 0
				}
				if got[i] != want {
					t.Errorf("key %d: Seq %d, want %d", i, got[i], want)
				}
			}
			if warned := strings.Contains(logs.String(), "torn log tail"); warned == tc.clean {
				t.Errorf("torn tail warning logged: %v, want %v; logs:\n%s", warned, !tc.clean, logs.String())
			}
			// The store goes on: a write, a reopen, and everything is there.
			mustUpdate(t, s, key(n), setSeq(99))
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			logs = syncBuffer{}
			s = mustOpen(t, dir, Options{CompactBytes: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			defer s.Close()
			if got2 := seqs(t, s, n+1); got2[n] != 99 || fmt.Sprint(got2[:n]) != fmt.Sprint(got) {
				t.Errorf("after a second reopen: %v, want %v then 99", got2, got)
			}
			if strings.Contains(logs.String(), "torn") {
				t.Errorf("the torn tail was not truncated durably; logs:\n%s", logs.String())
			}
		})
	}
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

func flip(t *testing.T, path string, off int64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || off >= int64(len(b)) {
		t.Fatalf("read %s for byte %d: %v", path, off, err)
	}
	writeAt(t, path, off, []byte{b[off] ^ 0x20})
}

// writeAt writes b over path at off.
func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestCorruption(t *testing.T) {
	t.Run("EarlierSegment", func(t *testing.T) {
		dir, seg := writeLog(t, 5)
		s := mustOpen(t, dir, Options{CompactBytes: -1, NoSync: true})
		mustUpdate(t, s, key(9), setSeq(9))
		s.Close()
		flip(t, seg, 20) // damage in a segment that is not the last one
		if _, err := Open(context.Background(), dir, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open: %v, want ErrCorrupt", err)
		}
	})
	t.Run("FarFromTheEnd", func(t *testing.T) {
		// More than one batch of records after the damage: not a torn write.
		rec, err := appendStateRecord(nil, key(0), presence.State{Seq: 1})
		if err != nil {
			t.Fatal(err)
		}
		n := 2*maxBatchBytes/len(rec) + 100
		dir := t.TempDir()
		s := mustOpen(t, dir, Options{CompactBytes: -1, NoSync: true})
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < n; i += 8 {
					mustUpdate(t, s, key(i), setSeq(uint64(i+1)))
				}
			})
		}
		wg.Wait()
		s.Close()
		segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		if fi, _ := os.Stat(segs[0]); fi.Size() < maxBatchBytes+1000 {
			t.Fatalf("log of %d bytes is too short for the test", fi.Size())
		}
		flip(t, segs[0], 20)
		if _, err := Open(context.Background(), dir, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open: %v, want ErrCorrupt", err)
		}
	})
	t.Run("MissingSegment", func(t *testing.T) {
		dir, seg := writeLog(t, 5)
		for range 2 {
			s := mustOpen(t, dir, Options{CompactBytes: -1, NoSync: true})
			mustUpdate(t, s, key(9), setSeq(9))
			s.Close()
		}
		os.Remove(strings.Replace(seg, "1.log", "2.log", 1))
		if _, err := Open(context.Background(), dir, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open: %v, want ErrCorrupt", err)
		}
	})
	t.Run("Snapshot", func(t *testing.T) {
		dir := t.TempDir()
		s := mustOpen(t, dir, Options{NoSync: true})
		for i := range 5 {
			mustUpdate(t, s, key(i), setSeq(1))
		}
		s.Close() // compacts into the snapshot
		snap := filepath.Join(dir, snapshotName)
		fi, err := os.Stat(snap)
		if err != nil {
			t.Fatal(err)
		}
		truncate(t, snap, fi.Size()-1)
		if _, err := Open(context.Background(), dir, Options{}); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open with a truncated snapshot: %v, want ErrCorrupt", err)
		}
	})
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	if _, err := Open(context.Background(), dir, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{})
	s.Close()
}

func TestClosed(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{})
	mustUpdate(t, s, key(1), setSeq(1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, _, err := s.Update(ctx, key(1), setSeq(2)); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close: %v", err)
	}
	if _, err := s.Get(ctx, "tenant", []string{"user-1"}); !errors.Is(err, ErrClosed) {
		t.Errorf("Get after Close: %v", err)
	}
	if _, err := s.Due(ctx, time.Now(), 1); !errors.Is(err, ErrClosed) {
		t.Errorf("Due after Close: %v", err)
	}
	visited := false
	if err := s.Visit(ctx, "tenant", []string{"user-1"}, func(int, *presence.State) { visited = true }); !errors.Is(err, ErrClosed) || visited {
		t.Errorf("Visit after Close: %v (fn called: %v)", err, visited)
	}
	if err := s.Scan(ctx, func(presence.Key, presence.State) error { visited = true; return nil }); !errors.Is(err, ErrClosed) || visited {
		t.Errorf("Scan after Close: %v (fn called: %v)", err, visited)
	}
}

// TestCompaction writes enough to compact many times while writers run,
// then checks that old segments are gone and nothing was lost.
func TestCompaction(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{CompactBytes: 8 << 10, NoSync: true})
	const workers, users, rounds = 8, 40, 25
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				for u := w; u < users; u += workers {
					mustUpdate(t, s, key(u), func(st *presence.State) error {
						st.Seq++
						st.Due = time.Unix(int64(st.Seq), 0)
						return nil
					})
				}
			}
		})
	}
	wg.Wait()
	// Let the last background compaction finish before looking at the files.
	deadline := time.Now().Add(5 * time.Second)
	for s.compacting.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	if len(segs) > 2 {
		t.Errorf("%d segments after compaction: %v", len(segs), segs)
	}
	if _, err := os.Stat(filepath.Join(dir, snapshotName)); err != nil {
		t.Errorf("no snapshot: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.log")); len(segs) != 0 {
		t.Errorf("segments left after Close: %v", segs)
	}
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	for u, seq := range seqs(t, s, users) {
		if seq != rounds {
			t.Errorf("user %d: Seq %d, want %d", u, seq, rounds)
		}
	}
	due, _ := s.Due(context.Background(), time.Unix(rounds, 0), 100)
	if len(due) != users {
		t.Errorf("Due after reopen: %d keys, want %d", len(due), users)
	}
}

// TestOpenCompactsLargeLog checks that a log left large by a crash is
// compacted soon after Open.
func TestOpenCompactsLargeLog(t *testing.T) {
	dir, _ := writeLog(t, 200)
	s := mustOpen(t, dir, Options{CompactBytes: 1 << 10})
	deadline := time.Now().Add(5 * time.Second)
	for {
		segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
		if len(segs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("segments not compacted: %v", segs)
		}
		time.Sleep(time.Millisecond)
	}
	if got := seqs(t, s, 200); got[199] != 200 {
		t.Errorf("Seq of the last key: %d", got[199])
	}
	s.Close()
}

// TestCancelledUpdates gives Updates deadlines so short that some expire
// while queued and some while their batch is written, and checks that the
// memory and the disk agree afterwards and that every acknowledged
// increment is there.
func TestCancelledUpdates(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{CompactBytes: 16 << 10})
	const workers, each, users = 32, 40, 8
	var ok, unknown, cancelled atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(rand.IntN(2000))*time.Microsecond)
				_, _, err := s.Update(ctx, key((w+i)%users), func(st *presence.State) error {
					st.Seq++
					return nil
				})
				cancel()
				switch {
				case err == nil:
					ok.Add(1)
				case strings.Contains(err.Error(), "outcome unknown"):
					unknown.Add(1)
				case errors.Is(err, context.DeadlineExceeded):
					cancelled.Add(1)
				default:
					t.Errorf("Update: %v", err)
				}
			}
		})
	}
	wg.Wait()
	t.Logf("acknowledged %d, outcome unknown %d, cancelled %d", ok.Load(), unknown.Load(), cancelled.Load())
	// Wait for the writer to hand back every abandoned stripe.
	for u := range users {
		if err := s.m.Lock(context.Background(), key(u)); err != nil {
			t.Fatal(err)
		}
		s.m.Unlock(key(u))
	}
	mem := seqs(t, s, users)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	disk := seqs(t, s, users)
	var total int64
	for u := range users {
		if mem[u] != disk[u] {
			t.Errorf("user %d: memory had Seq %d, disk has %d", u, mem[u], disk[u])
		}
		total += int64(disk[u])
	}
	if total < ok.Load() || total > ok.Load()+unknown.Load() {
		t.Errorf("total %d increments, want between %d acknowledged and %d", total, ok.Load(), ok.Load()+unknown.Load())
	}
}

func TestStats(t *testing.T) {
	// 20 records of about 30 bytes reach CompactBytes.
	s := mustOpen(t, t.TempDir(), Options{CompactBytes: 400})
	for i := range 20 {
		mustUpdate(t, s, key(i), func(st *presence.State) error {
			st.Seq = 1
			st.Due = time.Unix(1, 0)
			return nil
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Compactions == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	st := s.Stats()
	if st.Users != 20 || st.Records != 20 || st.Syncs < 1 || st.Syncs > 20 || st.Compactions < 1 || st.DueIndexLen != 20 {
		t.Errorf("Stats = %+v", st)
	}
	// Each record waited at least for the sync that covered it, and there
	// are no more syncs than records.
	if st.SyncSeconds <= 0 || st.SyncSeconds > st.CommitSeconds {
		t.Errorf("SyncSeconds %g, CommitSeconds %g: want 0 < sync time <= commit time", st.SyncSeconds, st.CommitSeconds)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// recordOffsets returns the offset of each record of the log segment path.
func recordOffsets(t *testing.T, path string) []int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var offs []int64
	if _, err := readRecords(f, func(off int64, _ []byte) error { offs = append(offs, off); return nil }); err != nil {
		t.Fatal(err)
	}
	return offs
}

// zeroFrom writes zeros over path from off to the end of off's sector.
func zeroFrom(t *testing.T, path string, off int64) {
	t.Helper()
	writeAt(t, path, off, make([]byte, sectorSize-off%sectorSize))
}
