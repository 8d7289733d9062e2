package notify

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	presence "github.com/presenced/presenced"
)

// fullFile is a subFile on a disk that fills up on demand: while full is
// set, a write puts half its bytes down and fails with ENOSPC, and, while
// stuck is set too, so does a truncation.
type fullFile struct {
	subFile
	full, stuck *atomic.Bool
}

func (f fullFile) Write(p []byte) (int, error) {
	if f.full.Load() {
		n, _ := f.subFile.Write(p[:len(p)/2])
		return n, syscall.ENOSPC
	}
	return f.subFile.Write(p)
}

func (f fullFile) Truncate(size int64) error {
	if f.stuck.Load() {
		return syscall.EIO
	}
	return f.subFile.Truncate(size)
}

// A full disk leaves no half line in the subscription file, fails the
// change as Unavailable, and every change acknowledged before and after
// is there on the next open.
func TestSubStoreFullDisk(t *testing.T) {
	dir := t.TempDir()
	var full, stuck atomic.Bool
	s, err := openSubStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.wrap = func(f subFile) subFile { return fullFile{f, &full, &stuck} }
	s.f = s.wrap(s.f)
	if err := s.put(sampleSub(0)); err != nil {
		t.Fatal(err)
	}
	full.Store(true)
	if err := s.put(sampleSub(1)); !errors.Is(err, presence.ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("put on a full disk: %v, want Unavailable wrapping ENOSPC", err)
	}
	checkWholeLines(t, dir)
	stuck.Store(true) // the half line cannot even be cut back
	if err := s.put(sampleSub(2)); !errors.Is(err, presence.ErrUnavailable) {
		t.Fatalf("put: %v, want Unavailable", err)
	}
	full.Store(false)
	if err := s.put(sampleSub(3)); !errors.Is(err, presence.ErrUnavailable) {
		t.Fatalf("put while the half line is still there: %v, want Unavailable", err)
	}
	stuck.Store(false) // space freed
	if err := s.put(sampleSub(4)); err != nil {
		t.Fatalf("put once space is freed: %v", err)
	}
	checkWholeLines(t, dir)
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s, err = openSubStore(dir)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.close()
	var ids []string
	for _, sub := range s.all() {
		ids = append(ids, sub.ID)
	}
	if len(ids) != 2 || !strings.Contains(strings.Join(ids, ","), sampleSub(0).ID) || !strings.Contains(strings.Join(ids, ","), sampleSub(4).ID) {
		t.Fatalf("after reopen: %v, want subscriptions 0 and 4", ids)
	}
}

func checkWholeLines(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, subFileName))
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		t.Fatalf("the file ends in half a line: %q", data)
	}
	for line := range bytes.Lines(data) {
		if _, _, err := decodeSubLine(bytes.TrimSuffix(line, []byte("\n"))); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
	}
}

// A flipped byte in a subscription line is detected at open, naming the
// offset, not read as another notificationUrl; repair drops that line only.
func TestSubStoreChecksum(t *testing.T) {
	dir := t.TempDir()
	s, err := openSubStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := s.put(sampleSub(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.close()
	path := filepath.Join(dir, subFileName)
	data, _ := os.ReadFile(path)
	i := bytes.Index(data, []byte("127.0.0.1"))
	data[i] = '9' // https://927.0.0.1/hook: still valid JSON
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openSubStore(dir); err == nil || !strings.Contains(err.Error(), "offset 0") {
		t.Fatalf("open of a damaged line: %v, want an error at offset 0", err)
	}
	r, err := RepairSubscriptions(dir)
	if err != nil || r.Dropped != 1 || r.Kept != 2 || r.Backup == "" {
		t.Fatalf("repair: %+v, %v", r, err)
	}
	s, err = openSubStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	for _, sub := range s.all() {
		if sub.NotificationURL != "https://127.0.0.1/hook" {
			t.Fatalf("a changed notificationUrl survived: %v", sub.NotificationURL)
		}
	}
	if n := len(s.all()); n != 2 {
		t.Fatalf("%d subscriptions after repair, want 2", n)
	}
}

// Lines of the first format (JSON without a checksum) are read and
// rewritten with checksums.
func TestSubStoreReadsFirstFormat(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, subFileName)
	sub := sampleSub(7)
	if err := os.WriteFile(path, []byte(`{"put":{"id":"`+sub.ID+`","tenantId":"t","notificationUrl":"https://x/"}}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := openSubStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if n := len(s.all()); n != 1 {
		t.Fatalf("%d subscriptions, want 1", n)
	}
	data, _ := os.ReadFile(path)
	if data[0] == '{' {
		t.Fatalf("not rewritten: %s", data)
	}
	checkWholeLines(t, dir)
}
