package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A flipped byte in the last MiB of the log, with valid records after it,
// is not a torn write: Open refuses, naming the file and the offset, and
// leaves the file alone; Repair keeps every record but the damaged one.
func TestDamageBeforeValidRecordsRefusesThenRepairs(t *testing.T) {
	const n = 200
	dir, seg := writeLog(t, n) // one record a key, Seq i+1
	fi, err := os.Stat(seg)
	if err != nil {
		t.Fatal(err)
	}
	off := fi.Size() / 2 // inside some record in the middle of the last MiB
	flip(t, seg, off)
	_, err = Open(context.Background(), dir, Options{CompactBytes: -1})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	if !strings.Contains(err.Error(), seg) || !strings.Contains(err.Error(), "at offset ") {
		t.Fatalf("Open's error names no file and offset: %v", err)
	}
	if fi2, _ := os.Stat(seg); fi2.Size() != fi.Size() {
		t.Fatalf("Open changed the damaged segment: %d bytes, was %d", fi2.Size(), fi.Size())
	}

	rep, err := Repair(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var fixed *RepairedFile
	for i := range rep {
		if rep[i].Name == seg {
			fixed = &rep[i]
		}
	}
	if fixed == nil || len(fixed.Damaged) != 1 || fixed.Records != n-1 || fixed.Backup == "" {
		t.Fatalf("repair report: %+v", rep)
	}
	if d := fixed.Damaged[0]; d.Offset > off || d.Offset+d.Length <= off {
		t.Fatalf("damage reported at %+v, the flipped byte is at %d", d, off)
	}
	if _, err := os.Stat(fixed.Backup); err != nil {
		t.Fatalf("the original was not kept: %v", err)
	}
	s := mustOpen(t, dir, Options{CompactBytes: -1})
	defer s.Close()
	got := seqs(t, s, n)
	lost := 0
	for i, seq := range got {
		if seq != uint64(i+1) {
			lost++
			if seq != 0 {
				t.Errorf("key %d: Seq %d, want %d or 0 (its only record was damaged)", i, seq, i+1)
			}
		}
	}
	if lost != 1 {
		t.Fatalf("%d keys lost their record, want exactly the damaged one: %v", lost, got)
	}
	// Repairing a healthy store changes nothing.
	s.Close()
	rep, err = Repair(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, rf := range rep {
		if rf.Backup != "" || len(rf.Damaged) > 0 {
			t.Fatalf("a second repair rewrote %+v", rf)
		}
	}
}

func TestRepairSnapshot(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{NoSync: true})
	const n = 50
	for i := range n {
		mustUpdate(t, s, key(i), setSeq(uint64(i+1)))
	}
	s.Close() // compacts into the snapshot
	snap := filepath.Join(dir, snapshotName)
	fi, err := os.Stat(snap)
	if err != nil {
		t.Fatal(err)
	}
	flip(t, snap, fi.Size()/2)
	if _, err := Open(context.Background(), dir, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	if _, err := Repair(context.Background(), dir); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	got := seqs(t, s, n)
	lost := 0
	for i, seq := range got {
		if seq != uint64(i+1) {
			lost++
		}
	}
	if lost != 1 {
		t.Fatalf("%d keys lost, want 1: %v", lost, fmt.Sprint(got))
	}
}

// Repair refuses a directory that a Store has open.
func TestRepairRefusesAnOpenStore(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	if _, err := Repair(context.Background(), dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("Repair of an open store: %v, want ErrLocked", err)
	}
}
