package presence_test

import (
	"sync"
	"testing"

	presence "github.com/presenced/presenced"
)

func ev(tenant, user string, seq uint64) presence.Event {
	return presence.Event{Key: presence.Key{Tenant: tenant, User: user}, After: presence.View{Seq: seq}}
}

// TestFeedRoutesByUser: an event reaches only the watches of its (tenant,
// user), and the watches of every event.
func TestFeedRoutesByUser(t *testing.T) {
	f := presence.NewFeed()
	a := f.Watch([]presence.Key{{Tenant: "t1", User: "u1"}, {Tenant: "t1", User: "u2"}}, 8)
	b := f.Watch([]presence.Key{{Tenant: "t2", User: "u1"}}, 8)
	all := f.WatchAll(8)
	defer a.Close()
	defer b.Close()
	defer all.Close()
	f.Publish(ev("t1", "u1", 1))
	f.Publish(ev("t1", "u3", 2))
	f.Publish(ev("t2", "u1", 3))
	f.Publish(ev("t1", "u2", 4))
	got := func(w *presence.Watch) (seqs []uint64) {
		for {
			select {
			case e := <-w.Events():
				seqs = append(seqs, e.After.Seq)
			default:
				return seqs
			}
		}
	}
	if s := got(a); len(s) != 2 || s[0] != 1 || s[1] != 4 {
		t.Errorf("watch of t1/u1, t1/u2 got %v, want [1 4]", s)
	}
	if s := got(b); len(s) != 1 || s[0] != 3 {
		t.Errorf("watch of t2/u1 got %v, want [3]", s)
	}
	if s := got(all); len(s) != 4 {
		t.Errorf("watch of all got %v, want 4 events", s)
	}
	if st := f.Stats(); st.Watches != 3 || st.Published != 4 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestFeedOverflowEndsWatch: a watch whose reader falls behind its buffer
// is overflowed and gets nothing more; the others are untouched; Close
// forgets the watch.
func TestFeedOverflowEndsWatch(t *testing.T) {
	f := presence.NewFeed()
	k := []presence.Key{{Tenant: "t", User: "u"}}
	slow := f.Watch(k, 2)
	fast := f.Watch(k, 16)
	for i := range 5 {
		f.Publish(ev("t", "u", uint64(i+1)))
	}
	select {
	case <-slow.Overflowed():
	default:
		t.Fatal("a full watch was not overflowed")
	}
	select {
	case <-fast.Overflowed():
		t.Fatal("a watch with room was overflowed")
	default:
	}
	if len(slow.Events()) != 2 || len(fast.Events()) != 5 {
		t.Errorf("buffered %d and %d, want 2 and 5", len(slow.Events()), len(fast.Events()))
	}
	<-slow.Events()
	f.Publish(ev("t", "u", 6))
	if len(slow.Events()) != 1 {
		t.Error("an overflowed watch got another event")
	}
	if st := f.Stats(); st.Dropped != 4 || st.Overflowed != 1 {
		t.Errorf("stats %+v, want 4 dropped, 1 overflowed", st)
	}
	slow.Close()
	slow.Close()
	fast.Close()
	if st := f.Stats(); st.Watches != 0 {
		t.Errorf("%d watches after closing both", st.Watches)
	}
}

// TestFeedConcurrent publishes while watches come and go (for -race).
func TestFeedConcurrent(t *testing.T) {
	f := presence.NewFeed()
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 500 {
				f.Publish(ev("t", string(rune('a'+j%3)), uint64(i*1000+j)))
			}
		})
		wg.Go(func() {
			for j := range 200 {
				w := f.Watch([]presence.Key{{Tenant: "t", User: string(rune('a' + j%3))}}, 4)
				w.Close()
			}
		})
	}
	wg.Wait()
	if st := f.Stats(); st.Watches != 0 {
		t.Errorf("%d watches left", st.Watches)
	}
}
