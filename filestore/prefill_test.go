package filestore

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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

// A power loss in the last batch of a prefilled segment can leave a later
// sector of the batch stored and an earlier one not: records, zeros (what
// the earlier sector held before), then valid records that were never
// acknowledged. Open truncates that as a torn write, with a warning. The
// same records after a damaged record that is not zeros are corruption:
// Open refuses.
func TestEarlierSectorNotStored(t *testing.T) {
	const n = 60
	for _, tc := range []struct {
		name string
		// damage damages the segment at off, the start of a record in
		// its third sector.
		damage func(t *testing.T, path string, off int64)
		torn   bool
	}{
		{"Zeros", func(t *testing.T, path string, off int64) { zeroFrom(t, path, off) }, true},
		{"ZerosAfterATornRecord", func(t *testing.T, path string, off int64) {
			// The record's first sector was stored, its second not.
			zeroFrom(t, path, (off/sectorSize+1)*sectorSize)
			flip(t, path, off+2)
		}, true},
		{"FlippedByte", func(t *testing.T, path string, off int64) { flip(t, path, off+2) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, seg := writeLog(t, n)
			offs := recordOffsets(t, seg)
			k := slices.IndexFunc(offs, func(o int64) bool { return o >= 2*sectorSize })
			if k < 0 || offs[len(offs)-1] < 4*sectorSize {
				t.Fatalf("log too short: records at %v", offs)
			}
			if tc.name == "ZerosAfterATornRecord" {
				// A record that crosses into the next sector.
				for k = 0; offs[k] < 2*sectorSize || offs[k+1] <= (offs[k]/sectorSize+1)*sectorSize; k++ {
				}
			}
			tc.damage(t, seg, offs[k])
			var logs syncBuffer
			s, err := Open(context.Background(), dir, Options{CompactBytes: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if !tc.torn {
				if err == nil {
					s.Close()
					t.Fatal("Open accepted a damaged record followed by valid ones")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := seqs(t, s, n)
			for i := range n {
				want := uint64(i + 1)
				if i >= k {
					want = 0
				}
				if got[i] != want {
					t.Errorf("key %d: Seq %d, want %d (records from %d on never acknowledged)", i, got[i], want, k)
				}
			}
			if !strings.Contains(logs.String(), "torn log tail") {
				t.Errorf("no warning logged:\n%s", logs.String())
			}
		})
	}
}
