package notify

import (
	"context"
	"net/http"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// TestDueCapsEachHost: a dispatch takes at most perHost queues of one
// receiver host, and the queues of other hosts whatever that one holds;
// a delivery's end gives its host's slot back.
func TestDueCapsEachHost(t *testing.T) {
	h := newHarness(t)
	d := h.n.d
	d.mu.Lock()
	for i := range 10 {
		d.enqueue(presence.NewGUID(), false, item{notice: presence.Notice{Seq: uint64(i + 1)}}, "slow.example:443")
	}
	d.enqueue("fast-sub", false, item{notice: presence.Notice{Seq: 1}}, "fast.example:443")
	d.mu.Unlock()
	hosts := func(qs []*queue) map[string]int {
		m := map[string]int{}
		for _, q := range qs {
			m[q.host]++
		}
		return m
	}
	got := hosts(d.due(true))
	if got["slow.example:443"] != d.perHost || got["fast.example:443"] != 1 {
		t.Fatalf("first dispatch %v, want %d of the slow host and the fast one", got, d.perHost)
	}
	if more := d.due(true); len(more) != 0 {
		t.Fatalf("a second dispatch took %v while the slow host's slots are held", hosts(more))
	}
	// One slow delivery ends: one more slow queue may go.
	d.mu.Lock()
	var one *queue
	for _, q := range d.queues {
		if q.busy && q.host == "slow.example:443" {
			one = q
			break
		}
	}
	d.mu.Unlock()
	d.unbusy(one)
	one.items = nil // delivered
	if got := hosts(d.due(true)); got["slow.example:443"] != 1 || len(got) != 1 {
		t.Fatalf("after one slow delivery ended: %v, want one more slow queue", got)
	}
}

// TestQueueBoundPerSubscription: a subscription's in-memory queue holds at
// most maxPerQueue notifications; the rest are dropped and counted.
func TestQueueBoundPerSubscription(t *testing.T) {
	h := newHarness(t)
	h.n.d.maxPerQueue = 3
	sub := h.subscribe(tUser1)
	h.sink.answer(http.StatusServiceUnavailable) // nothing leaves the queue
	for i := range 10 {
		if i%2 == 0 {
			h.set(tUser1, "Busy", "InACall")
		} else {
			h.set(tUser1, "Available", "Available")
		}
	}
	if err := h.n.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.n.d.mu.Lock()
	n := len(h.n.d.queues[queueKey{sub.ID, false}].items)
	h.n.d.mu.Unlock()
	if n != 3 {
		t.Errorf("the queue holds %d notifications, want 3", n)
	}
	if got := h.n.d.queueFullDropped.Load(); got != 7 {
		t.Errorf("queue-full drops counted: %v, want 7", got)
	}
}

func TestRateLog(t *testing.T) {
	var r rateLog
	t0 := h0()
	if n := r.add(2, t0); n != 2 {
		t.Fatalf("first: %d, want 2 logged at once", n)
	}
	if n := r.add(3, t0.Add(dropLogEvery/2)); n != 0 {
		t.Fatalf("within the period: %d, want 0", n)
	}
	if n := r.add(1, t0.Add(dropLogEvery)); n != 4 {
		t.Fatalf("a period later: %d, want the 4 since", n)
	}
}

func h0() (t0 time.Time) { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }

func TestAfterFailure(t *testing.T) {
	for _, c := range []struct {
		attempts   int
		failingFor time.Duration
		share      float64
		giveUp     bool
		backoff    time.Duration
		slowWait   bool
	}{
		{1, 0, 0, false, 10 * time.Second, false},
		{2, 10 * time.Second, 0, false, 20 * time.Second, false},
		{4, time.Minute, 0, false, 80 * time.Second, false},
		{7, 10 * time.Minute, 0, false, 10 * time.Minute, false},
		{40, 3 * time.Hour, 0, false, 10 * time.Minute, false},
		{41, 4 * time.Hour, 0, true, 0, false},
		{1, 0, 0.10, false, 10 * time.Minute, true},
		{1, 0, 0.149, false, 10 * time.Minute, true},
		{1, 0, 0.15, true, 0, false},
		{1, 0, 0.099, false, 10 * time.Second, false},
	} {
		giveUp, backoff, slowWait := afterFailure(c.attempts, c.failingFor, c.share)
		if giveUp != c.giveUp || backoff != c.backoff || slowWait != c.slowWait {
			t.Errorf("afterFailure(%d, %v, %v) = %v, %v, %v; want %v, %v, %v",
				c.attempts, c.failingFor, c.share, giveUp, backoff, slowWait, c.giveUp, c.backoff, c.slowWait)
		}
	}
}

// TestDrainWaitsWhenQueuesFull: once the queues hold maxQueued
// notifications, new changes stay in the users' durable outboxes (still
// marked pending) rather than in memory, and are queued once there is
// room.
func TestDrainWaitsWhenQueuesFull(t *testing.T) {
	h := newHarness(t)
	h.n.d.maxQueued = 2
	h.subscribe(tUser1, tUser2)
	h.sink.answer(http.StatusServiceUnavailable)
	for _, u := range []string{tUser1, tUser2} {
		h.set(u, "Busy", "InACall")
		h.set(u, "Available", "Available")
	}
	if err := h.n.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	d := h.n.d
	d.mu.Lock()
	depth, waiting := d.depth, len(d.dirty)
	d.mu.Unlock()
	if depth != 2 || waiting != 1 {
		t.Fatalf("queued %d, %d users waiting; want 2 queued and the other user waiting", depth, waiting)
	}
	if n := len(h.outbox(tUser1)) + len(h.outbox(tUser2)); n != 4 {
		t.Errorf("the outboxes hold %d notices, want all 4", n)
	}
	d.mu.Lock()
	d.maxQueued = 100
	d.mu.Unlock()
	if err := h.n.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	depth, waiting = d.depth, len(d.dirty)
	d.mu.Unlock()
	if depth != 4 || waiting != 0 {
		t.Errorf("with room: queued %d, %d waiting; want 4 and 0", depth, waiting)
	}
}
