package filestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
)

// DefaultCompactBytes is the size of the current log segment at which the
// log is compacted into a snapshot when Options.CompactBytes is zero.
const DefaultCompactBytes = 64 << 20

// Errors returned by the Store.
var (
	// ErrClosed is returned by the methods of a closed Store.
	ErrClosed = errors.New("filestore: store closed")
	// ErrLocked is returned by Open when another Store, in this process or
	// another, has the directory open.
	ErrLocked = errors.New("filestore: directory is locked by another store")
)

// File names inside the store's directory.
const (
	lockName     = "LOCK"
	snapshotName = "snapshot"
	snapshotTemp = "snapshot.tmp"
	segSuffix    = ".log"
)

// Options tune a Store. The zero Options are the production defaults.
type Options struct {
	// Logger receives warnings (a torn log tail truncated at Open, a failed
	// compaction) and errors. Nil discards them.
	Logger *slog.Logger
	// CompactBytes is the size of the current log segment at which the
	// store starts a new segment and writes a snapshot of every state,
	// after which the older segments are deleted. Zero means
	// DefaultCompactBytes. A negative value never compacts, not even at
	// Close; it exists for tests of the log itself.
	CompactBytes int64
	// NoSync skips fsync, so acknowledged writes are NOT durable. It exists
	// only to measure the cost of durability in benchmarks.
	NoSync bool
	// ProbeInterval is how often a store whose last write failed (a full
	// disk) checks whether it can write again. Zero means
	// DefaultProbeInterval.
	ProbeInterval time.Duration
	// WrapFile, when set, wraps every log segment the store appends to
	// (and every descriptor it syncs a segment with): tests inject write
	// faults with it.
	WrapFile func(File) File
	// SyncDepth is how many fsyncs of the log may run at once, each
	// covering what was written before it started; zero means
	// DefaultSyncDepth. With 1, records that arrive during an fsync are
	// written at once and the next fsync starts as soon as it returns. More
	// than one run at once only while there are few writers (the last
	// fsync's records and those waiting, fewer than 24): with many,
	// waiting for the running fsync gathers a bigger batch.
	SyncDepth int
}

// Store is the durable embedded presence.Store. Open one with Open; it is
// safe for concurrent use.
type Store struct {
	dir    string
	log    *slog.Logger
	noSync bool
	// compactAt is the segment size that triggers compaction; <= 0 never.
	compactAt int64

	// jsonSnapshot says Open read a snapshot of the JSON format.
	jsonSnapshot bool

	m        *statemap.Map
	lockFile *os.File
	closed   atomic.Bool

	// mu guards the queue of records waiting to be written, and the flags
	// under it.
	mu      sync.Mutex
	queue   []*waiter
	closing bool
	// writeErr is the error of the last write or probe of the log, nil
	// when it succeeded: Healthy reports it.
	writeErr error

	wake       chan struct{} // cap 1: the queue or closing changed
	writerDone chan struct{}

	// Owned by the writer goroutine until it has exited, then by Close.
	seg      File
	segNum   uint64
	segBytes int64 // durable bytes of seg
	// dirty says seg may hold bytes past segBytes, left by a failed write
	// not yet cut back.
	dirty bool
	// filled is how far seg is known to hold zeros written ahead of the
	// records (prefill), zeros its buffer of zeros.
	filled int64
	zeros  []byte
	// The failures since the last successful write, for the rate-limited
	// error log.
	failures, unlogged       int
	failingSince, lastErrLog time.Time
	probeEvery               time.Duration
	wrapFile                 func(File) File
	wbuf                     []byte
	// The pipeline: written is the segment's size with what was written
	// and not yet durable; pend the batches written, oldest first, seq the
	// last one's number and requested the last covered by an fsync
	// started; inflight the fsyncs running (at most syncDepth), each
	// reporting on synced with a descriptor of the segment that goes back
	// to syncFiles. failErr stops writing until no fsync runs, then fails
	// every pending batch. rotating stops writing until every batch is
	// complete, then starts a new segment.
	written        int64
	pend           []batch
	seq, requested uint64
	inflight       int
	syncDepth      int
	synced         chan syncJob
	syncFiles      []File
	failErr        error
	syncFailed     bool
	// pendRecords is the number of records in pend, lastSyncRecords the
	// number the last fsync made durable.
	pendRecords, lastSyncRecords int64
	rotating                     bool
	// Counters for Stats.
	syncs, records, logBytes, compactions atomic.Int64
	// commitNanos adds up, over the records made durable, the time from
	// queueing each to the end of the fsync that covered it; syncNanos the
	// time the successful syncs took, each from its call to its return.
	commitNanos, syncNanos atomic.Int64

	compacting atomic.Bool
	wg         sync.WaitGroup // running compactions
	// bg is cancelled by Close to cut a background compaction short.
	bg       context.Context
	cancelBg context.CancelFunc
}

var _ presence.Store = (*Store)(nil)

// Open opens the store in dir, creating dir if needed. It takes a lock on
// the directory, loads the snapshot, replays the log (truncating a torn
// tail left by a crash, and logging that), rebuilds the due index and
// starts the writer. Damage anywhere but at the tail of the log is an error
// wrapping ErrCorrupt. Close the Store to release the directory.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	s := &Store{
		dir:        dir,
		log:        opts.Logger,
		noSync:     opts.NoSync,
		compactAt:  opts.CompactBytes,
		probeEvery: opts.ProbeInterval,
		wrapFile:   opts.WrapFile,
		syncDepth:  opts.SyncDepth,
		m:          statemap.New(),
		wake:       make(chan struct{}, 1),
		writerDone: make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.compactAt == 0 {
		s.compactAt = DefaultCompactBytes
	}
	if s.probeEvery <= 0 {
		s.probeEvery = DefaultProbeInterval
	}
	if s.syncDepth <= 0 {
		s.syncDepth = DefaultSyncDepth
	}
	s.synced = make(chan syncJob, s.syncDepth)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("filestore: open: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("filestore: open: %w", err)
	}
	if err := lockFile(lf); err != nil {
		lf.Close()
		return nil, err
	}
	s.lockFile = lf
	start := time.Now()
	replayedBytes, err := s.load(ctx)
	if err != nil {
		lf.Close()
		return nil, err
	}
	s.log.Info("filestore: opened", "dir", dir, "users", s.m.Len(),
		"log_bytes_replayed", replayedBytes, "duration", time.Since(start))
	s.bg, s.cancelBg = context.WithCancel(context.Background())
	go s.writer()
	if s.compactAt > 0 && (replayedBytes >= s.compactAt || s.jsonSnapshot) {
		// A snapshot of the JSON format is rewritten at once: it takes
		// many times longer to read.
		s.startCompaction(s.segNum)
	}
	return s, nil
}

// load reads the snapshot and the log into s.m and opens a new segment.
// It returns the number of log bytes replayed.
func (s *Store) load(ctx context.Context) (int64, error) {
	if err := os.Remove(filepath.Join(s.dir, snapshotTemp)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("filestore: open: %w", err)
	}
	next := uint64(1) // the first segment the snapshot does not cover
	if f, err := os.Open(filepath.Join(s.dir, snapshotName)); err == nil {
		size := int64(-1)
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		next, s.jsonSnapshot, err = readSnapshot(ctx, f, size, snapshotWorkers(), s.m)
		f.Close()
		if err != nil {
			return 0, fmt.Errorf("filestore: read snapshot in %s: %w", s.dir, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("filestore: open: %w", err)
	}

	segs, err := s.segments()
	if err != nil {
		return 0, err
	}
	// Segments below next are already in the snapshot: a crash came between
	// writing the snapshot and deleting them.
	i := 0
	for i < len(segs) && segs[i] < next {
		if err := os.Remove(s.segPath(segs[i])); err != nil {
			return 0, fmt.Errorf("filestore: open: %w", err)
		}
		i++
	}
	segs = segs[i:]
	var total int64
	for i, n := range segs {
		if want := next + uint64(i); n != want {
			return 0, fmt.Errorf("%w: log segment %d is missing (found %d)", ErrCorrupt, want, n)
		}
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("filestore: open: %w", err)
		}
		size, err := s.replaySegment(n, i == len(segs)-1)
		if err != nil {
			return 0, err
		}
		total += size
	}
	s.m.IndexDue()
	if len(segs) > 0 {
		next = segs[len(segs)-1] + 1
	}
	if err := s.createSegment(next); err != nil {
		return 0, err
	}
	return total, nil
}

// replaySegment replays one segment into s.m and returns its valid size.
// Zeros from the last valid record to the end of the file are the end of
// the segment. Damage in the last segment within maxBatchBytes of the end
// of its data (its last byte that is not zero) with no valid record after
// it is a torn write: it is truncated away durably and logged. Any other
// damage is an error naming the file and the offset.
func (s *Store) replaySegment(n uint64, last bool) (int64, error) {
	path := s.segPath(n)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("filestore: open: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("filestore: open: %w", err)
	}
	valid, err := replayInto(f, s.m)
	if err == nil {
		return valid, nil
	}
	if !errors.Is(err, ErrCorrupt) {
		return 0, fmt.Errorf("filestore: read %s: %w", path, err)
	}
	// Zeros after the last record were written ahead of the records
	// (prefill) and never overwritten: the end of the segment, not damage.
	end, err2 := zeroTailFrom(f, valid, fi.Size())
	if err2 != nil {
		return 0, fmt.Errorf("filestore: read %s: %w", path, err2)
	}
	if end == valid {
		return valid, nil
	}
	torn := false
	if last {
		var terr error
		if torn, terr = tornTail(f, valid, end); terr != nil {
			return 0, fmt.Errorf("filestore: read %s: %w", path, terr)
		}
	}
	if !torn {
		return 0, fmt.Errorf("filestore: %s: %w (valid records follow the damage; nothing was changed)", path, err)
	}
	s.log.Warn("filestore: truncating a torn log tail left by a crash",
		"file", path, "offset", valid, "bytes_dropped", end-valid, "cause", err)
	if err := f.Truncate(valid); err != nil {
		return 0, fmt.Errorf("filestore: truncate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return 0, fmt.Errorf("filestore: truncate %s: %w", path, err)
	}
	return valid, nil
}

// segments lists the numbers of the log segments in the directory, sorted.
func (s *Store) segments() ([]uint64, error) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("filestore: open: %w", err)
	}
	var segs []uint64
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), segSuffix)
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil || n == 0 || segName(n) != e.Name() {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

func segName(n uint64) string { return fmt.Sprintf("%020d%s", n, segSuffix) }

func (s *Store) segPath(n uint64) string { return filepath.Join(s.dir, segName(n)) }

// createSegment creates segment n, makes its name durable, and makes it the
// current segment, closing the previous one.
func (s *Store) createSegment(n uint64) error {
	f, err := os.OpenFile(s.segPath(n), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("filestore: create log segment: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		return err
	}
	if s.seg != nil {
		s.seg.Close()
	}
	s.seg, s.segNum, s.segBytes, s.written, s.filled, s.dirty = dataFile{f}, n, 0, 0, 0, false
	if s.wrapFile != nil {
		s.seg = s.wrapFile(s.seg)
	}
	s.logBytes.Store(0)
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("filestore: sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("filestore: sync directory: %w", err)
	}
	return nil
}

// Stats are a Store's counters, for metrics.
type Stats struct {
	// Users is the number of users held (every user ever written).
	Users int
	// Records is the number of log records made durable since Open, and
	// Syncs the number of fsyncs (batches) that carried them.
	Records, Syncs int64
	// CommitSeconds adds up, over those records, the time from queueing
	// each to the end of the fsync that made it durable: over Records, the
	// mean commit latency.
	CommitSeconds float64
	// SyncSeconds adds up the time the Syncs took, each from the call to
	// the return of fdatasync: over Syncs, the disk's part of a commit
	// (plus the wait for a processor after it), where CommitSeconds over
	// Records also has the wait for the sync running when a record came.
	SyncSeconds float64
	// LogBytes is the size of the current log segment.
	LogBytes int64
	// Compactions is the number of snapshots written since Open.
	Compactions int64
	// DueIndexLen is the number of entries in the due index, stale ones
	// included.
	DueIndexLen int
	// WriteFailing says the last write or probe of the log failed (see
	// Healthy).
	WriteFailing bool
}

// Stats returns the store's counters. It is cheap enough to call on every
// metrics scrape.
func (s *Store) Stats() Stats {
	return Stats{
		Users:         s.m.Len(),
		Records:       s.records.Load(),
		Syncs:         s.syncs.Load(),
		CommitSeconds: time.Duration(s.commitNanos.Load()).Seconds(),
		SyncSeconds:   time.Duration(s.syncNanos.Load()).Seconds(),
		LogBytes:      s.logBytes.Load(),
		Compactions:   s.compactions.Load(),
		DueIndexLen:   s.m.DueLen(),
		WriteFailing:  s.Healthy() != nil,
	}
}

// Get returns the states of users in tenant, in order, from memory; a user
// never written to has the zero State. The states are the caller's copies.
func (s *Store) Get(ctx context.Context, tenant string, users []string) ([]presence.State, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestore: get: %w", err)
	}
	return s.m.Get(tenant, users), nil
}

// Visit calls fn with the state of each of users in tenant, in order; the
// *State is lent to fn for that call only (see presence.Store).
func (s *Store) Visit(ctx context.Context, tenant string, users []string, fn func(i int, st *presence.State)) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("filestore: visit: %w", err)
	}
	s.m.Visit(tenant, users, fn)
	return nil
}

// Due returns, earliest first, up to limit users whose State.Due is not zero
// and not after now. A key stays due, and is returned again by later calls,
// until an Update changes its Due. A limit of zero or less returns no keys.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]presence.Key, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("filestore: due: %w", err)
	}
	return s.m.Due(now, limit), nil
}

// Scan calls fn with every user's state, shard by shard, until fn or ctx
// returns an error.
func (s *Store) Scan(ctx context.Context, fn func(presence.Key, presence.State) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.m.Snapshot(ctx, fn); err != nil {
		return fmt.Errorf("filestore: scan: %w", err)
	}
	return nil
}

// Update atomically applies fn to a copy of key's state, appends the result
// to the log, and returns once it is durable (and visible to Get). If fn
// returns an error nothing is written and that error is returned as is. On
// any error before and after are zero.
//
// If ctx ends while the record waits to be written, Update returns ctx's
// error and nothing is written. If ctx ends while the record is being
// written, Update returns an error wrapping ctx's error and the outcome is
// unknown, as with any timeout: the write may still become durable, and
// then visible, shortly after.
func (s *Store) Update(ctx context.Context, key presence.Key, fn func(*presence.State) error) (before, after presence.State, err error) {
	var zero presence.State
	if s.closed.Load() {
		return zero, zero, ErrClosed
	}
	if err := s.m.Lock(ctx, key); err != nil {
		return zero, zero, fmt.Errorf("filestore: update %s: %w", key, err)
	}
	locked := true
	defer func() {
		if locked {
			s.m.Unlock(key)
		}
	}()
	before = s.m.Load(key)
	after = before.Clone()
	if err := fn(&after); err != nil {
		return zero, zero, err
	}
	rec, at, err := appendStateRecordAt(make([]byte, 0, 160), key, after)
	if err != nil {
		return zero, zero, err
	}
	w := &waiter{key: key, enc: string(rec[at:]), due: after.Due, rec: rec, done: make(chan struct{})}
	if err := s.enqueue(w); err != nil {
		return zero, zero, err
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		if w.state.CompareAndSwap(wQueued, wCancelled) {
			return zero, zero, fmt.Errorf("filestore: update %s: %w", key, ctx.Err())
		}
		if w.state.CompareAndSwap(wWriting, wAbandoned) {
			locked = false // the writer publishes and unlocks
			return zero, zero, fmt.Errorf("filestore: update %s: outcome unknown: %w", key, ctx.Err())
		}
		<-w.done
	}
	if w.err != nil {
		return zero, zero, w.err
	}
	s.m.PublishEncoded(key, w.enc, w.due)
	return before, after, nil
}

// Close stops accepting work, waits for the writes in flight, compacts the
// log into a snapshot (unless compaction is disabled or nothing changed),
// and releases the directory. Closing twice returns ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closing = true
	s.mu.Unlock()
	s.closed.Store(true)
	s.signal()
	<-s.writerDone
	s.cancelBg() // the final compaction below covers everything anyway
	s.wg.Wait()

	var errs []error
	// A segment closed cleanly ends with its last record: no bytes of a
	// failed write, no zeros written ahead.
	if err := s.trimToDurable(); err != nil {
		errs = append(errs, err)
	}
	s.mu.Lock()
	failed := s.writeErr
	s.mu.Unlock()
	holds := s.logHoldsRecords()
	if err := s.seg.Close(); err != nil {
		errs = append(errs, fmt.Errorf("filestore: close log: %w", err))
	}
	switch {
	case failed != nil:
		// The disk is full or failing: leave the files as they are
		// rather than write a snapshot; Open replays what is durable.
	case !holds:
		// Nothing since the last snapshot: drop the empty segment so that
		// restarts do not pile up empty files.
		if err := os.Remove(s.seg.Name()); err != nil {
			errs = append(errs, fmt.Errorf("filestore: close: %w", err))
		}
	case s.compactAt > 0:
		if err := s.compact(context.Background(), s.segNum+1); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.lockFile.Close(); err != nil { // releases the flock
		errs = append(errs, fmt.Errorf("filestore: close lock: %w", err))
	}
	return errors.Join(errs...)
}

// logHoldsRecords reports whether any log segment may hold a record: the
// current one has been written to, or an older one is still there.
func (s *Store) logHoldsRecords() bool {
	if s.segBytes > 0 {
		return true
	}
	segs, err := s.segments()
	return err != nil || len(segs) > 1 || (len(segs) == 1 && segs[0] != s.segNum)
}

// compact writes a snapshot of every state, covering every segment below
// next, then deletes those segments. Every record in a segment below next
// must already be written, and its writer must hold its stripe lock until
// it is published, so that Map.Snapshot sees it.
func (s *Store) compact(ctx context.Context, next uint64) error {
	start := time.Now()
	tmp := filepath.Join(s.dir, snapshotTemp)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("filestore: compact: %w", err)
	}
	count, size, err := writeSnapshot(ctx, f, s.m, next)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, snapshotName))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("filestore: compact: %w", err)
	}
	segs, err := s.segments()
	if err != nil {
		return fmt.Errorf("filestore: compact: %w", err)
	}
	for _, n := range segs {
		if n < next {
			if err := os.Remove(s.segPath(n)); err != nil {
				return fmt.Errorf("filestore: compact: %w", err)
			}
		}
	}
	s.compactions.Add(1)
	s.log.Info("filestore: compacted the log into a snapshot",
		"dir", s.dir, "states", count, "bytes", size, "duration", time.Since(start))
	return nil
}

// startCompaction starts a compaction covering the segments below next in
// the background, unless one is running.
func (s *Store) startCompaction(next uint64) {
	if !s.compacting.CompareAndSwap(false, true) {
		return
	}
	s.wg.Go(func() {
		defer s.compacting.Store(false)
		if err := s.compact(s.bg, next); err != nil {
			if errors.Is(err, context.Canceled) {
				return
			}
			s.log.Error("filestore: compaction failed; the log keeps growing until the next one", "err", err)
		}
	})
}
