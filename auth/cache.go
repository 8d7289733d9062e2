package auth

import (
	"context"
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
)

// Cache sizing. A verified token stays cached until it expires (plus the
// skew) or is evicted to make room. The entries are spread over shards, each
// with its own lock and its own share of the limits.
const (
	// DefaultCacheSize is the number of verified tokens a Verifier keeps
	// when Config.CacheSize is zero.
	DefaultCacheSize = 100_000
	// cacheBytes bounds the bytes of token text the cache holds, so that a
	// full cache of large tokens stays well inside the memory budget.
	cacheBytes = 128 << 20
	// cacheShards is the number of independently locked parts of the cache.
	cacheShards = 64
	// evictScan is how many entries an insertion into a full shard looks at
	// for an expired one before it evicts whichever entry it saw first.
	evictScan = 16
)

// cache holds the Principals of verified tokens, keyed by a keyed hash of
// the raw token; an entry keeps the token itself, which a lookup compares in
// full, so a hash collision can never serve another token's Principal. It
// also makes concurrent first uses of one token wait for a single
// verification.
type cache struct {
	seed   maphash.Seed
	shards [cacheShards]shard
}

type shard struct {
	mu       sync.RWMutex
	entries  map[uint64]entry
	inflight map[uint64]*call
	bytes    int
	maxLen   int
	maxBytes int
}

type entry struct {
	token     string
	principal presence.Principal
	until     int64 // Unix nanoseconds after which the entry is not served
}

// call is one verification in progress that other callers of the same token
// wait for.
type call struct {
	token     string
	done      chan struct{}
	principal presence.Principal
	err       error
}

func newCache(size int) *cache {
	if size <= 0 {
		size = DefaultCacheSize
	}
	c := &cache{seed: maphash.MakeSeed()}
	for i := range c.shards {
		s := &c.shards[i]
		s.entries = make(map[uint64]entry)
		s.inflight = make(map[uint64]*call)
		s.maxLen = max(1, size/cacheShards)
		s.maxBytes = cacheBytes / cacheShards
	}
	return c
}

func (c *cache) shard(h uint64) *shard {
	return &c.shards[h%cacheShards]
}

// get returns the cached Principal of raw when it is still valid at now.
func (c *cache) get(raw string, now time.Time) (presence.Principal, bool) {
	h := maphash.String(c.seed, raw)
	s := c.shard(h)
	s.mu.RLock()
	e, ok := s.entries[h]
	s.mu.RUnlock()
	if !ok || e.token != raw {
		return presence.Principal{}, false
	}
	if now.UnixNano() > e.until {
		s.mu.Lock()
		if cur, ok := s.entries[h]; ok && cur.token == raw && now.UnixNano() > cur.until {
			s.remove(h, cur)
		}
		s.mu.Unlock()
		return presence.Principal{}, false
	}
	return e.principal, true
}

// verifyFunc verifies a token the cache does not hold. On success it returns
// the Principal and the instant after which it must not be served.
type verifyFunc func() (presence.Principal, time.Time, error)

// do returns the cached Principal of raw, or runs verify once for all
// concurrent callers of raw and caches a successful result.
func (c *cache) do(ctx context.Context, raw string, now func() time.Time, verify verifyFunc) (presence.Principal, error) {
	h := maphash.String(c.seed, raw)
	s := c.shard(h)
	for {
		s.mu.Lock()
		if e, ok := s.entries[h]; ok && e.token == raw && now().UnixNano() <= e.until {
			s.mu.Unlock()
			return e.principal, nil
		}
		cl, ok := s.inflight[h]
		if !ok {
			break // s.mu is held
		}
		s.mu.Unlock()
		if cl.token != raw {
			// Another token with the same hash is being verified: do not
			// wait for it, and do not share its result.
			p, _, err := verify()
			return p, err
		}
		select {
		case <-cl.done:
		case <-ctx.Done():
			return presence.Principal{}, tokenError(messageInvalid, ctx.Err())
		}
		if cl.err == nil {
			return cl.principal, nil
		}
		if ctx.Err() == nil && (errors.Is(cl.err, context.Canceled) || errors.Is(cl.err, context.DeadlineExceeded)) {
			continue // the verifying caller gave up; this one has not
		}
		return presence.Principal{}, cl.err
	}
	cl := &call{token: raw, done: make(chan struct{}), err: tokenError(messageInvalid, errVerifyAbandoned)}
	s.inflight[h] = cl
	s.mu.Unlock()

	// The deferred function also runs if verify panics, so that the callers
	// waiting for cl are released with its initial error.
	var until time.Time
	defer func() {
		s.mu.Lock()
		if s.inflight[h] == cl {
			delete(s.inflight, h)
		}
		if t := now(); cl.err == nil && until.After(t) {
			s.put(h, raw, cl.principal, until, t)
		}
		s.mu.Unlock()
		close(cl.done)
	}()
	p, u, err := verify()
	cl.principal, cl.err, until = p, err, u
	return p, err
}

// put stores a verified token, evicting entries when the shard is full. The
// caller holds s.mu.
func (s *shard) put(h uint64, raw string, p presence.Principal, until, now time.Time) {
	if len(raw) > s.maxBytes {
		return
	}
	if old, ok := s.entries[h]; ok {
		s.remove(h, old)
	}
	for len(s.entries) > 0 && (len(s.entries) >= s.maxLen || s.bytes+len(raw) > s.maxBytes) {
		s.evict(now)
	}
	raw = strings.Clone(raw) // do not pin whatever buffer raw was cut from
	s.entries[h] = entry{token: raw, principal: p, until: until.UnixNano()}
	s.bytes += len(raw)
}

// evict removes the expired entries among the first few it looks at or,
// when none of them has expired, the first one. Go's map iteration starts at
// a random place, so that is a cheap random eviction. The caller holds s.mu.
func (s *shard) evict(now time.Time) {
	n := now.UnixNano()
	var first uint64
	seen, removed := 0, 0
	for h, e := range s.entries {
		if seen == 0 {
			first = h
		}
		if n > e.until {
			s.remove(h, e)
			removed++
		}
		seen++
		if seen == evictScan {
			break
		}
	}
	if removed == 0 && seen > 0 {
		s.remove(first, s.entries[first])
	}
}

// remove deletes one entry. The caller holds s.mu.
func (s *shard) remove(h uint64, e entry) {
	delete(s.entries, h)
	s.bytes -= len(e.token)
}

// len returns the number of cached tokens.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.entries)
		s.mu.RUnlock()
	}
	return n
}
