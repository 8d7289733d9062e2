package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/presenced/presenced/internal/statemap"
)

// validRecordAt reports the size of the well-framed record at data[off:]
// whose checksum matches and whose type is one a log or snapshot holds, or
// 0 if there is none.
func validRecordAt(data []byte, off int) int {
	if len(data)-off < recHeaderSize+1 {
		return 0
	}
	n := binary.LittleEndian.Uint32(data[off+4:])
	if n == 0 || n > maxPayload || uint64(len(data)-off-recHeaderSize) < uint64(n) {
		return 0
	}
	payload := data[off+recHeaderSize : off+recHeaderSize+int(n)]
	switch payload[0] {
	case recState, recStateJSON, recSnapHeader, recSnapEnd:
	default:
		return 0
	}
	if crc32c(data[off+4:off+recHeaderSize], payload) != binary.LittleEndian.Uint32(data[off:]) {
		return 0
	}
	return recHeaderSize + int(n)
}

// nextValidRecord returns the offset of the first valid record (see
// validRecordAt) starting at or after from, or -1.
func nextValidRecord(data []byte, from int) int {
	for o := max(from, 0); o+recHeaderSize < len(data); o++ {
		if validRecordAt(data, o) > 0 {
			return o
		}
	}
	return -1
}

// tornTail reports whether the damage at offset valid of the file f, whose
// data ends at end (its last byte that is not zero), is a write torn by a
// crash: within maxBatchBytes of the end, and either with no valid record
// after it, or with a sector of zeros (sectorSize bytes, aligned) between
// it and the next valid record (or zeros from valid to the end of its
// sector). A damaged record followed by valid ones is
// otherwise not a torn write, whatever its distance from the end:
// truncating there would destroy acknowledged records.
//
// The sector of zeros is a power loss (not kill -9, after which the kernel
// still has every page) in the last batch of a prefilled segment: the disk
// stored a later page of the batch but not an earlier one, which still
// holds the zeros written ahead. Nothing from there on was acknowledged: a
// sync that made any later record durable started after the earlier page
// was written, so it stored that page too before it returned. Before the
// zeros there is only the damaged record at valid (no valid one), which is
// unreadable either way.
func tornTail(f *os.File, valid, end int64) (bool, error) {
	if end-valid > maxBatchBytes {
		return false, nil
	}
	tail := make([]byte, end-valid)
	if _, err := f.ReadAt(tail, valid); err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	next := nextValidRecord(tail, 1)
	if next < 0 {
		return true, nil
	}
	return hasZeroSector(tail[:next], valid), nil
}

// sectorSize is the unit a disk stores whole: a torn write leaves each
// sector either written or as it was.
const sectorSize = 512

// hasZeroSector reports whether b, which starts at offset off of its file,
// holds a sector that was never written: zeros from b's start to the end
// of its sector, or an aligned sector of zeros.
func hasZeroSector(b []byte, off int64) bool {
	i := (sectorSize - off%sectorSize) % sectorSize
	if i > 0 && i <= int64(len(b)) && allZero(b[:i]) {
		return true
	}
	for ; i+sectorSize <= int64(len(b)); i += sectorSize {
		if allZero(b[i : i+sectorSize]) {
			return true
		}
	}
	return false
}

// Damage is a damaged range of a file that Repair dropped.
type Damage struct {
	// Offset and Length locate the damaged bytes in the original file.
	Offset, Length int64
}

// RepairedFile is what Repair did to one file.
type RepairedFile struct {
	// Name is the file's path.
	Name string
	// Records is the number of valid records kept.
	Records int
	// Damaged are the ranges dropped, in order.
	Damaged []Damage
	// Backup is where the damaged original was kept (a hard link), empty
	// when the file was not rewritten.
	Backup string
}

// Repair rewrites every damaged log segment, and a damaged snapshot, of
// the store in dir so that Open accepts them, keeping every valid record
// on both sides of each damaged range. The original of each rewritten file
// is kept beside it, named *.damaged-<time>, for the operator to inspect
// or delete. Repair takes the directory's lock: the store must not be
// open. It reports every file it examined.
//
// A record dropped from a segment loses that one write of that one user:
// the user's state is then the one of their previous record, if any. What
// Repair cannot mend (a missing segment, an unreadable file) is an error.
func Repair(ctx context.Context, dir string) ([]RepairedFile, error) {
	lf, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("filestore: repair: %w", err)
	}
	defer lf.Close()
	if err := lockFile(lf); err != nil {
		return nil, err
	}
	s := &Store{dir: dir}
	segs, err := s.segments()
	if err != nil {
		return nil, err
	}
	for i := 1; i < len(segs); i++ {
		if segs[i] != segs[i-1]+1 {
			return nil, fmt.Errorf("%w: log segment %d is missing (found %d); repair cannot restore it", ErrCorrupt, segs[i-1]+1, segs[i])
		}
	}
	stamp := time.Now().UTC().Format("20060102T150405Z")
	var out []RepairedFile
	snap := filepath.Join(dir, snapshotName)
	if _, err := os.Stat(snap); err == nil {
		first := uint64(1)
		if len(segs) > 0 {
			first = segs[0]
		}
		rf, err := repairFile(snap, stamp, func(recs [][]byte) ([]byte, error) { return rebuildSnapshot(recs, first) })
		if err != nil {
			return out, err
		}
		out = append(out, rf)
	}
	for _, n := range segs {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("filestore: repair: %w", err)
		}
		rf, err := repairFile(s.segPath(n), stamp, func(recs [][]byte) ([]byte, error) {
			var b []byte
			for _, r := range recs {
				if t := r[recHeaderSize]; t == recState || t == recStateJSON {
					b = append(b, r...)
				}
			}
			return b, nil
		})
		if err != nil {
			return out, err
		}
		out = append(out, rf)
	}
	if err := syncDir(dir); err != nil {
		return out, err
	}
	return out, nil
}

// salvage splits data into its valid records (framed, as they are) and the
// damaged ranges between them.
func salvage(data []byte) (recs [][]byte, damaged []Damage) {
	for o := 0; o < len(data); {
		if n := validRecordAt(data, o); n > 0 {
			recs = append(recs, data[o:o+n])
			o += n
			continue
		}
		next := nextValidRecord(data, o+1)
		if next < 0 {
			next = len(data)
		}
		damaged = append(damaged, Damage{Offset: int64(o), Length: int64(next - o)})
		o = next
	}
	return recs, damaged
}

// repairFile rewrites path with build(its valid records) if it has damage,
// keeping the original as a hard link named path.damaged-stamp.
func repairFile(path, stamp string, build func([][]byte) ([]byte, error)) (RepairedFile, error) {
	rf := RepairedFile{Name: path}
	data, err := os.ReadFile(path)
	if err != nil {
		return rf, fmt.Errorf("filestore: repair: %w", err)
	}
	recs, damaged := salvage(data)
	if n := len(damaged); n > 0 && filepath.Base(path) != snapshotName {
		// A segment's zeros after its last record were written ahead of
		// the records (prefill): the end of the segment, not damage.
		if d := damaged[n-1]; d.Offset+d.Length == int64(len(data)) && allZero(data[d.Offset:]) {
			damaged = damaged[:n-1]
		}
	}
	rf.Damaged = damaged
	rf.Records = len(recs)
	if len(damaged) == 0 {
		if filepath.Base(path) != snapshotName {
			return rf, nil
		}
		// A snapshot whose records are all valid can still be malformed
		// (no end record, records after it): check it as Open does.
		if _, _, err := readSnapshot(context.Background(), bytes.NewReader(data), int64(len(data)), 1, statemap.New()); err == nil {
			return rf, nil
		}
	}
	fixed, err := build(recs)
	if err != nil {
		return rf, err
	}
	tmp := path + ".repair"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return rf, fmt.Errorf("filestore: repair: %w", err)
	}
	_, err = f.Write(fixed)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return rf, fmt.Errorf("filestore: repair: write %s: %w", tmp, err)
	}
	rf.Backup = path + ".damaged-" + stamp
	if err := os.Link(path, rf.Backup); err != nil {
		os.Remove(tmp)
		return rf, fmt.Errorf("filestore: repair: keep the original: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return rf, fmt.Errorf("filestore: repair: %w", err)
	}
	return rf, nil
}

// rebuildSnapshot makes a well-formed snapshot of the valid records of a
// damaged one: its header if it survived (else one covering the segments
// before first), its state records, and a new end record.
func rebuildSnapshot(recs [][]byte, first uint64) ([]byte, error) {
	var header []byte
	var states [][]byte
	for _, r := range recs {
		switch p := r[recHeaderSize:]; p[0] {
		case recSnapHeader:
			if header == nil && len(states) == 0 {
				if _, _, _, err := parseSnapshotHeader(p); err == nil {
					header = r
				}
			}
		case recState, recStateJSON:
			states = append(states, r)
		}
	}
	var b []byte
	var err error
	if header != nil {
		b = append(b, header...)
	} else if b, err = appendRecord(nil, snapshotHeader(first, uint64(len(states)))); err != nil {
		return nil, err
	}
	for _, r := range states {
		b = append(b, r...)
	}
	return appendRecord(b, snapshotEnd(uint64(len(states))))
}
