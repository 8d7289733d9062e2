package presence

import (
	"sync"
	"sync/atomic"
)

// Feed fans change events out to the readers watching them, indexed by
// (tenant, user): an event costs work only for the watches of its user.
// A reader that falls behind is not buffered without end: when its watch's
// buffer is full the watch is overflowed (Overflowed is closed), it gets no
// further events, and the reader is expected to end (an event stream tells
// its client to reconnect, which reads current presence afresh).
//
// The Service publishes its own events into its Feed; events made on other
// nodes reach local readers through Publish too (Service.PublishRemote).
// Publish never blocks.
type Feed struct {
	mu     sync.RWMutex
	byKey  map[Key]map[*Watch]struct{}
	all    map[*Watch]struct{} // watches of every event
	n      int
	events atomic.Uint64 // events published
	drops  atomic.Uint64 // events a full watch could not take
	overs  atomic.Uint64 // watches overflowed
}

// Watch is one reader's view of the feed: the events of some users (or of
// all), in the order they were published.
type Watch struct {
	feed     *Feed
	keys     []Key // nil for a watch of every event
	ch       chan Event
	over     chan struct{}
	overOnce sync.Once
	close    sync.Once
}

// FeedStats are a Feed's counters.
type FeedStats struct {
	// Watches is the number of open watches.
	Watches int
	// Published counts the events published.
	Published uint64
	// Dropped counts the events a full watch could not take.
	Dropped uint64
	// Overflowed counts the watches closed because their buffer was full.
	Overflowed uint64
}

// NewFeed returns an empty Feed.
func NewFeed() *Feed {
	return &Feed{byKey: make(map[Key]map[*Watch]struct{}), all: make(map[*Watch]struct{})}
}

// Watch returns a watch of the events of keys with room for buffer of them
// (at least one). Close it when done.
func (f *Feed) Watch(keys []Key, buffer int) *Watch {
	w := &Watch{feed: f, keys: append([]Key(nil), keys...), ch: make(chan Event, max(buffer, 1)), over: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, k := range w.keys {
		m := f.byKey[k]
		if m == nil {
			m = make(map[*Watch]struct{}, 1)
			f.byKey[k] = m
		}
		m[w] = struct{}{}
	}
	f.n++
	return w
}

// WatchAll returns a watch of every event published, with room for buffer
// of them. Close it when done.
func (f *Feed) WatchAll(buffer int) *Watch {
	w := &Watch{feed: f, ch: make(chan Event, max(buffer, 1)), over: make(chan struct{})}
	f.mu.Lock()
	f.all[w] = struct{}{}
	f.n++
	f.mu.Unlock()
	return w
}

// Publish hands ev to the watches of its user and of every event, without
// blocking: a watch whose buffer is full is overflowed instead.
func (f *Feed) Publish(ev Event) {
	f.events.Add(1)
	f.mu.RLock()
	defer f.mu.RUnlock()
	for w := range f.byKey[ev.Key] {
		w.offer(ev)
	}
	for w := range f.all {
		w.offer(ev)
	}
}

// offer gives ev to w, or overflows w when its buffer is full.
func (w *Watch) offer(ev Event) {
	select {
	case <-w.over:
		w.feed.drops.Add(1)
		return
	default:
	}
	select {
	case w.ch <- ev:
	default:
		w.feed.drops.Add(1)
		w.overOnce.Do(func() {
			w.feed.overs.Add(1)
			close(w.over)
		})
	}
}

// Stats returns the feed's counters.
func (f *Feed) Stats() FeedStats {
	f.mu.RLock()
	n := f.n
	f.mu.RUnlock()
	return FeedStats{Watches: n, Published: f.events.Load(), Dropped: f.drops.Load(), Overflowed: f.overs.Load()}
}

// Events delivers the watch's events.
func (w *Watch) Events() <-chan Event { return w.ch }

// Overflowed is closed once the watch missed an event because its buffer
// was full; no event reaches it after that.
func (w *Watch) Overflowed() <-chan struct{} { return w.over }

// Close stops the watch; it may be called more than once.
func (w *Watch) Close() {
	w.close.Do(func() {
		f := w.feed
		f.mu.Lock()
		defer f.mu.Unlock()
		if w.keys == nil {
			delete(f.all, w)
		}
		for _, k := range w.keys {
			m := f.byKey[k]
			delete(m, w)
			if len(m) == 0 {
				delete(f.byKey, k)
			}
		}
		f.n--
	})
}
