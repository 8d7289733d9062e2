package notify

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Defaults of the delivery bounds in Config.
const (
	DefaultWorkers                  = 128
	DefaultPerHost                  = 4
	DefaultMaxQueued                = 500_000
	DefaultMaxQueuedPerSubscription = 10_000
	// dropLogEvery is how often, at most, each kind of dropped notice is
	// logged.
	dropLogEvery = time.Minute
)

// hostOf is the receiver a notification URL names: its host and port, in
// lower case (the whole URL when it does not parse).
func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return raw
	}
	return strings.ToLower(u.Host)
}

// rateLog counts occurrences and says when to log them: at most once a
// period (real time), with the count since the last log.
type rateLog struct {
	mu      sync.Mutex
	last    time.Time
	pending int
}

// add counts n and returns how many to log now, or 0.
func (r *rateLog) add(n int, now time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending += n
	if r.pending == 0 || now.Sub(r.last) < dropLogEvery {
		return 0
	}
	n, r.pending, r.last = r.pending, 0, now
	return n
}

// queueFullDrops counts n notices dropped because their subscription's
// in-memory queue was full, and logs them (at most once a minute).
func (d *deliverer) queueFullDrops(ctx context.Context, n int) {
	d.n.m.Dropped.Add(float64(n))
	d.n.m.QueueFull.Add(float64(n))
	d.queueFullDropped.Add(uint64(n))
	if c := d.queueFull.add(n, time.Now()); c > 0 {
		d.n.logger.WarnContext(ctx, "notifications dropped: a subscription's delivery queue is full (its receiver is slow or failing)",
			"dropped", c, "queue_limit", d.maxPerQueue)
	}
}

// logOutboxDrops logs (at most once a minute) the notices the Service
// dropped because a user's outbox was full; they are counted in
// presenced_notify_outbox_dropped_total.
func (d *deliverer) logOutboxDrops(ctx context.Context) {
	total := d.n.svc.Stats().OutboxDropped
	d.mu.Lock()
	n := int(total - d.outboxSeen)
	d.outboxSeen = total
	d.mu.Unlock()
	if c := d.outboxFull.add(n, time.Now()); c > 0 {
		d.n.logger.WarnContext(ctx, "notifications dropped: a user's outbox was full (more undelivered changes than it keeps)",
			"dropped", c, "total", total)
	}
}
