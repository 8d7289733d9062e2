package filestore

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	presence "github.com/presenced/presenced"
)

// segmentSize returns the size of the only log segment in dir.
func segmentSize(t *testing.T, dir string) (string, int64) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*"+segSuffix))
	if err != nil || len(segs) != 1 {
		t.Fatalf("segments: %v, %v", segs, err)
	}
	fi, err := os.Stat(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	return segs[0], fi.Size()
}

// The writer extends the segment with zeros ahead of its records, so that
// a sync has no file size to commit. What a crash leaves (the directory as
// it is while the store runs: records, then zeros) opens with every record
// and no warning, the store goes on writing over the zeros, and a clean
// Close leaves the segment ending with its last record.
func TestPrefilledSegment(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{CompactBytes: -1})
	const n = 50
	for i := range n {
		mustUpdate(t, s, key(i), setSeq(uint64(i+1)))
	}
	logical := s.Stats().LogBytes
	_, size := segmentSize(t, dir)
	if size != prefillBytes || logical <= 0 || logical >= size {
		t.Fatalf("segment of %d bytes holding %d bytes of records, want %d bytes written ahead", size, logical, prefillBytes)
	}

	// A crash now: open a copy of the directory as it is on disk.
	crashed := copyDir(t, dir)
	var logs syncBuffer
	c := mustOpen(t, crashed, Options{CompactBytes: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	got := seqs(t, c, n)
	for i := range n {
		if got[i] != uint64(i+1) {
			t.Fatalf("after the crash, key %d: Seq %d, want %d", i, got[i], i+1)
		}
	}
	if strings.Contains(logs.String(), "WARN") {
		t.Errorf("the zeros written ahead were taken for damage:\n%s", logs.String())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Records past the first prefillBytes extend the zeros again.
	note := strings.Repeat("x", 60<<10)
	big := func(st *presence.State) error {
		st.Seq = 7
		st.Status = &presence.StatusMessage{Content: note, ContentType: "text"}
		return nil
	}
	for i := 0; s.Stats().LogBytes < prefillBytes+64<<10; i++ {
		mustUpdate(t, s, key(i), big)
	}
	if _, size := segmentSize(t, dir); size != 2*prefillBytes {
		t.Fatalf("segment of %d bytes after %d bytes of records, want %d", size, s.Stats().LogBytes, 2*prefillBytes)
	}
	logical = s.Stats().LogBytes
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, size := segmentSize(t, dir); size != logical {
		t.Fatalf("after Close: segment of %d bytes, want its %d bytes of records", size, logical)
	}
}

// Zeros after the last record of a segment that is not the last one (a
// crash before the next compaction deleted it) are its end too, and Repair
// finds nothing to mend in it.
func TestZerosEndEverySegment(t *testing.T) {
	dir, seg := writeLog(t, 10)
	appendBytes(t, seg, make([]byte, prefillBytes))
	s := mustOpen(t, dir, Options{CompactBytes: -1})
	mustUpdate(t, s, key(10), setSeq(11))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{CompactBytes: -1})
	got := seqs(t, s, 11)
	for i := range 11 {
		if got[i] != uint64(i+1) {
			t.Fatalf("key %d: Seq %d, want %d", i, got[i], i+1)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := Repair(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if len(f.Damaged) > 0 || f.Backup != "" {
			t.Errorf("Repair found damage in %s: %+v", f.Name, f)
		}
	}
}
