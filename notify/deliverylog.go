package notify

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
)

// The bounds of the delivery log: the attempts kept per subscription, the
// subscriptions kept (the least recently written are forgotten first), and
// the notifications kept per attempt.
const (
	logPerSubscription = 50
	logSubscriptions   = 1024
	logItems           = 20
)

// MemoryDeliveryLog is the delivery log of one process: the most recent
// delivery attempts of each subscription, in memory. It is bounded: 50
// attempts per subscription, of the 1024 subscriptions written to most
// recently, 20 notifications per attempt.
type MemoryDeliveryLog struct {
	mu    sync.Mutex
	bySub map[string]*subLog
	seq   uint64 // counts writes, to tell the least recently written
}

type subLog struct {
	attempts []presence.DeliveryAttempt // a ring, oldest first once full
	next     int
	touched  uint64 // the log's seq at the last write
}

var _ presence.DeliveryLog = (*MemoryDeliveryLog)(nil)

// NewMemoryDeliveryLog returns an empty log.
func NewMemoryDeliveryLog() *MemoryDeliveryLog {
	return &MemoryDeliveryLog{bySub: map[string]*subLog{}}
}

// Record implements presence.DeliveryLog; it never fails.
func (l *MemoryDeliveryLog) Record(_ context.Context, a presence.DeliveryAttempt) error {
	if len(a.Items) > logItems {
		a.Items = a.Items[:logItems:logItems]
	}
	l.add(a)
	return nil
}

// Recent implements presence.DeliveryLog; it never fails.
func (l *MemoryDeliveryLog) Recent(_ context.Context, subscription string) ([]presence.DeliveryAttempt, error) {
	return l.recent(subscription), nil
}

func (l *MemoryDeliveryLog) add(a presence.DeliveryAttempt) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.bySub[a.Subscription]
	if s == nil {
		if len(l.bySub) >= logSubscriptions {
			l.evictLocked()
		}
		s = &subLog{}
		l.bySub[a.Subscription] = s
	}
	l.seq++
	s.touched = l.seq
	if len(s.attempts) < logPerSubscription {
		s.attempts = append(s.attempts, a)
		return
	}
	s.attempts[s.next] = a
	s.next = (s.next + 1) % logPerSubscription
}

// evictLocked forgets the subscription written to least recently.
func (l *MemoryDeliveryLog) evictLocked() {
	var oldest string
	var at uint64
	for id, s := range l.bySub {
		if oldest == "" || s.touched < at {
			oldest, at = id, s.touched
		}
	}
	delete(l.bySub, oldest)
}

// recent returns the subscription's attempts, newest first.
func (l *MemoryDeliveryLog) recent(sub string) []presence.DeliveryAttempt {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.bySub[sub]
	if s == nil {
		return nil
	}
	out := make([]presence.DeliveryAttempt, 0, len(s.attempts))
	out = append(out, s.attempts[s.next:]...)
	out = append(out, s.attempts[:s.next]...)
	slices.Reverse(out)
	return out
}

// Deliveries returns the most recent delivery attempts of the subscription
// id, newest first, from the delivery log (by default in memory: at most
// 50, forgotten at a restart). It does not check who asks: callers
// authorize first.
func (n *Notifier) Deliveries(ctx context.Context, id string) ([]presence.DeliveryAttempt, error) {
	return n.dlog.Recent(ctx, strings.ToLower(id))
}

// TenantSubscriptions returns every live subscription of tenant, whoever
// made it, ordered by id: for an operator's view across applications. It
// does not check who asks.
func (n *Notifier) TenantSubscriptions(ctx context.Context, tenant string) ([]presence.Subscription, error) {
	if err := n.sync(ctx); err != nil {
		return nil, err
	}
	now := n.clock.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []presence.Subscription
	for _, s := range n.subs {
		if s.Tenant == tenant && now.Before(s.ExpirationDateTime) {
			out = append(out, *s)
		}
	}
	slices.SortFunc(out, func(a, b presence.Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// answerKey is the context key under which a delivery attempt waits for
// the receiver's answer.
type answerKey struct{}

// answer is what the observing transport saw of one POST.
type answer struct {
	status  int
	err     string
	latency time.Duration
}

// observingTransport records the status and latency of the requests whose
// context carries an *answer (delivery attempts); other requests (the
// validation handshake) pass through untouched.
type observingTransport struct{ base http.RoundTripper }

func (t observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	a, _ := req.Context().Value(answerKey{}).(*answer)
	if a == nil {
		return t.base.RoundTrip(req)
	}
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	a.latency = time.Since(start)
	if err != nil {
		a.err = err.Error()
		return resp, err
	}
	a.status = resp.StatusCode
	return resp, nil
}

// observeClient returns a copy of c whose transport records delivery
// attempts' answers for the delivery log.
func observeClient(c *http.Client) *http.Client {
	cc := *c
	base := cc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cc.Transport = observingTransport{base: base}
	return &cc
}

// logAttempt starts logging one delivery attempt of q's head batch: it
// returns the context to send the POST with, and the function to call once
// the attempt's outcome is settled (deliver defers it), which writes the
// attempt to the delivery log.
func (d *deliverer) logAttempt(ctx context.Context, q *queue, batch []item, at time.Time) (context.Context, func()) {
	d.mu.Lock()
	attempt := q.attempts + 1
	d.mu.Unlock()
	a := &answer{}
	rec := presence.DeliveryAttempt{Subscription: q.subID, At: at, Lifecycle: q.lifecycle, Count: len(batch), Attempt: attempt}
	for _, it := range batch[:min(len(batch), logItems)] {
		rec.Items = append(rec.Items, presence.DeliveredItem{User: it.key.User, Seq: it.notice.Seq, Pair: it.notice.Pair, LifecycleEvent: it.lifecycle})
	}
	start := time.Now()
	return context.WithValue(ctx, answerKey{}, a), func() {
		rec.Status, rec.Error, rec.Latency = a.status, a.err, a.latency
		if rec.Latency == 0 {
			rec.Latency = time.Since(start)
		}
		d.mu.Lock()
		failures, next := q.attempts, q.next
		d.mu.Unlock()
		switch {
		case rec.Status >= 200 && rec.Status <= 299:
			rec.Outcome = presence.DeliveryDelivered
		case failures > 0 && !next.IsZero():
			rec.Outcome, rec.NextRetry = presence.DeliveryRetrying, next
		default:
			rec.Outcome = presence.DeliveryDropped
		}
		if err := d.n.dlog.Record(ctx, rec); err != nil {
			d.n.logger.WarnContext(ctx, "recording a delivery attempt", "subscription", rec.Subscription, "err", err)
		}
	}
}
