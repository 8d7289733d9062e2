package graphapi

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// throttleWindow is Graph's presence throttling window.
const throttleWindow = 30 * time.Second

// Budget is a throttling budget: at most Limit requests in any Window.
type Budget struct {
	Limit  int
	Window time.Duration
}

// Limiter keeps the request budgets of (app, tenant) pairs. Allow admits
// one request of (app, tenant) at now under b, or says how long until one
// would be admitted. An error means the limiter cannot decide now (its
// backing store is unreachable, say); the request is then answered 503.
// The default is the in-memory MemoryLimiter; a limiter shared by several
// nodes (on Redis, say) plugs in through Config.Limiter.
type Limiter interface {
	Allow(ctx context.Context, app, tenant string, now time.Time, b Budget) (retryAfter time.Duration, ok bool, err error)
}

// windowSlots is how many slots a window is cut into: the admissions of
// one slot leave the window together, when the slot's end is a window old.
const windowSlots = 30

// MemoryLimiter is the in-memory Limiter: per (app, tenant) a sliding
// window of windowSlots counters (one per second of a 30 s window) in about
// 200 bytes, whatever the budget. The slots of a pair start at its first
// admission after an idle window, so a burst made at one instant leaves the
// window exactly one window later; an admission later in a slot leaves with
// the slot's first, up to one slot (1 s) early: the client's gain, never
// its loss. Pairs idle for a whole window are reclaimed.
type MemoryLimiter struct {
	seed   maphash.Seed
	shards [64]limiterShard
}

var _ Limiter = (*MemoryLimiter)(nil)

type limiterShard struct {
	mu      sync.Mutex
	buckets map[bucketKey]*window
	// swept is when the shard last dropped its idle buckets.
	swept time.Time
}

type bucketKey struct{ app, tenant string }

// window counts the admissions of one pair by slot: slot j covers
// [base+j*slot, base+(j+1)*slot), and count[j%windowSlots] holds slot j for
// the windowSlots slots up to cur.
type window struct {
	base  int64 // Unix nanoseconds
	slot  int64 // nanoseconds
	cur   int64 // the newest slot counted
	total uint32
	count [windowSlots]uint32
}

// NewMemoryLimiter returns an empty in-memory limiter.
func NewMemoryLimiter() *MemoryLimiter {
	l := &MemoryLimiter{seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].buckets = make(map[bucketKey]*window)
	}
	return l
}

// Allow implements Limiter; it never fails. A Budget with a Limit of 0 or
// less admits everything.
func (l *MemoryLimiter) Allow(_ context.Context, app, tenant string, now time.Time, b Budget) (time.Duration, bool, error) {
	if b.Limit <= 0 {
		return 0, true, nil
	}
	if b.Window <= 0 {
		b.Window = throttleWindow
	}
	slot := max(int64(b.Window/windowSlots), 1)
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(app)
	h.WriteByte(0)
	h.WriteString(tenant)
	sh := &l.shards[h.Sum64()%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if now.Sub(sh.swept) >= b.Window || now.Before(sh.swept) {
		sh.sweep(now.UnixNano())
		sh.swept = now
	}
	k := bucketKey{app, tenant}
	w := sh.buckets[k]
	if w == nil {
		w = &window{}
		sh.buckets[k] = w
	}
	t := now.UnixNano()
	w.advance(t, slot)
	if w.total < uint32(min(b.Limit, 1<<31)) {
		w.count[w.cur%windowSlots]++
		w.total++
		return 0, true, nil
	}
	return w.retryAfter(t, b.Limit), false, nil
}

// advance moves w to the slot of t (of length slot), dropping the slots
// that left the window; an empty window starts its slots at t.
func (w *window) advance(t, slot int64) {
	if w.slot != slot {
		*w = window{}
	}
	if w.total > 0 && t >= w.base {
		c := (t - w.base) / w.slot
		if c-w.cur >= windowSlots {
			w.total = 0
		} else {
			for j := w.cur + 1; j <= c; j++ {
				w.total -= w.count[j%windowSlots]
				w.count[j%windowSlots] = 0
			}
			w.cur = max(w.cur, c)
		}
	}
	if w.total == 0 {
		*w = window{base: t, slot: slot}
	}
}

// retryAfter is how long from t until fewer than limit admissions are left
// in w.
func (w *window) retryAfter(t int64, limit int) time.Duration {
	left := int64(w.total)
	for j := max(w.cur-windowSlots+1, 0); j <= w.cur; j++ {
		left -= int64(w.count[j%windowSlots])
		if left < int64(limit) {
			return time.Duration(w.base + (j+windowSlots)*w.slot - t)
		}
	}
	return time.Duration(w.base + (w.cur+windowSlots)*w.slot - t)
}

// idle reports whether every admission of w has left the window at t.
func (w *window) idle(t int64) bool {
	return w.total == 0 || t >= w.base+(w.cur+windowSlots)*w.slot
}

// sweep drops the buckets idle at t, so that memory follows the pairs
// active in the last window rather than every pair ever seen. Each shard
// sweeps at most once a window, so the cost is a constant per request on
// average.
func (sh *limiterShard) sweep(t int64) {
	for k, w := range sh.buckets {
		if w.idle(t) {
			delete(sh.buckets, k)
		}
	}
}

// Buckets counts the (app, tenant) pairs held.
func (l *MemoryLimiter) Buckets() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}

// realTimeApp is the app under which a Config.Limiter keeps the second,
// real-time view of a pair's budget when Config.ThrottleRealTime is set.
const realTimeApp = "realtime/"

// retrySeconds turns a wait into Retry-After's whole seconds, at least one.
func retrySeconds(d time.Duration) int {
	return max(int((d+time.Second-1)/time.Second), 1)
}
