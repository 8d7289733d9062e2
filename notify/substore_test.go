package notify

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func sampleSub(i int) presence.Subscription {
	return presence.Subscription{
		ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Tenant: "84bd8158-6d4d-4958-8b9f-9d6445542f95",
		Resource: "communications/presences/fa8bf3dc-eca7-46b7-bad1-db199b62afc3", Users: []string{"fa8bf3dc-eca7-46b7-bad1-db199b62afc3"},
		ChangeType: "updated", NotificationURL: "https://127.0.0.1/hook", ExpirationDateTime: time.Date(2026, 1, 12, 10, 0, 0, 0, time.UTC),
		ApplicationID: "22553876-f5ab-4529-bffb-cfe50aa89f87", CreatorID: "fa8bf3dc-eca7-46b7-bad1-db199b62afc3", ClientState: fmt.Sprint("cs", i),
	}
}

func TestSubStoreDurable(t *testing.T) {
	dir := t.TempDir()
	s, err := openSubStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := s.put(sampleSub(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 300; i += 2 {
		if err := s.del(sampleSub(i).ID); err != nil {
			t.Fatal(err)
		}
	}
	renewed := sampleSub(1)
	renewed.ExpirationDateTime = renewed.ExpirationDateTime.Add(time.Hour)
	if err := s.put(renewed); err != nil {
		t.Fatal(err)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	// Compaction kept the file near the live size.
	lines := countLines(t, filepath.Join(dir, "subscriptions.jsonl"))
	if lines > 2*150+64 {
		t.Errorf("%d lines for 150 live subscriptions", lines)
	}

	s, err = openSubStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	all := s.all()
	if len(all) != 150 {
		t.Fatalf("%d subscriptions after reopen, want 150", len(all))
	}
	for _, sub := range all {
		if sub.ID == renewed.ID && !sub.ExpirationDateTime.Equal(renewed.ExpirationDateTime) {
			t.Errorf("renewal lost: %v", sub.ExpirationDateTime)
		}
	}
}

func TestSubStoreTornTail(t *testing.T) {
	dir := t.TempDir()
	s, err := openSubStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := s.put(sampleSub(i)); err != nil {
			t.Fatal(err)
		}
	}
	s.close()
	path := filepath.Join(dir, "subscriptions.jsonl")
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"put":{"id":"half`)
	f.Close()
	s, err = openSubStore(dir)
	if err != nil {
		t.Fatalf("torn tail: %v", err)
	}
	if n := len(s.all()); n != 3 {
		t.Errorf("%d subscriptions, want 3", n)
	}
	s.close()

	// Damage in the middle is not a torn write: refuse to guess.
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append([]byte("garbage\n"), data...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openSubStore(dir); err == nil {
		t.Fatal("corrupt middle line accepted")
	}
}

func countLines(t *testing.T, path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, b := range data {
		if b == '\n' {
			n++
		}
	}
	return n
}
