package filestore

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// prefillBytes is how far ahead of the records the writer extends the
// current segment with zeros. A record is then written over blocks that
// already exist, with a file size that does not change, so that the sync
// making it durable (fdatasync) has data to flush but no metadata to commit
// to the file system's journal. The sync after each extension carries the
// zeros and the new size: one longer commit every prefillBytes of log.
const prefillBytes = 4 << 20

// zeroChunk is the size of the buffer of zeros the writer extends with.
const zeroChunk = 256 << 10

// prefill extends the current segment with zeros past end, up to the next
// multiple of prefillBytes, unless it already reaches past end. A failure
// (a full disk) is not one of the write's: the zeros are an optimization,
// and the records are written just the same, growing the file themselves.
// Writer goroutine only.
func (s *Store) prefill(end int64) {
	if end <= s.filled || s.noSync {
		return
	}
	if s.zeros == nil {
		s.zeros = make([]byte, zeroChunk)
	}
	target := (end/prefillBytes + 1) * prefillBytes
	off := max(s.filled, s.written)
	for off < target {
		n, err := s.seg.WriteAt(s.zeros[:min(int64(len(s.zeros)), target-off)], off)
		off += int64(n)
		if err != nil {
			// The file may now end anywhere up to off: zeros all the same,
			// which Open reads as never written.
			s.filled = s.written
			return
		}
	}
	s.filled = target
}

// zeroTailFrom returns the offset just past the last byte of f that is not
// zero, searching back from size to from: from itself when every byte in
// between is zero. The zeros after the last record of a segment are the
// ones written ahead of it (prefill) and never overwritten.
func zeroTailFrom(f io.ReaderAt, from, size int64) (int64, error) {
	buf := make([]byte, zeroChunk)
	end := size
	for end > from {
		n := min(int64(len(buf)), end-from)
		b := buf[:n]
		if _, err := f.ReadAt(b, end-n); err != nil && !errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("filestore: read: %w", err)
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return end - n + int64(i) + 1, nil
			}
		}
		end -= n
	}
	return from, nil
}

// allZero reports whether every byte of b is zero.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// dataFile is a log segment's descriptor as the store uses it: its Sync
// makes the written data durable, with the metadata needed to read it
// back (the file size when it changed), and nothing more (datasync).
type dataFile struct{ *os.File }

// Sync flushes f's data to stable storage.
func (f dataFile) Sync() error { return datasync(f.File) }
