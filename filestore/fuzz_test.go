package filestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
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
	snap, _ := appendRecord(nil, snapshotHeader(7, 0))
	f.Add(snap)
	// Records of the JSON format, alone and mixed with binary ones.
	legacy := append(legacyRecord(f, presence.Key{Tenant: "t", User: "u0"}, presence.State{Seq: 5}),
		legacyRecord(f, presence.Key{Tenant: "t", User: "u9"}, presence.State{Seq: 9, Due: time.Unix(9, 0).UTC()})...)
	f.Add(legacy)
	f.Add(append(bytes.Clone(legacy), log...))
	f.Fuzz(func(t *testing.T, data []byte) {
		type rec struct {
			k presence.Key
			s presence.State
		}
		checkReplayInto(t, data)
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

// checkReplayInto replays data into a Map, as Open does, and checks that
// it agrees with replay: the same valid prefix and outcome, and each key's
// last state.
func checkReplayInto(t *testing.T, data []byte) {
	last := map[presence.Key]presence.State{}
	valid, err := replay(bytes.NewReader(data), func(k presence.Key, s presence.State) { last[k] = s })
	m := statemap.New()
	valid2, err2 := replayInto(bytes.NewReader(data), m)
	if valid != valid2 || (err == nil) != (err2 == nil) {
		t.Fatalf("replay: %d, %v; replayInto: %d, %v", valid, err, valid2, err2)
	}
	if m.Len() != len(last) {
		t.Fatalf("replayInto restored %d keys, replay saw %d", m.Len(), len(last))
	}
	m.IndexDue()
	for k, s := range last {
		// Compared as encodings: a JSON record's times may be in any
		// zone, and the Map keeps instants.
		got := m.Load(k)
		if a, b := statemap.AppendState(nil, &got), statemap.AppendState(nil, &s); !bytes.Equal(a, b) {
			t.Fatalf("%s: replayInto has %x, replay %x", k, a, b)
		}
	}
}

// FuzzSnapshot checks that readSnapshot never panics on arbitrary input.
func FuzzSnapshot(f *testing.F) {
	var snap []byte
	snap, _ = appendRecord(snap, snapshotHeader(3, 1))
	snap, _ = appendStateRecord(snap, presence.Key{Tenant: "t", User: "u"}, presence.State{Seq: 1})
	snap, _ = appendRecord(snap, snapshotEnd(1))
	f.Add(snap)
	f.Add(snap[:len(snap)-2])
	// A snapshot of the JSON format.
	var snap1 []byte
	snap1, _ = appendRecord(snap1, append([]byte{recSnapHeader}, binary.AppendUvarint([]byte(snapshotMagic1), 3)...))
	snap1 = append(snap1, legacyRecord(f, presence.Key{Tenant: "t", User: "u"}, presence.State{Seq: 1})...)
	snap1, _ = appendRecord(snap1, snapshotEnd(1))
	f.Add(snap1)
	f.Fuzz(func(t *testing.T, data []byte) {
		readSnapshot(context.Background(), bytes.NewReader(data), int64(len(data)), 2, statemap.New())
	})
}
