package filestore

import (
	"fmt"
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
	enc   string
	due   time.Time
	rec   []byte
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

// writer is the one goroutine that writes the log: it takes everything
// queued (up to maxBatchBytes), writes it with one write and one fsync,
// then completes every waiter of the batch. Records queued during an fsync
// form the next batch: that is the group commit. It exits when the store
// is closing and the queue is empty.
func (s *Store) writer() {
	defer close(s.writerDone)
	for {
		s.mu.Lock()
		for len(s.queue) == 0 && !s.closing {
			unhealthy := s.writeErr != nil
			s.mu.Unlock()
			if unhealthy {
				// Check now and then whether the log can be written
				// again, so that readiness comes back without a write.
				t := time.NewTimer(s.probeEvery)
				select {
				case <-s.wake:
				case <-t.C:
					s.probe()
				}
				t.Stop()
			} else {
				<-s.wake
			}
			s.mu.Lock()
		}
		if len(s.queue) == 0 {
			s.mu.Unlock()
			return
		}
		n, size := 0, 0
		for n < len(s.queue) && (n == 0 || size+len(s.queue[n].rec) <= maxBatchBytes) {
			size += len(s.queue[n].rec)
			n++
		}
		s.batch = append(s.batch[:0], s.queue[:n]...)
		rest := copy(s.queue, s.queue[n:])
		clear(s.queue[rest:])
		s.queue = s.queue[:rest]
		s.mu.Unlock()

		s.writeBatch(s.batch)
		clear(s.batch)
	}
}

// writeBatch writes and syncs the records of batch and completes their
// waiters.
func (s *Store) writeBatch(batch []*waiter) {
	buf := s.wbuf[:0]
	taken := batch[:0]
	for _, w := range batch {
		if !w.state.CompareAndSwap(wQueued, wWriting) {
			continue // cancelled while queued
		}
		buf = append(buf, w.rec...)
		taken = append(taken, w)
	}
	s.wbuf = buf
	if len(taken) == 0 {
		return
	}
	err := s.write(buf)
	if err == nil {
		s.records.Add(int64(len(taken)))
	}
	for _, w := range taken {
		s.complete(w, err)
	}
	if err == nil && s.compactAt > 0 && s.segBytes >= s.compactAt && !s.compacting.Load() {
		s.rotate()
	}
}

// write appends buf to the current segment and makes it durable. If that
// fails (a full disk: ENOSPC, EFBIG; or EIO), it cuts the segment back to
// its durable size, so that no part of buf stays behind, and returns an
// error matching presence.ErrUnavailable: the records were not written,
// and later writes are tried again. Cutting back also drops whatever a
// failed fsync left in doubt, so retrying is honest: what precedes
// segBytes was made durable by earlier fsyncs that succeeded.
func (s *Store) write(buf []byte) error {
	if s.dirty {
		if err := s.cutBack(); err != nil {
			return s.writeFailed(err)
		}
	}
	s.dirty = true
	_, err := s.seg.Write(buf)
	if err == nil && !s.noSync {
		err = s.seg.Sync()
	}
	if err != nil {
		err = fmt.Errorf("filestore: write log %s: %w", s.seg.Name(), err)
		if cerr := s.cutBack(); cerr != nil {
			err = fmt.Errorf("%w; %w", err, cerr)
		}
		return s.writeFailed(err)
	}
	s.dirty = false
	s.segBytes += int64(len(buf))
	s.logBytes.Store(s.segBytes)
	s.syncs.Add(1)
	s.wroteOK()
	return nil
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
	prev := s.segNum
	if err := s.createSegment(prev + 1); err != nil {
		s.log.Error("filestore: cannot start a new log segment; compaction postponed", "err", err)
		s.compactAt += s.compactAt / 2 // try again later, not after every batch
		return
	}
	s.startCompaction(prev + 1)
}
