// Package statemap is the in-memory serving copy of every user's
// presence.State, shared by the memory store and the durable file store.
//
// A Map has three parts:
//
//   - A sharded map from presence.Key to State. Each of the 4096 shards has
//     its own sync.RWMutex, so a read takes one shard's read lock at a time
//     and never waits for a writer of another shard.
//   - A writer lock per shard (the "stripe"), taken with Lock and released
//     with Unlock. A store holds it across a whole read-modify-write,
//     including the durable write, so that the updates of one user are
//     serialised while different users proceed in parallel (two users share
//     a stripe with probability 1/4096). Lock honours the context. The
//     stripe lock is not tied to a goroutine: any goroutine may Unlock it,
//     which lets a store hand a pending write over to its writer goroutine.
//   - A due index: one min-heap of (Due instant, entry) pairs, 16 bytes per
//     pending instant, with lazy deletion. An update that changes a user's
//     Due pushes a new pair and leaves the old one in place; a pair whose
//     instant no longer equals its user's current Due is dropped when it
//     reaches the top. When stale pairs outnumber live ones the heap is
//     filtered in place, so it stays within a constant factor of the number
//     of users with a pending instant. No timer or goroutine exists per user.
//
// # Due semantics
//
// Due(now, limit) returns, earliest first, up to limit keys whose current
// State.Due is non-zero and not after now. It does not consume them: a key
// stays due, and is returned again by later calls, until a Publish changes
// its Due (to a later instant, or to zero). The scheduler is expected to
// Update every key it is given, which sets a new Due. Within one call a key
// is returned at most once, and the call does a bounded amount of work
// (each heap pair is examined at most once), so a key that stays due is
// never a hot loop inside Due; it is merely returned again next time. Two
// concurrent callers may be handed the same key.
//
// # Lock order
//
// A stripe (Lock) is taken before a shard's mu (Snapshot, and stores that
// Publish under a stripe). Publish releases the shard's mu before it takes
// the due index's mutex; Due holds only the due index's mutex and reads the
// users' current instants through atomics. So no goroutine ever waits for a
// shard's mu while holding the due index's mutex, or the reverse.
package statemap

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	presence "github.com/presenced/presenced"
)

// shardCount is the number of shards and stripes; a power of two.
const shardCount = 4096

// noDue is the due value of a user with no pending instant.
const noDue = math.MinInt64

// Map is the in-memory copy of every user's State. The zero Map is not
// usable; call New. A Map is safe for concurrent use.
type Map struct {
	seed   maphash.Seed
	shards [shardCount]shard
	due    dueIndex
	size   atomic.Int64
}

type shard struct {
	// wlock is the stripe (writer) lock: a semaphore of capacity one, so it
	// can be acquired with a context and released from any goroutine.
	wlock chan struct{}
	mu    sync.RWMutex
	m     map[presence.Key]*entry
}

// entry is one user's record. state is guarded by the shard's mu; due
// mirrors state.Due for the due index and is read without shard locks.
type entry struct {
	key   presence.Key
	state presence.State
	due   atomic.Int64
	// mark is used by the due index to de-duplicate; guarded by due.mu.
	mark uint64
}

// New returns an empty Map.
func New() *Map {
	m := &Map{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].wlock = make(chan struct{}, 1)
		m.shards[i].m = make(map[presence.Key]*entry)
	}
	return m
}

func (m *Map) shard(k presence.Key) *shard {
	var h maphash.Hash
	h.SetSeed(m.seed)
	h.WriteString(k.Tenant)
	h.WriteByte(0)
	h.WriteString(k.User)
	return &m.shards[h.Sum64()&(shardCount-1)]
}

// Lock acquires the stripe lock of key, waiting until it is free or ctx
// ends. It returns ctx's error, unwrapped, if ctx ended first (or had
// already ended). Holding the stripe lock of a key is what makes a
// read-modify-write of that key atomic; it does not block readers.
func (m *Map) Lock(ctx context.Context, key presence.Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := m.shard(key)
	select {
	case sh.wlock <- struct{}{}:
		return nil
	default:
	}
	select {
	case sh.wlock <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Unlock releases the stripe lock of key. It may be called from a goroutine
// other than the one that called Lock. Unlocking a stripe that is not
// locked panics.
func (m *Map) Unlock(key presence.Key) {
	select {
	case <-m.shard(key).wlock:
	default:
		panic("statemap: Unlock of an unlocked stripe")
	}
}

// Load returns a deep copy of the State of key: the zero State if key was
// never published.
func (m *Map) Load(key presence.Key) presence.State {
	sh := m.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if e := sh.m[key]; e != nil {
		return e.state.Clone()
	}
	return presence.State{}
}

// Get returns deep copies of the States of users in tenant, in order;
// duplicates are answered once per occurrence.
func (m *Map) Get(tenant string, users []string) []presence.State {
	out := make([]presence.State, len(users))
	for i, u := range users {
		out[i] = m.Load(presence.Key{Tenant: tenant, User: u})
	}
	return out
}

// Publish stores a deep copy of s as the State of key and indexes its Due.
// The caller must hold key's stripe lock (or otherwise be the only writer
// of key), so that publications of one key are ordered.
func (m *Map) Publish(key presence.Key, s presence.State) {
	s = s.Clone()
	newDue := dueNanos(s.Due)
	sh := m.shard(key)
	sh.mu.Lock()
	e := sh.m[key]
	if e == nil {
		e = &entry{key: key}
		e.due.Store(noDue)
		sh.m[key] = e
		m.size.Add(1)
	}
	e.state = s
	oldDue := e.due.Swap(newDue)
	sh.mu.Unlock()
	if oldDue != newDue {
		m.due.changed(e, oldDue, newDue)
	}
}

// Due returns, earliest Due first, up to limit keys whose State.Due is not
// zero and not after now. A limit of zero or less returns nil. Returned keys
// stay due until their Due is changed by a Publish; see the package doc.
func (m *Map) Due(now time.Time, limit int) []presence.Key {
	if limit <= 0 {
		return nil
	}
	return m.due.popDue(dueNanos(now), limit)
}

// Len returns the number of keys ever published.
func (m *Map) Len() int { return int(m.size.Load()) }

// DueLen returns the number of pairs in the due index, stale ones included;
// for tests and metrics.
func (m *Map) DueLen() int {
	m.due.mu.Lock()
	defer m.due.mu.Unlock()
	return len(m.due.h)
}

// Snapshot calls fn with every published key and a deep copy of its State,
// one shard at a time, in no particular order. For each shard it first
// takes the shard's stripe lock (waiting for any write in progress there to
// finish and be published), copies the shard, releases the lock, and only
// then calls fn; so every write whose stripe lock was released before
// Snapshot reached its shard is included. It stops at the first error from
// fn or ctx and returns it.
func (m *Map) Snapshot(ctx context.Context, fn func(presence.Key, presence.State) error) error {
	type kv struct {
		k presence.Key
		s presence.State
	}
	var buf []kv
	for i := range m.shards {
		sh := &m.shards[i]
		select {
		case sh.wlock <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		sh.mu.RLock()
		buf = buf[:0]
		for k, e := range sh.m {
			buf = append(buf, kv{k, e.state.Clone()})
		}
		sh.mu.RUnlock()
		<-sh.wlock
		for _, x := range buf {
			if err := fn(x.k, x.s); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxDueSeconds bounds the instants whose Unix nanoseconds fit in an int64.
const maxDueSeconds = math.MaxInt64/int64(time.Second) - 1

// dueNanos converts a Due instant to the index's int64: noDue for the zero
// time, otherwise Unix nanoseconds saturated to the representable range.
func dueNanos(t time.Time) int64 {
	if t.IsZero() {
		return noDue
	}
	switch s := t.Unix(); {
	case s < -maxDueSeconds:
		return math.MinInt64 + 1
	case s > maxDueSeconds:
		return math.MaxInt64
	}
	return t.UnixNano()
}
