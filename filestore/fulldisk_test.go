package filestore

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// fullDisk is a File on a disk that fills up on demand: while full is set,
// a write puts part of its bytes down and fails with ENOSPC (as write(2)
// does when the disk fills mid-write), and so does a failSync'd Sync.
type fullDisk struct {
	File
	full, failSync *atomic.Bool
}

func (f fullDisk) WriteAt(p []byte, off int64) (int, error) {
	if f.full.Load() {
		n, _ := f.File.WriteAt(p[:len(p)/2], off)
		return n, syscall.ENOSPC
	}
	return f.File.WriteAt(p, off)
}

func (f fullDisk) Sync() error {
	if f.failSync.Load() {
		return syscall.EIO
	}
	return f.File.Sync()
}

// A full disk is an outage, not a corruption: updates fail as Unavailable
// leaving nothing of themselves in the log, Healthy reports it, the store
// recovers by itself once space is freed, the error is logged a bounded
// number of times, and every acknowledged write, and no failed one, is
// there after a reopen.
func TestFullDiskIsAnOutage(t *testing.T) {
	dir := t.TempDir()
	var full, failSync atomic.Bool
	var logs syncBuffer
	opts := Options{
		CompactBytes:  -1,
		ProbeInterval: 5 * time.Millisecond,
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		WrapFile:      func(f File) File { return fullDisk{f, &full, &failSync} },
	}
	s := mustOpen(t, dir, opts)
	for i := range 5 {
		mustUpdate(t, s, key(i), setSeq(1))
	}
	if err := s.Healthy(); err != nil {
		t.Fatalf("Healthy: %v", err)
	}
	full.Store(true)
	const failing = 200
	for i := range failing {
		_, _, err := s.Update(context.Background(), key(i%5), setSeq(2))
		if !errors.Is(err, presence.ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Update on a full disk: %v, want Unavailable wrapping ENOSPC", err)
		}
	}
	if err := s.Healthy(); !errors.Is(err, presence.ErrUnavailable) {
		t.Fatalf("Healthy on a full disk: %v, want Unavailable", err)
	}
	if got := seqs(t, s, 5); got[0] != 1 {
		t.Fatalf("a failed update is visible: %v", got)
	}
	// A failed fsync is cut back too.
	full.Store(false)
	failSync.Store(true)
	if _, _, err := s.Update(context.Background(), key(0), setSeq(3)); !errors.Is(err, presence.ErrUnavailable) {
		t.Fatalf("Update with a failing fsync: %v, want Unavailable", err)
	}
	failSync.Store(false) // space freed: no write needed to notice
	deadline := time.Now().Add(10 * time.Second)
	for s.Healthy() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("still unhealthy after space was freed: %v", s.Healthy())
		}
		time.Sleep(time.Millisecond) // polling interval
	}
	mustUpdate(t, s, key(1), setSeq(4))
	if n := strings.Count(logs.String(), "cannot be written"); n < 1 || n > 3 {
		t.Errorf("the failure was logged %d times for %d failed writes, want 1-3:\n%s", n, failing+1, logs.String())
	}
	if !strings.Contains(logs.String(), "can be written again") {
		t.Errorf("the recovery was not logged:\n%s", logs.String())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	var reopenLogs syncBuffer
	s = mustOpen(t, dir, Options{CompactBytes: -1, Logger: slog.New(slog.NewTextHandler(&reopenLogs, nil))})
	defer s.Close()
	if got := seqs(t, s, 5); got[0] != 1 || got[1] != 4 || got[2] != 1 {
		t.Fatalf("after reopen: %v, want [1 4 1 1 1]", got)
	}
	if strings.Contains(reopenLogs.String(), "torn") {
		t.Errorf("the failed writes left bytes in the log:\n%s", reopenLogs.String())
	}
}
