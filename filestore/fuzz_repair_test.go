package filestore

import (
	"testing"

	presence "github.com/presenced/presenced"
)

// FuzzSalvage feeds arbitrary bytes to the scanner of presenced repair:
// it must not panic; its records and damaged ranges must tile the input
// exactly, in order; every record must be valid; and the records alone,
// scanned again, must hold no damage.
func FuzzSalvage(f *testing.F) {
	var log []byte
	for i := range 3 {
		var err error
		log, err = appendStateRecord(log, key(i), presence.State{Seq: uint64(i)})
		if err != nil {
			f.Fatal(err)
		}
	}
	f.Add(log)
	damaged := append([]byte(nil), log...)
	damaged[len(log)/2] ^= 0x40
	f.Add(damaged)
	f.Add(append(append([]byte("garbage"), log...), 0, 0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, damage := salvage(data)
		off, ri, di := 0, 0, 0
		var clean []byte
		for off < len(data) {
			switch {
			case ri < len(recs) && len(recs[ri]) > 0 && &recs[ri][0] == &data[off]:
				if validRecordAt(data, off) != len(recs[ri]) {
					t.Fatalf("record at %d is not valid", off)
				}
				clean = append(clean, recs[ri]...)
				off += len(recs[ri])
				ri++
			case di < len(damage) && damage[di].Offset == int64(off) && damage[di].Length > 0:
				off += int(damage[di].Length)
				di++
			default:
				t.Fatalf("offset %d is neither a record nor damage (%d records, %v)", off, len(recs), damage)
			}
		}
		if off != len(data) || ri != len(recs) || di != len(damage) {
			t.Fatalf("records and damage do not tile the input: %d of %d bytes", off, len(data))
		}
		if recs2, damage2 := salvage(clean); len(damage2) != 0 || len(recs2) != len(recs) {
			t.Fatalf("the salvaged records scan as %d records and %v", len(recs2), damage2)
		}
	})
}
