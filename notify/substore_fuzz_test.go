package notify

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzSubscriptionFile feeds arbitrary bytes to the subscription file's
// reader: it must not panic; a file it opens must reopen with the same
// subscriptions (what it rewrote is well formed); and repair must always
// leave a file it opens.
func FuzzSubscriptionFile(f *testing.F) {
	line, _ := encodeSubLine(subRecord{Put: ptr(sampleSub(1))})
	del, _ := encodeSubLine(subRecord{Del: sampleSub(1).ID})
	f.Add(line)
	f.Add(append(append([]byte{}, line...), del...))
	f.Add(line[:len(line)/2])
	f.Add([]byte(`{"put":{"id":"x"}}` + "\n"))
	f.Add([]byte("00000000 {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, subFileName)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := openSubStore(dir)
		if err == nil {
			n := len(s.all())
			s.close()
			s2, err := openSubStore(dir)
			if err != nil {
				t.Fatalf("reopen of what open accepted: %v", err)
			}
			if len(s2.all()) != n {
				t.Fatalf("reopen: %d subscriptions, were %d", len(s2.all()), n)
			}
			s2.close()
			return
		}
		if _, err := RepairSubscriptions(dir); err != nil {
			t.Fatalf("repair: %v", err)
		}
		s, err = openSubStore(dir)
		if err != nil {
			got, _ := os.ReadFile(path)
			t.Fatalf("open after repair: %v\n%q", err, bytes.TrimSpace(got))
		}
		s.close()
	})
}

func ptr[T any](v T) *T { return &v }
