package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	presence "github.com/presenced/presenced"
)

// Delivery rules of Graph's webhooks.
const (
	maxBatch        = 100              // notifications in one POST
	firstBackoff    = 10 * time.Second // retry schedule: 10 s, doubling...
	maxBackoff      = 10 * time.Minute // ...up to 10 min...
	giveUpAfter     = 4 * time.Hour    // ...for 4 hours, then dropped
	slowDelivery    = 2900 * time.Millisecond
	slowMinimum     = 100 // notifications before an endpoint is judged
	slowDelayShare  = 0.10
	slowDropShare   = 0.15
	slowDelay       = 10 * time.Minute
	slowFlushPeriod = 10 * time.Minute
	retryScan       = 200 * time.Millisecond
	trimWorkers     = 64 // outbox trims written at once
	// tokenReuse is how long a signed validationToken goes into the rich
	// notifications of its (application, tenant) before another is
	// signed: a signature costs an RSA private-key operation (1.6 ms), and
	// a token is valid for an hour.
	tokenReuse = 5 * time.Minute
)

// item is one notification waiting for its subscription's queue.
type item struct {
	key       presence.Key
	notice    presence.Notice
	lifecycle string // a lifecycle event instead of a change
}

// queue is the notifications of one subscription (or its lifecycle events),
// delivered in order, one POST at a time, so a user's changes reach a
// receiver in sequence order.
type queue struct {
	subID     string
	lifecycle bool
	items     []item
	busy      bool
	// host is the receiver's host (and port), as of the last enqueue or
	// delivery; slotHost the host whose delivery slot the queue holds
	// while busy.
	host, slotHost string
	next           time.Time // service-clock instant of the next attempt
	firstFail      time.Time
	attempts       int
	dropped        bool // the subscription is gone
	// sending is how many items at the head are being POSTed now.
	sending int
	// slowWait records that the head batch already waited the slow-endpoint
	// delay (or a backoff at least as long).
	slowWait bool
}

// queueKey names a queue: a subscription's changes or its lifecycle events.
type queueKey struct {
	subID     string
	lifecycle bool
}

// userBox accounts for the notices of one user's outbox that are queued.
type userBox struct {
	enqueued uint64         // highest notice sequence queued
	trimmed  uint64         // highest sequence trimmed from the outbox
	refs     map[uint64]int // deliveries still pending per notice
	reading  int            // drains reading the outbox now
	sending  int            // its notices in a POST now
	trimming bool           // a trim of its outbox is being written
	// handoff is the lowest sequence whose queued notices were handed to
	// the node that now owns the user (0: none): they are not trimmed
	// here, so that the new owner finds them in the outbox.
	handoff uint64
}

// endpoint holds the slow-delivery counters of one notification URL.
type endpoint struct {
	count, slow int
	since       time.Time
}

// slowShare is the endpoint's share of slow deliveries, once it has had
// enough to judge.
func (e *endpoint) slowShare() float64 {
	if e.count < slowMinimum {
		return 0
	}
	return float64(e.slow) / float64(e.count)
}

// subCert is a subscription's encryption certificate, parsed once rather
// than at every delivery.
type subCert struct {
	raw  string // the encryptionCertificate it was parsed from
	cert *EncryptionCert
}

// tokenKey is the (application, tenant) a validationToken is for.
type tokenKey struct{ app, tenant string }

// signedToken is a validationToken and when it was signed.
type signedToken struct {
	token string
	at    time.Time
}

// deliverer drains outboxes into queues and delivers the queues.
type deliverer struct {
	n *Notifier

	drainMu sync.Mutex // one drain at a time, so a flush waits for one in progress

	mu          sync.Mutex
	idle        *sync.Cond // signalled when a delivery ends
	dirty       map[presence.Key]bool
	trim        map[presence.Key]bool
	boxes       map[presence.Key]*userBox
	queues      map[queueKey]*queue
	endpoints   map[string]*endpoint
	swept       time.Time          // when endpoints were last swept
	certs       map[string]subCert // parsed encryption certificates by subscription id
	tokens      map[tokenKey]signedToken
	tokensSwept time.Time // when tokens were last swept
	depth       int
	// inflight counts the busy queues by receiver host: at most perHost
	// each, so a slow receiver holds only that many workers.
	inflight map[string]int
	perHost  int
	// maxQueued bounds depth (drain stops reading outboxes beyond it) and
	// maxPerQueue one subscription's queue (notices beyond it are dropped).
	maxQueued, maxPerQueue int
	queueFull              rateLog       // dropped for a full queue, logged
	queueFullDropped       atomic.Uint64 // and counted (as in the metric)
	outboxFull             rateLog       // dropped for a full outbox, logged
	outboxSeen             uint64        // Stats.OutboxDropped last looked at

	// afterOutboxRead, when set (by tests), runs between a drain's read
	// of an outbox and its queueing of what it read.
	afterOutboxRead func()

	wake     chan struct{} // drain work is waiting
	trimWake chan struct{} // trim work is waiting
	ready    chan *queue   // queues to deliver now
}

func newDeliverer(n *Notifier) *deliverer {
	d := &deliverer{
		n: n, dirty: map[presence.Key]bool{}, trim: map[presence.Key]bool{}, boxes: map[presence.Key]*userBox{},
		queues: map[queueKey]*queue{}, endpoints: map[string]*endpoint{}, certs: map[string]subCert{},
		tokens: map[tokenKey]signedToken{}, inflight: map[string]int{},
		perHost: n.cfg.PerHost, maxQueued: n.cfg.MaxQueued, maxPerQueue: n.cfg.MaxQueuedPerSubscription,
		wake: make(chan struct{}, 1), trimWake: make(chan struct{}, 1), ready: make(chan *queue, 1024),
	}
	d.idle = sync.NewCond(&d.mu)
	n.m.depth = func() float64 {
		d.mu.Lock()
		defer d.mu.Unlock()
		return float64(d.depth)
	}
	return d
}

func (d *deliverer) signal() { poke(d.wake) }

// poke wakes the loop waiting on c, unless it is already due to wake.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// pending marks a user's outbox for draining.
func (d *deliverer) pending(k presence.Key) {
	d.mu.Lock()
	d.dirty[k] = true
	d.mu.Unlock()
	d.signal()
}

// run drains and delivers until ctx is done.
func (d *deliverer) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range d.n.cfg.Workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case q := <-d.ready:
					d.deliver(ctx, q)
				}
			}
		})
	}
	// Trims are durable writes: they run on their own loop, so that
	// waiting for their fsyncs never holds up the draining and dispatching
	// of new changes.
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.trimWake:
				d.trimAll(ctx)
			}
		}
	})
	tick := time.NewTicker(retryScan)
	defer func() {
		tick.Stop()
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
			d.drain(ctx)
		case <-tick.C:
			d.n.lifecycle(ctx)
			d.drain(ctx)
			d.logOutboxDrops(ctx)
		}
		for _, q := range d.due(true) {
			select {
			case d.ready <- q:
			case <-ctx.Done():
				d.unbusy(q)
				return
			}
		}
	}
}

// flush drains every outbox marked pending and delivers every queue that is
// due, waiting for the deliveries to end, until nothing is due.
func (d *deliverer) flush(ctx context.Context) error {
	for {
		d.drain(ctx)
		qs := d.due(true)
		if len(qs) == 0 {
			d.mu.Lock()
			for d.anyBusy() && ctx.Err() == nil {
				d.idle.Wait()
			}
			d.mu.Unlock()
			d.drain(ctx)
			if len(d.due(false)) == 0 {
				d.trimAll(ctx)
				return ctx.Err()
			}
			continue
		}
		var wg sync.WaitGroup
		for _, q := range qs {
			wg.Go(func() { d.deliver(ctx, q) })
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

func (d *deliverer) anyBusy() bool {
	for _, q := range d.queues {
		if q.busy {
			return true
		}
	}
	return false
}

// due returns the queues that can be delivered now; with take, it marks
// them busy, for the caller to deliver, taking for each a delivery slot of
// its receiver's host: a queue whose host has perHost deliveries in flight
// waits (it is not returned), so one receiver never holds more than
// perHost workers, whoever else is waiting. Queues come in map order,
// which is random: no subscription of a host is always last.
func (d *deliverer) due(take bool) []*queue {
	now := d.n.clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []*queue
	for _, q := range d.queues {
		if q.busy || len(q.items) == 0 || q.next.After(now) {
			continue
		}
		if take {
			if d.inflight[q.host] >= d.perHost {
				continue
			}
			d.inflight[q.host]++
			q.busy, q.slotHost = true, q.host
		}
		out = append(out, q)
	}
	return out
}

// setIdle ends q's delivery: not busy, its host's slot given back; d.mu
// held.
func (d *deliverer) setIdle(q *queue) {
	if !q.busy {
		return
	}
	q.busy = false
	if d.inflight[q.slotHost]--; d.inflight[q.slotHost] <= 0 {
		delete(d.inflight, q.slotHost)
	}
}

func (d *deliverer) unbusy(q *queue) {
	d.mu.Lock()
	d.setIdle(q)
	d.idle.Broadcast()
	d.mu.Unlock()
}

// drain moves new notices from the outboxes marked pending into the queues
// of their subscriptions, and marks those outboxes for trimming (an outbox
// whose notices nobody subscribes to is trimmed at once).
func (d *deliverer) drain(ctx context.Context) {
	d.drainMu.Lock()
	defer d.drainMu.Unlock()
	d.mu.Lock()
	dirty := d.dirty
	d.dirty = map[presence.Key]bool{}
	d.mu.Unlock()
	if len(dirty) == 0 {
		return
	}
	// With a shared subscription store, another node may have created the
	// subscription that made these notices: the index must hold it before
	// the outboxes are read, or their notices would be trimmed as
	// watched by nobody. The notices were written after that subscription
	// was stored, so a sync now sees it. When the store cannot say, the
	// outboxes wait for the next tick.
	if err := d.n.sync(ctx); err != nil {
		d.n.logger.ErrorContext(ctx, "reading the subscriptions before draining outboxes", "err", err)
		d.mu.Lock()
		for k := range dirty {
			d.dirty[k] = true
		}
		d.mu.Unlock()
		return
	}
	for k := range dirty {
		// The box exists, and is marked as being read, before the outbox
		// is read: a trim that ends meanwhile must not drop it, or the
		// notices it just trimmed, still in what was read, would be
		// queued again as new.
		d.mu.Lock()
		if d.depth >= d.maxQueued {
			// The queues are full: the notices wait in the user's
			// durable outbox until deliveries make room.
			d.dirty[k] = true
			d.mu.Unlock()
			continue
		}
		box := d.boxes[k]
		if box == nil {
			box = &userBox{refs: map[uint64]int{}}
			d.boxes[k] = box
		}
		box.reading++
		d.mu.Unlock()
		notices, err := d.n.svc.Outbox(ctx, k)
		if d.afterOutboxRead != nil {
			d.afterOutboxRead()
		}
		if err != nil {
			d.mu.Lock()
			box.reading--
			d.mu.Unlock()
			d.n.logger.ErrorContext(ctx, "reading an outbox", "user", k.String(), "err", err)
			d.pending(k)
			continue
		}
		subs := d.n.subscribers(k)
		full := 0
		d.mu.Lock()
		box.reading--
		if box.handoff > 0 {
			// This node owns the user again: what it handed over is its
			// to deliver once more, from the outbox.
			box.enqueued = min(box.enqueued, box.handoff-1)
			box.handoff = 0
		}
		for _, nt := range notices {
			if nt.Seq <= box.enqueued {
				continue
			}
			box.enqueued = nt.Seq
			for _, s := range subs {
				if !nt.At.Before(s.ExpirationDateTime) {
					// The change came after the subscription expired (a
					// clock advance crossed both): it is not notified.
					continue
				}
				if !d.enqueue(s.ID, false, item{key: k, notice: nt}, hostOf(s.NotificationURL)) {
					full++
					continue
				}
				box.refs[nt.Seq]++
			}
		}
		d.trim[k] = true
		d.mu.Unlock()
		if full > 0 {
			d.queueFullDrops(ctx, full)
		}
		poke(d.trimWake)
	}
}

// trimAll trims the outboxes marked for trimming: delivered notices leave
// them. Trims are store writes: they run side by side, so they share the
// store's group commits instead of each waiting for its own fsync.
func (d *deliverer) trimAll(ctx context.Context) {
	d.mu.Lock()
	trim := d.trim
	d.trim = map[presence.Key]bool{}
	d.mu.Unlock()
	keys := make(chan presence.Key)
	var wg sync.WaitGroup
	for range min(trimWorkers, len(trim)) {
		wg.Go(func() {
			for k := range keys {
				d.trimOutbox(ctx, k)
			}
		})
	}
	for k := range trim {
		keys <- k
	}
	close(keys)
	wg.Wait()
}

// enqueue adds it to the queue of subscription id, whose receiver is
// host, and reports whether it did: a queue holds at most maxPerQueue
// items; d.mu held.
func (d *deliverer) enqueue(id string, lifecycle bool, it item, host string) bool {
	k := queueKey{id, lifecycle}
	q := d.queues[k]
	if q == nil {
		q = &queue{subID: id, lifecycle: lifecycle}
		d.queues[k] = q
	}
	if len(q.items) >= d.maxPerQueue {
		return false
	}
	q.host = host
	q.items = append(q.items, it)
	d.depth++
	return true
}

// trimOutbox removes from k's outbox every notice that no delivery waits
// for.
func (d *deliverer) trimOutbox(ctx context.Context, k presence.Key) {
	d.mu.Lock()
	box := d.boxes[k]
	if box == nil {
		d.mu.Unlock()
		return
	}
	upto := box.enqueued
	for seq := range box.refs {
		if seq-1 < upto {
			upto = seq - 1
		}
	}
	if box.handoff > 0 && box.handoff-1 < upto {
		upto = box.handoff - 1
	}
	if upto <= box.trimmed {
		d.forget(k, box)
		d.mu.Unlock()
		return
	}
	box.trimming = true
	d.mu.Unlock()
	err := d.n.svc.TrimOutbox(ctx, k, upto)
	d.mu.Lock()
	box.trimming = false
	if err != nil {
		d.mu.Unlock()
		d.n.logger.ErrorContext(ctx, "trimming an outbox", "user", k.String(), "err", err)
		return
	}
	if upto > box.trimmed {
		box.trimmed = upto
	}
	d.forget(k, box)
	d.mu.Unlock()
}

// forget drops k's box once nothing is queued, left to trim or being read
// for it; d.mu held.
func (d *deliverer) forget(k presence.Key, box *userBox) {
	settled := box.trimmed == box.enqueued || (box.handoff > 0 && box.trimmed+1 >= box.handoff)
	if len(box.refs) == 0 && settled && box.reading == 0 && box.sending == 0 && !box.trimming && d.boxes[k] == box {
		delete(d.boxes, k)
	}
}

// done releases delivered or dropped items; d.mu held.
func (d *deliverer) done(items []item) {
	for _, it := range items {
		d.depth--
		if it.lifecycle != "" {
			continue
		}
		box := d.boxes[it.key]
		if box == nil {
			continue
		}
		if box.refs[it.notice.Seq]--; box.refs[it.notice.Seq] <= 0 {
			delete(box.refs, it.notice.Seq)
			d.trim[it.key] = true
			poke(d.trimWake)
		}
	}
}

// lifecycleEvent queues a lifecycle notification of sub.
func (d *deliverer) lifecycleEvent(sub presence.Subscription, event string) {
	d.mu.Lock()
	ok := d.enqueue(sub.ID, true, item{key: presence.Key{Tenant: sub.Tenant}, lifecycle: event}, hostOf(sub.LifecycleNotificationURL))
	d.mu.Unlock()
	if !ok {
		d.queueFullDrops(context.Background(), 1)
	}
	d.signal()
}

// dropSubscription forgets the queues of a deleted subscription.
func (d *deliverer) dropSubscription(id string) {
	d.mu.Lock()
	for _, lifecycle := range []bool{false, true} {
		if q := d.queues[queueKey{id, lifecycle}]; q != nil {
			d.drop(q)
		}
	}
	delete(d.certs, id)
	d.mu.Unlock()
	d.signal()
}

// drop gives up the items of q, unless it is dropped already, and removes
// it from the queues; d.mu held.
func (d *deliverer) drop(q *queue) {
	if !q.dropped {
		d.done(q.items)
		d.n.m.Dropped.Add(float64(len(q.items)))
	}
	q.items, q.dropped = nil, true
	if k := (queueKey{q.subID, q.lifecycle}); d.queues[k] == q {
		delete(d.queues, k)
	}
}

// deliver POSTs the head of q (up to maxBatch notifications), then records
// the outcome: on success they leave the queue; on failure the queue waits
// for its backoff, and after four hours of failures they are dropped.
func (d *deliverer) deliver(ctx context.Context, q *queue) {
	sub, ok := d.n.subscription(q.subID)
	// An expired subscription is gone even before lifecycle removes it:
	// nothing is sent for it once its expirationDateTime has passed.
	ok = ok && d.n.clock.Now().Before(sub.ExpirationDateTime)
	d.mu.Lock()
	if !ok || q.dropped {
		d.drop(q)
		d.setIdle(q)
		delete(d.certs, q.subID)
		d.idle.Broadcast()
		d.mu.Unlock()
		return
	}
	if d.n.cfg.Owns != nil && !q.lifecycle {
		// Notices of users whose partition moved to another node are
		// that node's to deliver (it finds them in their outboxes).
		d.handOffQueue(q, func(k presence.Key) bool { return !d.n.cfg.Owns(k) })
		if len(q.items) == 0 {
			d.setIdle(q)
			d.idle.Broadcast()
			d.mu.Unlock()
			return
		}
	}
	batch := q.items[:min(len(q.items), maxBatch)]
	batch = batch[:len(batch):len(batch)]
	target := sub.NotificationURL
	if q.lifecycle {
		target = sub.LifecycleNotificationURL
	}
	q.host = hostOf(target) // a PATCH may have moved it
	now := d.n.clock.Now()
	d.sweepEndpoints(now)
	ep := d.endpoints[target]
	if ep == nil {
		ep = &endpoint{since: now}
		d.endpoints[target] = ep
	}
	if now.Sub(ep.since) >= slowFlushPeriod {
		*ep = endpoint{since: now}
	}
	share := ep.slowShare()
	retry := q.attempts > 0
	if share >= slowDelayShare && share < slowDropShare && !q.slowWait {
		// A flagged endpoint gets everything 10 minutes late.
		q.next, q.slowWait = now.Add(slowDelay), true
		d.setIdle(q)
		d.idle.Broadcast()
		d.mu.Unlock()
		return
	}
	// From here to the outcome's record the batch is in flight: a
	// hand-over of its users' partitions waits for it (InFlight).
	d.startSending(q, batch)
	d.mu.Unlock()

	if share >= slowDropShare {
		d.finish(q, batch, true)
		return
	}
	body, err := d.payload(q, sub, batch)
	if err != nil {
		d.n.logger.ErrorContext(ctx, "building a notification", "subscription", sub.ID, "err", err)
		d.finish(q, batch, true)
		return
	}
	if retry {
		d.n.m.Retries.Inc()
	}
	// The backoff counts from the attempt, not from when its answer came:
	// the clock may move while the POST is in flight.
	attemptAt := d.n.clock.Now()
	ctx, logged := d.logAttempt(ctx, q, batch, attemptAt)
	defer logged()
	start := time.Now()
	delivered := d.post(ctx, target, body)
	took := time.Since(start)

	d.mu.Lock()
	ep.count += len(batch)
	if took > slowDelivery {
		ep.slow += len(batch)
	}
	share = ep.slowShare()
	d.mu.Unlock()
	if delivered {
		d.n.m.Deliveries.WithLabelValues("delivered").Inc()
		at := d.n.clock.Now()
		for _, it := range batch {
			if it.lifecycle == "" {
				d.n.m.Latency.Observe(at.Sub(it.notice.At).Seconds())
			}
		}
		d.finish(q, batch, false)
		return
	}
	d.n.m.Deliveries.WithLabelValues("failed").Inc()
	d.mu.Lock()
	now = attemptAt
	if q.attempts == 0 {
		q.firstFail = now
	}
	q.attempts++
	giveUp, backoff, slowWait := afterFailure(q.attempts, now.Sub(q.firstFail), share)
	if giveUp {
		d.mu.Unlock()
		d.n.m.Deliveries.WithLabelValues("dropped").Inc()
		d.finish(q, batch, true)
		return
	}
	q.slowWait = slowWait
	q.next = now.Add(backoff)
	d.endSending(q, batch)
	d.setIdle(q)
	d.idle.Broadcast()
	d.mu.Unlock()
}

// startSending marks batch, the head of q, as in flight; d.mu held.
func (d *deliverer) startSending(q *queue, batch []item) {
	q.sending = len(batch)
	for _, it := range batch {
		if it.lifecycle == "" {
			if box := d.boxes[it.key]; box != nil {
				box.sending++
			}
		}
	}
}

// endSending marks batch, sent by startSending, as no longer in flight;
// d.mu held.
func (d *deliverer) endSending(q *queue, batch []item) {
	if q.sending == 0 {
		return
	}
	q.sending = 0
	for _, it := range batch {
		if it.lifecycle == "" {
			if box := d.boxes[it.key]; box != nil && box.sending > 0 {
				box.sending--
			}
		}
	}
}

// handOffQueue removes from q, past the batch in flight, the notices of
// the users gone says this node no longer owns: they stay in those users'
// outboxes for their new owner, and are not trimmed here; d.mu held.
func (d *deliverer) handOffQueue(q *queue, gone func(presence.Key) bool) {
	kept := q.items[:q.sending]
	for _, it := range q.items[q.sending:] {
		if it.lifecycle != "" || !gone(it.key) {
			kept = append(kept, it)
			continue
		}
		d.depth--
		box := d.boxes[it.key]
		if box == nil {
			continue
		}
		if box.handoff == 0 || it.notice.Seq < box.handoff {
			box.handoff = it.notice.Seq
		}
		if box.refs[it.notice.Seq]--; box.refs[it.notice.Seq] <= 0 {
			delete(box.refs, it.notice.Seq)
		}
		d.trim[it.key] = true
	}
	clear(q.items[len(kept):])
	q.items = kept
	poke(d.trimWake)
}

// handOff removes from every queue the notices of the users gone says this
// node no longer owns (see handOffQueue).
func (d *deliverer) handOff(gone func(presence.Key) bool) {
	d.mu.Lock()
	for _, q := range d.queues {
		if !q.lifecycle {
			d.handOffQueue(q, gone)
		}
	}
	d.mu.Unlock()
}

// inFlight returns the users with notices in a POST now or an outbox trim
// waiting or being written.
func (d *deliverer) inFlight() []presence.Key {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ks []presence.Key
	for k, box := range d.boxes {
		if box.sending > 0 || box.trimming || d.trim[k] {
			ks = append(ks, k)
		}
	}
	return ks
}

// afterFailure is the rule for a failed delivery, given the attempts made
// (this one included), how long since the first of them failed, and the
// endpoint's share of slow deliveries: give up after 4 hours of failures or
// once the endpoint is slow enough to drop; else retry after a backoff of
// 10 s doubling to 10 min, and at least 10 min (slowWait) for an endpoint
// flagged slow.
func afterFailure(attempts int, failingFor time.Duration, slowShare float64) (giveUp bool, backoff time.Duration, slowWait bool) {
	if failingFor >= giveUpAfter || slowShare >= slowDropShare {
		return true, 0, false
	}
	backoff = min(firstBackoff<<min(attempts-1, 10), maxBackoff)
	if slowShare >= slowDelayShare {
		return false, max(backoff, slowDelay), true
	}
	return false, backoff, false
}

// sweepEndpoints forgets, once a counting period, the endpoints whose
// counters have not been reset for a whole period: the next delivery to
// one would reset them anyway, so forgetting changes nothing but the
// memory held for URLs no longer used; d.mu held.
func (d *deliverer) sweepEndpoints(now time.Time) {
	if now.Sub(d.swept) < slowFlushPeriod && !now.Before(d.swept) {
		return
	}
	d.swept = now
	for url, ep := range d.endpoints {
		if now.Sub(ep.since) >= slowFlushPeriod {
			delete(d.endpoints, url)
		}
	}
}

// finish removes batch from the head of q, counted as dropped or delivered.
func (d *deliverer) finish(q *queue, batch []item, dropped bool) {
	if dropped {
		d.n.m.Dropped.Add(float64(len(batch)))
	}
	d.mu.Lock()
	d.endSending(q, batch)
	if !q.dropped && len(q.items) >= len(batch) {
		q.items = q.items[len(batch):]
		d.done(batch)
	}
	q.attempts, q.next, q.firstFail, q.slowWait = 0, time.Time{}, time.Time{}, false
	d.setIdle(q)
	d.idle.Broadcast()
	d.mu.Unlock()
	d.signal()
}

// post sends one webhook request and reports whether a 2xx answered it in
// time.
func (d *deliverer) post(ctx context.Context, target string, body []byte) bool {
	ctx, cancel := context.WithTimeout(ctx, d.n.cfg.DeliveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := d.n.cfg.Client.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode <= 299
}

// payload builds the changeNotificationCollection of a batch.
func (d *deliverer) payload(q *queue, sub presence.Subscription, batch []item) ([]byte, error) {
	exp := formatTime(sub.ExpirationDateTime)
	if q.lifecycle {
		type lifecycleItem struct {
			SubscriptionID                 string `json:"subscriptionId"`
			SubscriptionExpirationDateTime string `json:"subscriptionExpirationDateTime"`
			TenantID                       string `json:"tenantId"`
			ClientState                    string `json:"clientState,omitempty"`
			LifecycleEvent                 string `json:"lifecycleEvent"`
		}
		out := struct {
			Value []lifecycleItem `json:"value"`
		}{}
		for _, it := range batch {
			out.Value = append(out.Value, lifecycleItem{sub.ID, exp, sub.Tenant, sub.ClientState, it.lifecycle})
		}
		return json.Marshal(out)
	}
	var cert *EncryptionCert
	if sub.IncludeResourceData {
		var err error
		if cert, err = d.encryptionCert(q, sub); err != nil {
			return nil, err
		}
	}
	out := struct {
		Value            []changeItem `json:"value"`
		ValidationTokens []string     `json:"validationTokens,omitempty"`
	}{}
	for _, it := range batch {
		u := it.key.User
		ci := changeItem{
			SubscriptionID: sub.ID, ClientState: sub.ClientState, ChangeType: "updated", TenantID: sub.Tenant,
			OrganizationID: sub.Tenant, Resource: "communications/presences/" + u, SubscriptionExpirationDateTime: exp,
			ResourceData: resourceData{ODataID: "users/" + u + "/presence", ODataType: "#microsoft.graph.presence", ID: u},
		}
		if cert != nil {
			data, _ := json.Marshal(richData{ODataID: ci.ResourceData.ODataID, ODataType: ci.ResourceData.ODataType, ID: u,
				Availability: it.notice.Pair.Availability, Activity: it.notice.Pair.Activity,
				SequenceNumber: presence.FormatSequence(it.notice.Seq), WorkLocation: newRichWorkLocation(it.notice.WorkLocation())})
			ec, err := Encrypt(cert, sub.EncryptionCertificateID, data, rand.Reader)
			if err != nil {
				return nil, err
			}
			ci.EncryptedContent = &ec
		}
		out.Value = append(out.Value, ci)
	}
	if cert != nil && d.n.cfg.Signer != nil {
		tok, err := d.validationToken(sub.ApplicationID, sub.Tenant)
		if err != nil {
			return nil, err
		}
		out.ValidationTokens = []string{tok}
	}
	return json.Marshal(out)
}

// encryptionCert returns the parsed encryption certificate of sub, whose
// queue q is being delivered: parsed at its first delivery and again only
// once a PATCH has rotated it.
func (d *deliverer) encryptionCert(q *queue, sub presence.Subscription) (*EncryptionCert, error) {
	d.mu.Lock()
	c, ok := d.certs[sub.ID]
	d.mu.Unlock()
	if ok && c.raw == sub.EncryptionCertificate {
		return c.cert, nil
	}
	cert, err := ParseEncryptionCertificate(sub.EncryptionCertificate)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	// A queue dropped meanwhile (its subscription deleted or expired) has
	// had its certificate forgotten: keep nothing for it.
	if !q.dropped {
		d.certs[sub.ID] = subCert{raw: sub.EncryptionCertificate, cert: cert}
	}
	d.mu.Unlock()
	return cert, nil
}

// validationToken returns a validationToken for the rich notifications of
// app in tenant: the one signed for them within tokenReuse, or a new one.
// Validation tokens use the real clock, as their receivers do.
func (d *deliverer) validationToken(app, tenant string) (string, error) {
	now := time.Now()
	k := tokenKey{app, tenant}
	d.mu.Lock()
	t, ok := d.tokens[k]
	d.mu.Unlock()
	if ok && now.Sub(t.at) < tokenReuse && !now.Before(t.at) {
		return t.token, nil
	}
	tok, err := d.n.cfg.Signer.ValidationToken(app, tenant, d.n.cfg.Issuer, now, 0)
	if err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Once a period, the tokens no longer reused are forgotten, so that
	// the map holds only the pairs notified lately.
	if now.Sub(d.tokensSwept) >= tokenReuse || now.Before(d.tokensSwept) {
		d.tokensSwept = now
		for k, t := range d.tokens {
			if now.Sub(t.at) >= tokenReuse {
				delete(d.tokens, k)
			}
		}
	}
	d.tokens[k] = signedToken{token: tok, at: now}
	return tok, nil
}

type changeItem struct {
	SubscriptionID                 string            `json:"subscriptionId"`
	ClientState                    string            `json:"clientState,omitempty"`
	ChangeType                     string            `json:"changeType"`
	TenantID                       string            `json:"tenantId"`
	OrganizationID                 string            `json:"organizationId"`
	Resource                       string            `json:"resource"`
	SubscriptionExpirationDateTime string            `json:"subscriptionExpirationDateTime"`
	ResourceData                   resourceData      `json:"resourceData"`
	EncryptedContent               *EncryptedContent `json:"encryptedContent,omitempty"`
}

type resourceData struct {
	ODataID   string `json:"@odata.id"`
	ODataType string `json:"@odata.type"`
	ID        string `json:"id"`
}

// richData is the encrypted resource data: the presence that changed, with
// its sequenceNumber so receivers can order and de-duplicate.
type richData struct {
	ODataID        string `json:"@odata.id"`
	ODataType      string `json:"@odata.type"`
	ID             string `json:"id"`
	Availability   string `json:"availability"`
	Activity       string `json:"activity"`
	SequenceNumber string `json:"sequenceNumber"`
	// WorkLocation is the user's work location at the change.
	WorkLocation richWorkLocation `json:"workLocation"`
}

// richWorkLocation is a userWorkLocation; an empty place is null.
type richWorkLocation struct {
	WorkLocationType string  `json:"workLocationType"`
	Source           string  `json:"source"`
	PlaceID          *string `json:"placeId"`
}

func newRichWorkLocation(w presence.WorkLocation) richWorkLocation {
	r := richWorkLocation{WorkLocationType: w.Type, Source: w.Source}
	if w.PlaceID != "" {
		r.PlaceID = &w.PlaceID
	}
	return r
}

// formatTime renders an instant as Graph does: UTC with seven fractional
// digits.
func formatTime(t time.Time) string {
	return t.UTC().Format(presence.GraphTimeLayout)
}
