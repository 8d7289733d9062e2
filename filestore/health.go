package filestore

import (
	"fmt"
	"time"

	presence "github.com/presenced/presenced"
)

// File is what the store needs of the log segment it writes to. The store
// gives its segments a File whose Sync makes the written data durable
// (fdatasync on Linux); Options.WrapFile lets tests put a faulty file
// system under the store.
type File interface {
	WriteAt(p []byte, off int64) (int, error)
	Sync() error
	Truncate(size int64) error
	Close() error
	Name() string
}

// DefaultProbeInterval is how often a store that cannot write checks
// whether it can again, when Options.ProbeInterval is zero.
const DefaultProbeInterval = time.Second

// errorLogInterval bounds how often a store that keeps failing to write
// logs it: the first failure is logged at once, later ones as a count.
const errorLogInterval = 10 * time.Second

// probeSize is the number of bytes a probe appends to the log (and then
// cuts back): enough to need a new block on a full file system.
const probeSize = 4096

// Healthy returns nil while the store can write, and an error matching
// presence.ErrUnavailable (wrapping the cause, such as ENOSPC) from a
// failed write of the log until a later write or probe succeeds. Readiness
// checks call it; it is cheap.
func (s *Store) Healthy() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return presence.Unavailable(s.writeErr)
}

// trimToDurable cuts back the current segment if it may hold anything past
// its durable size: bytes of a failed write, or zeros written ahead.
// Writer goroutine only (or Close, once the writer has exited).
func (s *Store) trimToDurable() error {
	if !s.dirty && s.filled <= s.segBytes {
		return nil
	}
	return s.cutBack()
}

// cutBack truncates the current segment to its durable size, durably, so
// that a failed write leaves nothing behind (the zeros written ahead go
// too). Writer goroutine only.
func (s *Store) cutBack() error {
	err := s.seg.Truncate(s.segBytes)
	if err == nil {
		s.filled = s.segBytes
	}
	if err == nil && !s.noSync {
		err = s.seg.Sync()
	}
	if err != nil {
		return fmt.Errorf("filestore: cut back the log %s after a failed write: %w", s.seg.Name(), err)
	}
	s.dirty = false
	return nil
}

// writeFailed records a failed write: the store is unhealthy until a write
// or probe succeeds. It logs the failure, at most once every
// errorLogInterval, and returns err as presence.Unavailable. Writer
// goroutine only.
func (s *Store) writeFailed(err error) error {
	s.mu.Lock()
	first := s.writeErr == nil
	s.writeErr = err
	s.mu.Unlock()
	now := time.Now()
	if first {
		s.failingSince = now
	}
	s.failures++
	switch {
	case first:
		s.log.Error("filestore: the log cannot be written; updates answer 503 until it can (checked every probe interval)", "err", err)
		s.lastErrLog, s.unlogged = now, 0
	case now.Sub(s.lastErrLog) >= errorLogInterval:
		s.log.Error("filestore: the log still cannot be written", "err", err, "failures_since_last_log", s.unlogged+1)
		s.lastErrLog, s.unlogged = now, 0
	default:
		s.unlogged++
	}
	return presence.Unavailable(err)
}

// wroteOK records a successful write or probe. Writer goroutine only.
func (s *Store) wroteOK() {
	if s.failures == 0 {
		return
	}
	s.mu.Lock()
	s.writeErr = nil
	s.mu.Unlock()
	s.log.Info("filestore: the log can be written again", "failed_writes", s.failures, "unavailable_for", time.Since(s.failingSince))
	s.failures = 0
}

// probe checks whether the log can grow again: it cuts back what a failed
// write left (and the zeros written ahead, so that the probe needs new
// blocks), appends probeSize bytes, syncs, and cuts them back. A crash in
// between leaves zeros at the end of the log, which Open takes for bytes
// never written. Writer goroutine only.
func (s *Store) probe() {
	err := func() error {
		if err := s.trimToDurable(); err != nil {
			return err
		}
		s.dirty = true
		_, err := s.seg.WriteAt(make([]byte, probeSize), s.segBytes)
		if err == nil && !s.noSync {
			err = s.seg.Sync()
		}
		if cerr := s.cutBack(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("filestore: probe the log %s: %w", s.seg.Name(), err)
		}
		return nil
	}()
	if err != nil {
		_ = s.writeFailed(err)
		return
	}
	s.wroteOK()
}
