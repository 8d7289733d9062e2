package filestore

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"

	presence "github.com/presenced/presenced"
)

// The states of a waiter. Transitions, each made by one CompareAndSwap:
//
//	wQueued  -> wWriting   the writer took the record into a batch
//	wQueued  -> wCancelled Update's ctx ended first: never written; Update unlocks
//	wWriting -> wDone      the batch is durable (or failed); Update publishes
//	wWriting -> wAbandoned Update's ctx ended during the write: the writer
//	                       publishes (if the write succeeded) and unlocks
const (
	wQueued int32 = iota
	wWriting
	wDone
	wCancelled
	wAbandoned
)

// waiter is one Update waiting for its record to be durable. Its Update
// holds the stripe lock of key until the outcome is known.
type waiter struct {
	key presence.Key
	// enc is the state after the update, encoded (the tail of rec), and
	// due its Due: what is published once the record is durable.
	enc string
	due time.Time
	rec []byte
	// at is when the record was queued: commit latency runs from there to
	// the end of the fsync covering it.
	at    time.Time
	state atomic.Int32
	err   error // set by the writer before wDone
	done  chan struct{}
}

// enqueue adds w to the queue of the next batch.
func (s *Store) enqueue(w *waiter) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return ErrClosed
	}
	w.at = time.Now()
	s.queue = append(s.queue, w)
	s.mu.Unlock()
	s.signal()
	return nil
}

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// DefaultSyncDepth is how many fsyncs of the log may be in flight at once
// when Options.SyncDepth is zero: one, so that the batches are as large as
// they can be. Two (an overlapping fsync while few writers wait) measured
// better at 16 writers in the store's benchmark, but on a machine too busy
// to tell whether the smaller batches cost presenced more than they gain
// at 64 connections; see BENCHMARKS.md.
const DefaultSyncDepth = 1

// overlapBelow bounds the writers for which a second fsync may start while
// one runs. The writers are counted as the records the last fsync made
// durable plus those written since and not yet durable: with few (16
// connections), waiting for the running fsync costs each of them more
// latency than another fsync costs; with many, waiting gathers a bigger
// batch, which saves the CPU and the disk an fsync. Neither count alone
// will do: right after an fsync returns few records are written yet, and
// a second fsync makes the batches smaller.
const overlapBelow = 24

// batch is records written to the log, in order, waiting for an fsync that
// covers them.
type batch struct {
	seq     uint64    // 1, 2, ... in the order written
	end     int64     // the segment's size once it was written
	waiters []*waiter // not cancelled; in the order written
}

// syncJob is one fsync of the log: it covers every batch up to seq, whose
// bytes end at size, because they were written before it started.
type syncJob struct {
	f    File // a descriptor of the segment of its own
	seq  uint64
	size int64
	err  error
	took time.Duration // the sync call's own time
}

// writer is the one goroutine that writes the log. It takes everything
// queued (up to maxBatchBytes), writes it with one write, and starts an
// fsync covering it on a goroutine of its own when fewer than syncDepth are
// running; a batch is complete (its Updates answered) once an fsync that
// started after it was written has returned. While an fsync runs, the
// records that arrive are written at once, so that the next fsync can
// start the moment a slot frees: that is the group commit, pipelined. At
// most maxBatchBytes are ever written and not yet durable, so a crash can
// tear only the last maxBatchBytes of the log. It exits when the store is
// closing, the queue is empty and every batch is complete.
func (s *Store) writer() {
	defer close(s.writerDone)
	defer s.closeSyncFiles()
	var probe *time.Timer
	for {
		progressed := s.writeQueued()
		if s.startSync() {
			progressed = true
		}
		if s.failErr != nil && s.inflight == 0 {
			s.failPending()
			progressed = true
		}
		if s.rotating && len(s.pend) == 0 && s.inflight == 0 {
			s.rotating = false
			s.rotate()
			progressed = true
		}
		if progressed {
			continue
		}
		s.mu.Lock()
		idle := len(s.queue) == 0 && len(s.pend) == 0 && s.inflight == 0
		if idle && s.closing {
			s.mu.Unlock()
			return
		}
		unhealthy := s.writeErr != nil
		s.mu.Unlock()
		var probeC <-chan time.Time
		if idle && unhealthy {
			// Check now and then whether the log can be written again, so
			// that readiness comes back without a write.
			if probe == nil {
				probe = time.NewTimer(s.probeEvery)
			} else {
				probe.Reset(s.probeEvery)
			}
			probeC = probe.C
		}
		select {
		case <-s.wake:
		case j := <-s.synced:
			s.synced1(j)
		case <-probeC:
			s.probe()
		}
		if probe != nil {
			probe.Stop()
		}
	}
}

// writeQueued takes the records queued, up to maxBatchBytes and as many as
// fit in what may be written ahead of the durable size, and writes them. It
// reports whether it wrote (or failed to write) anything.
func (s *Store) writeQueued() bool {
	if s.failErr != nil || s.rotating {
		return false
	}
	room := maxBatchBytes - (s.written - s.segBytes)
	s.mu.Lock()
	n, size := 0, 0
	for n < len(s.queue) {
		l := len(s.queue[n].rec)
		// The first record of a batch always fits when nothing waits
		// for an fsync: a record is never larger than a batch.
		if (n > 0 || s.written > s.segBytes) && (size+l > maxBatchBytes || int64(size+l) > room) {
			break
		}
		size += l
		n++
	}
	if n == 0 {
		s.mu.Unlock()
		return false
	}
	taken := make([]*waiter, 0, n)
	buf := s.wbuf[:0]
	for _, w := range s.queue[:n] {
		if !w.state.CompareAndSwap(wQueued, wWriting) {
			continue // cancelled while queued
		}
		buf = append(buf, w.rec...)
		taken = append(taken, w)
	}
	rest := copy(s.queue, s.queue[n:])
	clear(s.queue[rest:])
	s.queue = s.queue[:rest]
	s.mu.Unlock()
	s.wbuf = buf
	if len(taken) == 0 {
		return true
	}
	s.seq++
	b := batch{seq: s.seq, waiters: taken}
	if err := s.writeOut(buf); err != nil {
		b.end = s.written
		s.pend = append(s.pend, b)
		s.pendRecords += int64(len(taken))
		s.failErr = err
		return true
	}
	b.end = s.written
	s.pend = append(s.pend, b)
	s.pendRecords += int64(len(taken))
	if s.noSync {
		s.durable(syncJob{seq: b.seq, size: b.end})
	}
	return true
}

// writeOut appends buf to the current segment (not durably yet). After a
// failure the segment may hold part of buf: failPending cuts it back.
func (s *Store) writeOut(buf []byte) error {
	if s.dirty && s.written == s.segBytes {
		// A failed write or probe left bytes behind: drop them first.
		if err := s.cutBack(); err != nil {
			return err
		}
	}
	s.prefill(s.written + int64(len(buf)))
	s.dirty = true
	if _, err := s.seg.WriteAt(buf, s.written); err != nil {
		return fmt.Errorf("filestore: write log %s: %w", s.seg.Name(), err)
	}
	s.written += int64(len(buf))
	return nil
}

// startSync starts an fsync covering every batch written, if some are not
// covered by one running and fewer than syncDepth run. It reports whether
// it started one.
func (s *Store) startSync() bool {
	if s.noSync || s.failErr != nil || s.inflight >= s.syncDepth || len(s.pend) == 0 || s.pend[len(s.pend)-1].seq <= s.requested {
		return false
	}
	if s.inflight > 0 && s.lastSyncRecords+s.pendRecords >= overlapBelow {
		return false
	}
	f, err := s.syncFile()
	if err != nil {
		s.failErr = err
		return true
	}
	last := s.pend[len(s.pend)-1]
	s.requested = last.seq
	s.inflight++
	j := syncJob{f: f, seq: last.seq, size: last.end}
	go func() {
		start := time.Now()
		j.err = j.f.Sync()
		j.took = time.Since(start)
		s.synced <- j
	}()
	return true
}

// synced1 takes the outcome of one fsync: on success every batch it covers
// is complete. A failed fsync fails every batch not yet complete (once the
// others running have returned), whatever later fsyncs say.
func (s *Store) synced1(j syncJob) {
	s.inflight--
	s.syncFiles = append(s.syncFiles, j.f)
	if j.err != nil {
		if !s.syncFailed {
			s.failErr = fmt.Errorf("filestore: sync log %s: %w", s.seg.Name(), j.err)
			s.syncFailed = true
		}
		return
	}
	if s.syncFailed {
		// After a failed fsync nothing more is trusted: what it left in
		// doubt is cut back with every batch not yet complete.
		return
	}
	s.syncs.Add(1)
	s.syncNanos.Add(int64(j.took))
	s.durable(j)
}

// durable completes every batch up to j.seq: they are on disk.
func (s *Store) durable(j syncJob) {
	if j.size > s.segBytes {
		s.segBytes = j.size
		s.logBytes.Store(s.segBytes)
	}
	n := 0
	var records int64
	for n < len(s.pend) && s.pend[n].seq <= j.seq {
		records += int64(len(s.pend[n].waiters))
		n++
	}
	if n == 0 {
		return
	}
	if s.written == s.segBytes {
		s.dirty = false
	}
	s.records.Add(records)
	s.pendRecords -= records
	s.lastSyncRecords = records
	s.wroteOK()
	now := time.Now()
	var waited time.Duration
	for _, b := range s.pend[:n] {
		for _, w := range b.waiters {
			waited += now.Sub(w.at)
			s.complete(w, nil)
		}
	}
	s.commitNanos.Add(int64(waited))
	rest := copy(s.pend, s.pend[n:])
	clear(s.pend[rest:])
	s.pend = s.pend[:rest]
	if s.compactAt > 0 && s.segBytes >= s.compactAt && !s.compacting.Load() {
		s.rotating = true
	}
}

// failPending fails every batch not yet durable with the error that
// stopped the writer, and cuts the segment back to its durable size, so
// that nothing of them stays behind: retrying is then honest, since what
// precedes segBytes was made durable by fsyncs that succeeded. Called once
// no fsync runs.
func (s *Store) failPending() {
	err := s.failErr
	s.failErr, s.syncFailed = nil, false
	if cerr := s.cutBack(); cerr != nil {
		err = fmt.Errorf("%w; %w", err, cerr)
	}
	s.written = s.segBytes
	s.requested = s.seq
	err = s.writeFailed(err)
	for _, b := range s.pend {
		for _, w := range b.waiters {
			s.complete(w, err)
		}
	}
	clear(s.pend)
	s.pend = s.pend[:0]
	s.pendRecords = 0
}

// syncFile returns a descriptor of the current segment for one fsync. Each
// fsync running has its own: Linux reports a failed writeback once per
// open file description, so an fsync on a descriptor of its own sees every
// failure since that descriptor's previous fsync, whichever other fsync
// ran meanwhile.
func (s *Store) syncFile() (File, error) {
	if n := len(s.syncFiles); n > 0 {
		f := s.syncFiles[n-1]
		s.syncFiles = s.syncFiles[:n-1]
		return f, nil
	}
	f, err := os.Open(s.segPath(s.segNum))
	if err != nil {
		return nil, fmt.Errorf("filestore: open log %s to sync it: %w", s.seg.Name(), err)
	}
	if s.wrapFile != nil {
		return s.wrapFile(dataFile{f}), nil
	}
	return dataFile{f}, nil
}

// closeSyncFiles closes the descriptors kept for fsyncs of the segment.
// No fsync may be running.
func (s *Store) closeSyncFiles() {
	for _, f := range s.syncFiles {
		f.Close()
	}
	clear(s.syncFiles)
	s.syncFiles = s.syncFiles[:0]
}

// complete reports err (nil: durable) to w's Update, or, if that Update
// gave up waiting, publishes the state itself and releases the stripe.
func (s *Store) complete(w *waiter, err error) {
	w.err = err
	if w.state.CompareAndSwap(wWriting, wDone) {
		close(w.done)
		return
	}
	// wAbandoned: this goroutine now owns the stripe lock.
	if err == nil {
		s.m.PublishEncoded(w.key, w.enc, w.due)
	}
	s.m.Unlock(w.key)
}

// rotate starts a new segment and compacts everything before it in the
// background. The stripe locks of the batches just completed are held
// until their states are published, and the snapshot takes every stripe
// lock in turn, so it includes every record of the old segments.
func (s *Store) rotate() {
	s.closeSyncFiles()
	prev := s.segNum
	if err := s.createSegment(prev + 1); err != nil {
		s.log.Error("filestore: cannot start a new log segment; compaction postponed", "err", err)
		s.compactAt += s.compactAt / 2 // try again later, not after every batch
		return
	}
	s.startCompaction(prev + 1)
}
