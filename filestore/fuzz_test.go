package filestore

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// FuzzReplay feeds arbitrary bytes to replay as a log segment: it must not
// panic, and it must either accept the whole input or report ErrCorrupt at
// a valid prefix, which it then accepts whole with the same records.
func FuzzReplay(f *testing.F) {
	var log []byte
	for i := range 3 {
		var err error
		log, err = appendStateRecord(log, presence.Key{Tenant: "t", User: fmt.Sprint("u", i)}, presence.State{
			Seq: uint64(i), Due: time.Unix(int64(i), 0).UTC(),
			Sessions: []presence.Session{{ID: "app", Pair: presence.Pair{Availability: "Busy", Activity: "Busy"}}},
		})
		if err != nil {
			f.Fatal(err)
		}
	}
	f.Add(log)
	f.Add(log[:len(log)-1])
	f.Add(append(bytes.Clone(log), 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	snap, _ := appendRecord(nil, snapshotHeader(7))
	f.Add(snap)
	f.Fuzz(func(t *testing.T, data []byte) {
		type rec struct {
			k presence.Key
			s presence.State
		}
		var recs []rec
		valid, err := replay(bytes.NewReader(data), func(k presence.Key, s presence.State) { recs = append(recs, rec{k, s}) })
		if err == nil {
			if valid != int64(len(data)) {
				t.Fatalf("no error but valid prefix %d of %d bytes", valid, len(data))
			}
			return
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error not wrapping ErrCorrupt: %v", err)
		}
		if valid < 0 || valid >= int64(len(data)) {
			t.Fatalf("valid prefix %d of %d bytes with error %v", valid, len(data), err)
		}
		var again []rec
		valid2, err := replay(bytes.NewReader(data[:valid]), func(k presence.Key, s presence.State) { again = append(again, rec{k, s}) })
		if err != nil || valid2 != valid || len(again) != len(recs) {
			t.Fatalf("the valid prefix replays as %d bytes, %d records, %v; want %d bytes, %d records", valid2, len(again), err, valid, len(recs))
		}
		for i := range recs {
			if recs[i].k != again[i].k || recs[i].s.Seq != again[i].s.Seq {
				t.Fatalf("record %d differs on replay of the prefix", i)
			}
		}
	})
}

// FuzzSnapshot checks that readSnapshot never panics on arbitrary input.
func FuzzSnapshot(f *testing.F) {
	var snap []byte
	snap, _ = appendRecord(snap, snapshotHeader(3))
	snap, _ = appendStateRecord(snap, presence.Key{Tenant: "t", User: "u"}, presence.State{Seq: 1})
	snap, _ = appendRecord(snap, snapshotEnd(1))
	f.Add(snap)
	f.Add(snap[:len(snap)-2])
	f.Fuzz(func(t *testing.T, data []byte) {
		readSnapshot(bytes.NewReader(data), func(presence.Key, presence.State) {})
	})
}
