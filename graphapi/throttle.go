package graphapi

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// throttleWindow is Graph's presence throttling window.
const throttleWindow = 30 * time.Second

// limiter is a sliding-window request limiter per (app, tenant): a request
// is admitted when fewer than limit requests were admitted in the window
// before it. It keeps the admission instants of each bucket in a ring.
type limiter struct {
	limit  atomic.Int64
	seed   maphash.Seed
	shards [64]limiterShard
}

type limiterShard struct {
	mu      sync.Mutex
	buckets map[bucketKey]*ring
	// swept is when the shard last dropped its idle buckets: those with no
	// admission in the window, which are the same as no bucket at all.
	swept time.Time
}

type bucketKey struct{ app, tenant string }

// ring holds the last admitted instants of one bucket, oldest first.
type ring struct {
	times []time.Time
	start int
	n     int
}

func newLimiter(limit int) *limiter {
	l := &limiter{seed: maphash.MakeSeed()}
	l.limit.Store(int64(limit))
	for i := range l.shards {
		l.shards[i].buckets = make(map[bucketKey]*ring)
	}
	return l
}

// setLimit changes the budget; 0 turns throttling off.
func (l *limiter) setLimit(n int) { l.limit.Store(int64(n)) }

// allow admits one request of (app, tenant) at now, or returns how many
// whole seconds (at least one) until one would be admitted.
func (l *limiter) allow(app, tenant string, now time.Time) (ok bool, retryAfter int) {
	limit := int(l.limit.Load())
	if limit <= 0 {
		return true, 0
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	h.WriteString(app)
	h.WriteString(tenant)
	sh := &l.shards[h.Sum64()%uint64(len(l.shards))]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cutoff := now.Add(-throttleWindow)
	if now.Sub(sh.swept) >= throttleWindow || now.Before(sh.swept) {
		sh.sweep(cutoff)
		sh.swept = now
	}
	k := bucketKey{app, tenant}
	r := sh.buckets[k]
	if r == nil {
		r = &ring{}
		sh.buckets[k] = r
	}
	r.resize(limit)
	for r.n > 0 && !r.times[r.start].After(cutoff) {
		r.start = (r.start + 1) % len(r.times)
		r.n--
	}
	if r.n >= limit {
		wait := r.times[r.start].Add(throttleWindow).Sub(now)
		secs := int((wait + time.Second - 1) / time.Second)
		return false, max(secs, 1)
	}
	r.times[(r.start+r.n)%len(r.times)] = now
	r.n++
	return true, 0
}

// resize makes room for limit entries, keeping the newest.
func (r *ring) resize(limit int) {
	if len(r.times) == limit {
		return
	}
	keep := min(r.n, limit)
	times := make([]time.Time, limit)
	for i := 0; i < keep; i++ {
		times[i] = r.times[(r.start+r.n-keep+i)%len(r.times)]
	}
	r.times, r.start, r.n = times, 0, keep
}

// sweep drops the buckets with no admission after cutoff, so that memory
// follows the (app, tenant) pairs active in the last window rather than
// every pair ever seen. Each shard sweeps at most once a window, so the
// cost is a constant per admitted request on average.
func (sh *limiterShard) sweep(cutoff time.Time) {
	for k, r := range sh.buckets {
		if r.n == 0 || !r.times[(r.start+r.n-1)%len(r.times)].After(cutoff) {
			delete(sh.buckets, k)
		}
	}
}

// buckets counts the buckets held, for tests.
func (l *limiter) buckets() int {
	n := 0
	for i := range l.shards {
		sh := &l.shards[i]
		sh.mu.Lock()
		n += len(sh.buckets)
		sh.mu.Unlock()
	}
	return n
}
