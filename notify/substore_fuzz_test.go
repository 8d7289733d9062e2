package notify

import (
	"maps"
	"testing"

	presence "github.com/presenced/presenced"
)

// FuzzSubscriptionFile feeds arbitrary bytes to the subscription file's
// reader and to repair's: neither may panic; what the reader accepts,
// written again as the store rewrites it, reads back the same; and what
// repair keeps always reads without error.
func FuzzSubscriptionFile(f *testing.F) {
	line, _ := encodeSubLine(subRecord{Put: ptr(sampleSub(1))})
	del, _ := encodeSubLine(subRecord{Del: sampleSub(1).ID})
	f.Add(line)
	f.Add(append(append([]byte{}, line...), del...))
	f.Add(line[:len(line)/2])
	f.Add([]byte(`{"put":{"id":"x"}}` + "\n"))
	f.Add([]byte("00000000 {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &subStore{live: map[string]presence.Subscription{}}
		if _, _, err := s.readLines(data); err == nil {
			var again []byte
			for _, sub := range s.live {
				l, err := encodeSubLine(subRecord{Put: &sub})
				if err != nil {
					t.Fatal(err)
				}
				again = append(again, l...)
			}
			s2 := &subStore{live: map[string]presence.Subscription{}}
			if _, torn, err := s2.readLines(again); err != nil || torn {
				t.Fatalf("the rewrite of an accepted file reads as %v (torn %v)", err, torn)
			}
			if !maps.EqualFunc(s.live, s2.live, func(a, b presence.Subscription) bool { return a.ID == b.ID && a.NotificationURL == b.NotificationURL }) {
				t.Fatalf("the rewrite reads back %d subscriptions, were %d", len(s2.live), len(s.live))
			}
		}
		var r SubscriptionRepair
		kept, err := repairLines(data, &r)
		if err != nil {
			t.Fatal(err)
		}
		s3 := &subStore{live: map[string]presence.Subscription{}}
		if _, torn, err := s3.readLines(kept); err != nil || torn {
			t.Fatalf("what repair kept reads as %v (torn %v)", err, torn)
		}
	})
}

func ptr[T any](v T) *T { return &v }
