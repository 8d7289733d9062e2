package filestore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
)

// copyDir copies the files of src to a new temporary directory.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// scanJSON returns the JSON of every state of s by key.
func scanJSON(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := s.Scan(context.Background(), func(k presence.Key, st presence.State) error {
		b, err := json.Marshal(st)
		out[k.String()] = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// readWant reads the expected states of a test data directory, a JSON
// object of States by key, as the JSON scanJSON gives.
func readWant(t *testing.T, file string) map[string]string {
	t.Helper()
	var states map[string]presence.State
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &states); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for k, st := range states {
		b, _ := json.Marshal(st)
		want[k] = string(b)
	}
	return want
}

// checkStates checks that s holds exactly the states of want and that
// the keys due at 10:00 on 2025-03-14 are wantDue, earliest first.
func checkStates(t *testing.T, s *Store, what string, want map[string]string, wantDue []presence.Key) {
	t.Helper()
	got := scanJSON(t, s)
	if len(got) != len(want) {
		t.Errorf("%s: %d states, want %d", what, len(got), len(want))
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s:\n got %s\nwant %s", what, k, got[k], w)
		}
	}
	due, err := s.Due(context.Background(), time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC), 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(due, wantDue) {
		t.Errorf("%s: Due = %v, want %v", what, due, wantDue)
	}
}

// TestReadJSONFormat opens a data directory written by the version that
// stored states as JSON (testdata/json-format: a snapshot, then a log
// segment over it) and checks every state, the due index, and that Close
// rewrites the snapshot in the binary format, which reads back the same.
func TestReadJSONFormat(t *testing.T) {
	want := readWant(t, "testdata/json-format/want.json")
	wantDue := []presence.Key{{Tenant: "contoso", User: "carol"}}
	dir := copyDir(t, "testdata/json-format/datadir")
	s := mustOpen(t, dir, Options{})
	checkStates(t, s, "the JSON format", want, wantDue)
	mustUpdate(t, s, presence.Key{Tenant: "contoso", User: "dave"}, setSeq(1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	snap, err := os.ReadFile(filepath.Join(dir, snapshotName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(snap[:64], []byte(snapshotMagic)) {
		t.Errorf("the snapshot was not rewritten in the binary format: %q", snap[:64])
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*.log")); len(segs) != 0 {
		t.Errorf("segments left: %v", segs)
	}
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	want[presence.Key{Tenant: "contoso", User: "dave"}.String()] = func() string {
		var st presence.State
		setSeq(1)(&st)
		b, _ := json.Marshal(st)
		return string(b)
	}()
	checkStates(t, s, "the binary format", want, wantDue)
}

// TestReadBinaryFormat opens a data directory of the binary format
// (testdata/binary-format: a "presenced-snapshot/2" snapshot, then a log
// segment of 'U' records over it, among them a rich state, times before
// 1678, a tenant not a GUID and a user written twice) and checks every
// state and the due index. Its bytes were written by this format's first
// version and are kept as they are: a change to the records, the keys or
// the states' encoding that still reads back what it writes passes every
// round trip, but not this.
func TestReadBinaryFormat(t *testing.T) {
	dir := copyDir(t, "testdata/binary-format/datadir")
	snap, err := os.ReadFile(filepath.Join(dir, snapshotName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(snap[:64], []byte("presenced-snapshot/2")) {
		t.Fatalf("testdata/binary-format has a snapshot of another format: %q", snap[:64])
	}
	want := readWant(t, "testdata/binary-format/want.json")
	s := mustOpen(t, dir, Options{CompactBytes: -1})
	defer s.Close()
	checkStates(t, s, "testdata/binary-format", want, []presence.Key{
		{Tenant: "84bd8158-6d4d-4958-8b9f-9d6445542f95", User: "5d2e6c1a-7f0b-4c8e-9a3d-1b2c3d4e5f60"},
		{Tenant: "contoso", User: "carol"},
	})
}

// snapshotOf writes a snapshot of states, in the binary format.
func snapshotOf(t testing.TB, states map[presence.Key]presence.State) []byte {
	t.Helper()
	m := statemap.New()
	for k, st := range states {
		m.Publish(k, st)
	}
	var buf bytes.Buffer
	if _, _, err := writeSnapshot(context.Background(), &buf, m, 7); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// readSnapshotStates reads a snapshot with workers goroutines and returns
// the JSON of its states by key.
func readSnapshotStates(r io.Reader, workers int) (map[string]string, uint64, error) {
	m := statemap.New()
	next, _, err := readSnapshot(context.Background(), r, -1, workers, m)
	if err != nil {
		return nil, next, err
	}
	out := map[string]string{}
	err = m.Snapshot(context.Background(), func(k presence.Key, st presence.State) error {
		b, _ := json.Marshal(st)
		out[k.String()] = string(b)
		return nil
	})
	return out, next, err
}

// TestSnapshotChunks reads snapshots larger than a chunk, with records as
// large as allowed straddling the chunks' boundaries, with 1 to 4
// workers and with short reads.
func TestSnapshotChunks(t *testing.T) {
	states := map[presence.Key]presence.State{}
	want := map[string]string{}
	for i := range 8_000 {
		st := presence.State{Seq: uint64(i), Due: time.Unix(int64(i), 0).UTC(),
			Sessions: []presence.Session{{ID: fmt.Sprint("app-", i%7), Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}}}}
		if i%2_000 == 5 {
			// Close to the largest record.
			st.Status = &presence.StatusMessage{Content: strings.Repeat("x", maxPayload-200)}
		}
		states[key(i)] = st
		b, _ := json.Marshal(st)
		want[key(i).String()] = string(b)
	}
	snap := snapshotOf(t, states)
	if len(snap) < 2*snapChunkSize {
		t.Fatalf("snapshot of %d bytes: too small for the test", len(snap))
	}
	for _, workers := range []int{1, 2, 4} {
		for _, r := range []struct {
			name string
			r    io.Reader
		}{{"whole", bytes.NewReader(snap)}, {"half", iotest.HalfReader(bytes.NewReader(snap))}} {
			got, next, err := readSnapshotStates(r.r, workers)
			if err != nil {
				t.Fatalf("%d workers, %s reads: %v", workers, r.name, err)
			}
			if next != 7 || len(got) != len(want) {
				t.Fatalf("%d workers, %s reads: next %d, %d states", workers, r.name, next, len(got))
			}
			for k, w := range want {
				if got[k] != w {
					t.Fatalf("%d workers, %s reads: %s = %.100s, want %.100s", workers, r.name, k, got[k], w)
				}
			}
		}
	}
}

// TestSnapshotDamage damages a snapshot in every way it can be damaged and
// checks that reading it fails with ErrCorrupt (and never panics).
func TestSnapshotDamage(t *testing.T) {
	states := map[presence.Key]presence.State{}
	for i := range 12 {
		states[key(i)] = presence.State{Seq: uint64(i), Sessions: []presence.Session{{ID: "app"}}}
	}
	snap := snapshotOf(t, states)
	if _, _, err := readSnapshotStates(bytes.NewReader(snap), 2); err != nil {
		t.Fatal(err)
	}
	// Every truncation, and every flipped byte. Only the errors matter, so
	// one Map takes all the reads.
	m := statemap.New()
	for i := range len(snap) {
		if _, _, err := readSnapshot(context.Background(), bytes.NewReader(snap[:i]), int64(i), 2, m); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d of %d bytes: %v", i, len(snap), err)
		}
		bad := bytes.Clone(snap)
		bad[i] ^= 0x20
		if _, _, err := readSnapshot(context.Background(), bytes.NewReader(bad), int64(len(bad)), 2, m); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
	endRec, _ := appendRecord(nil, snapshotEnd(12))
	for name, bad := range map[string][]byte{
		"RecordAfterEnd": append(bytes.Clone(snap), endRec...),
		"BytesAfterEnd":  append(bytes.Clone(snap), 0),
		"WrongCount":     append(bytes.Clone(snap[:len(snap)-len(endRec)]), must(appendRecord(nil, snapshotEnd(13)))...),
		"NoHeader":       snap[len(must(appendRecord(nil, snapshotHeader(7, 12)))):],
		"Empty":          nil,
	} {
		if _, _, err := readSnapshotStates(bytes.NewReader(bad), 2); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A state record that checks out but does not decode.
	bad, _ := appendRecord(nil, snapshotHeader(7, 1))
	bad, _ = appendRecord(bad, append([]byte{recState}, statemap.AppendKey([]byte(nil), key(1))...))
	bad, _ = appendRecord(bad, snapshotEnd(1))
	if _, _, err := readSnapshotStates(bytes.NewReader(bad), 2); !errors.Is(err, ErrCorrupt) {
		t.Errorf("undecodable state: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// TestSnapshotCancel checks that a cancelled context stops the reading.
func TestSnapshotCancel(t *testing.T) {
	snap := snapshotOf(t, map[presence.Key]presence.State{key(1): {Seq: 1}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := readSnapshot(ctx, bytes.NewReader(snap), int64(len(snap)), 2, statemap.New()); !errors.Is(err, context.Canceled) {
		t.Fatalf("readSnapshot with a cancelled context: %v", err)
	}
}

// legacyRecord is a state record of the JSON format, as it was written.
func legacyRecord(t testing.TB, key presence.Key, s presence.State) []byte {
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	p := []byte{recStateJSON}
	p = append(appendUvarintString(p, key.Tenant), nil...)
	p = appendUvarintString(p, key.User)
	p = append(p, js...)
	rec, err := appendRecord(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func appendUvarintString(p []byte, s string) []byte {
	p = append(p, byte(len(s))) // short strings only
	return append(p, s...)
}

// TestMixedLog replays a segment holding records of both formats, as one
// does after an upgrade following a crash: the last record wins.
func TestMixedLog(t *testing.T) {
	var seg []byte
	seg = append(seg, legacyRecord(t, key(1), presence.State{Seq: 1})...)
	seg = append(seg, legacyRecord(t, key(2), presence.State{Seq: 2})...)
	seg = append(seg, must(appendStateRecord(nil, key(1), presence.State{Seq: 11}))...)
	seg = append(seg, must(appendStateRecord(nil, key(3), presence.State{Seq: 3}))...)
	seg = append(seg, legacyRecord(t, key(3), presence.State{Seq: 33})...)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600); err != nil {
		t.Fatal(err)
	}
	s := mustOpen(t, dir, Options{})
	defer s.Close()
	if got := seqs(t, s, 4); !slices.Equal(got, []uint64{0, 11, 2, 33}) {
		t.Errorf("Seqs = %v", got)
	}
}

// TestJSONSnapshotRewritten checks that a snapshot of the JSON format is
// rewritten in the binary format soon after Open, without any write.
func TestJSONSnapshotRewritten(t *testing.T) {
	dir := copyDir(t, "testdata/json-format/datadir")
	segs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, seg := range segs {
		os.Remove(seg)
	}
	s := mustOpen(t, dir, Options{})
	before := scanJSON(t, s)
	deadline := time.Now().Add(5 * time.Second)
	for {
		snap, err := os.ReadFile(filepath.Join(dir, snapshotName))
		if err == nil && bytes.Contains(snap[:min(len(snap), 64)], []byte(snapshotMagic)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the JSON snapshot was not rewritten")
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, Options{})
	defer s.Close()
	if s.jsonSnapshot {
		t.Error("still a JSON snapshot after a Close")
	}
	after := scanJSON(t, s)
	if fmt.Sprint(before) != fmt.Sprint(after) || len(after) != 4 {
		t.Errorf("states changed by the rewrite:\n%v\n%v", before, after)
	}
}
