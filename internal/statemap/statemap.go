// Package statemap is the in-memory serving copy of every user's
// presence.State, shared by the memory store and the durable file store.
//
// A Map has three parts:
//
//   - A sharded map from presence.Key to the user's State, kept encoded
//     (see AppendState). A read takes no lock and writes no shared memory:
//     each of the 4096 shards keeps a table that is never changed once
//     published (replaced whole, copy on write), holding the entry of every
//     key but the few inserted since, and an entry's encoding is swapped
//     under a version (a sequence lock) that a reader checks. Keys inserted
//     since the table was published wait in a second table under the
//     shard's mutex, and move into a new published table once lookups have
//     had to lock for them often enough to pay for the copy. So concurrent
//     reads of the same users (bulk reads of a team, say) do not take turns
//     at the cache lines of a lock, and never wait for a writer.
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
// # Memory
//
// A user costs about 225 bytes of live heap (some 250 of heap spans) for
// the typical state of one application session and a preferred presence:
// a 64-byte entry (the key, the encoding, the due instant), the encoding
// itself (about 60 bytes: one 64-byte allocation), the user id (48), a
// slot of the shard's map keyed by the key's 64-bit hash (about 35 at the
// maps' usual load) and 16 in the due index. Kept as Go values, the same
// State took 320 bytes (144 in the entry, 112 and 64 for the session and
// the preferred presence), plus its own copies of every string once read
// back from disk: some 750 bytes a user in all.
//
// Publish encodes the State; Load and Get decode it, which costs about
// what the deep copy they made before cost (the same allocations: the
// slices and pointers of the State). Decoding shares strings rather than
// copying them: availabilities, activities and content types are words of
// the encoding's vocabulary; the GUIDs of session ids (application ids),
// and the tenants of the keys, are interned in a table the Map owns
// (bounded, lock-free to read); other strings are slices of the
// encoding. So a million users share a handful of copies of their
// tenant's id, their applications' ids and "Available".
//
// What is stored is the State as a durable store would read it back: its
// times are instants in UTC without monotonic readings, and empty slices
// come back nil (see the format's description in codec.go).
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
// Publish under a stripe); readers take a shard's mu only for a key that is
// not in its published table. Publish releases the shard's mu before it takes
// the due index's mutex; Due holds only the due index's mutex and reads the
// users' current instants through atomics. So no goroutine ever waits for a
// shard's mu while holding the due index's mutex, or the reverse. The
// interning table's mutex is taken last, under a shard's mu or none, and
// nothing is taken under it.
package statemap

import (
	"context"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"math/bits"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

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
	// strs shares the strings many users hold: tenant ids, and the GUIDs
	// of session ids when states are decoded.
	strs interner
}

type shard struct {
	// wlock is the stripe (writer) lock: a semaphore of capacity one, so it
	// can be acquired with a context and released from any goroutine.
	wlock chan struct{}
	// read is the table published last: never changed once stored, so
	// readers use it without a lock. It is nil until the first promotion.
	read atomic.Pointer[table]
	// fresh is the number of keys in dirty, which a reader that did not
	// find its key in read checks before it takes mu.
	fresh atomic.Int32
	// mu guards dirty and misses, serialises the writers of the shard's
	// entries, and is taken by a reader only for a key not in read.
	mu sync.Mutex
	// dirty holds the keys inserted since read was published.
	dirty table
	// misses counts the lookups that took mu since read was published;
	// read is replaced (with dirty merged in) once they reach a quarter
	// of its size, so the copy is paid for by the locks it spares (and
	// at the first miss when read is empty: the move costs nothing).
	misses int
}

// table maps keys to their entries. Its maps hold the entries by the
// 64-bit hash of their key (16 bytes a slot, where a map keyed by the Key
// itself takes 40). A key whose hash is already taken by another key goes
// to more instead; there are no deletions, so a key is in more only if m
// holds its hash.
type table struct {
	m    map[uint64]*entry       // nil until the first key
	more map[presence.Key]*entry // nil until a collision, which is rare
}

// entry is one user's record: 64 bytes, plus the encoding. due mirrors the
// encoded Due for the due index.
type entry struct {
	key presence.Key
	// The user's State as encoded by AppendState (some 60 bytes for a user
	// with one session and a preferred presence, where the State as Go
	// values takes 320 in three allocations), as a pointer to its bytes
	// and a word of its length (low 32 bits) and version (high 32 bits),
	// odd while a writer swaps them. See encoding and setEncoding.
	encData atomic.Pointer[byte]
	encWord atomic.Uint64
	due     atomic.Int64
	// mark is used by the due index to de-duplicate; guarded by due.mu.
	mark uint64
}

// encoding returns e's encoded State, "" if none was stored. It takes no
// lock: it reads the version, the bytes and the version again, and tries
// again if a writer was swapping them meanwhile.
func (e *entry) encoding() string {
	for {
		w := e.encWord.Load()
		if w>>32&1 == 0 {
			p := e.encData.Load()
			if e.encWord.Load() == w {
				return unsafe.String(p, int(uint32(w)))
			}
		}
		runtime.Gosched() // a writer is between its two stores
	}
}

// setEncoding stores enc as e's encoded State. The caller holds the shard's
// mu, so writers of e never overlap.
func (e *entry) setEncoding(enc string) {
	v := e.encWord.Load()>>32 + 1 // odd: readers wait
	e.encWord.Store(v << 32)
	e.encData.Store(unsafe.StringData(enc))
	e.encWord.Store((v+1)<<32 | uint64(uint32(len(enc))))
}

// New returns an empty Map.
func New() *Map {
	m := &Map{seed: maphash.MakeSeed()}
	for i := range m.shards {
		m.shards[i].wlock = make(chan struct{}, 1)
	}
	return m
}

// Reserve makes room for n keys in an empty Map, so that filling it does
// not grow its tables step by step. It does nothing to a Map that holds
// keys.
func (m *Map) Reserve(n int) {
	per := n/shardCount + n/shardCount/8 + 1
	if per <= 8 || m.Len() > 0 { // up to 8 keys, a map is one group
		return
	}
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		if sh.dirty.len() == 0 && sh.read.Load() == nil {
			sh.dirty.m = make(map[uint64]*entry, per)
		}
		sh.mu.Unlock()
	}
}

func (m *Map) hash(k presence.Key) uint64 {
	return m.userHash(m.tenantHash(k.Tenant), k.User)
}

// tenantHash is the tenant's part of a key's hash, which a visit of many
// users of one tenant computes once.
func (m *Map) tenantHash(tenant string) uint64 {
	return bits.RotateLeft64(maphash.String(m.seed, tenant), 29)
}

// userHash combines a tenant's part of the hash with the user's.
func (m *Map) userHash(tenantHash uint64, user string) uint64 {
	return maphash.String(m.seed, user) ^ tenantHash
}

func (m *Map) shard(h uint64) *shard { return &m.shards[h&(shardCount-1)] }

// find returns the entry of key (whose hash is h) in t, or nil. A nil t
// is empty.
func (t *table) find(h uint64, key presence.Key) *entry {
	if t == nil {
		return nil
	}
	e := t.m[h]
	if e == nil || e.key == key {
		return e
	}
	return t.more[key]
}

// insert adds e, whose key (of hash h) is not in t.
func (t *table) insert(h uint64, e *entry) {
	if t.m == nil {
		t.m = make(map[uint64]*entry)
	}
	if t.m[h] == nil {
		t.m[h] = e
		return
	}
	if t.more == nil {
		t.more = make(map[presence.Key]*entry)
	}
	t.more[e.key] = e
}

// len returns the number of keys in t.
func (t *table) len() int {
	if t == nil {
		return 0
	}
	return len(t.m) + len(t.more)
}

// lookup returns the entry of key (whose hash is h), or nil. It locks only
// for a key that is not in the published table while keys wait in dirty.
func (sh *shard) lookup(h uint64, key presence.Key) *entry {
	if e := sh.read.Load().find(h, key); e != nil || sh.fresh.Load() == 0 {
		return e
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.findLocked(h, key)
	if sh.misses++; sh.misses >= sh.read.Load().len()/4 {
		sh.promote()
	}
	return e
}

// findLocked returns the entry of key (whose hash is h), or nil. sh.mu is
// held. A key of dirty may be in its more with its hash in read's m only
// (see insert), so dirty's more is always looked at.
func (sh *shard) findLocked(h uint64, key presence.Key) *entry {
	if e := sh.read.Load().find(h, key); e != nil {
		return e
	}
	if e := sh.dirty.m[h]; e != nil && e.key == key {
		return e
	}
	return sh.dirty.more[key]
}

// insert adds e, whose key (of hash h) is in neither table, to dirty.
// sh.mu is held.
func (sh *shard) insert(h uint64, e *entry) {
	if r := sh.read.Load(); r != nil && r.m[h] != nil {
		// The hash is taken in read: merged, e will be in more.
		if sh.dirty.more == nil {
			sh.dirty.more = make(map[presence.Key]*entry)
		}
		sh.dirty.more[e.key] = e
	} else {
		sh.dirty.insert(h, e)
	}
	sh.fresh.Add(1)
}

// promote publishes a table of every key, read's and dirty's, and empties
// dirty. sh.mu is held.
func (sh *shard) promote() {
	sh.misses = 0
	if sh.dirty.len() == 0 {
		return
	}
	old := sh.read.Load()
	if old.len() == 0 {
		t := sh.dirty
		sh.read.Store(&t)
	} else {
		t := &table{m: maps.Clone(old.m), more: maps.Clone(old.more)}
		for h, e := range sh.dirty.m {
			t.insert(h, e)
		}
		if len(sh.dirty.more) > 0 && t.more == nil {
			t.more = make(map[presence.Key]*entry, len(sh.dirty.more))
		}
		// A key in dirty's more has its hash in dirty's m or in read's:
		// in the merged m either way.
		maps.Copy(t.more, sh.dirty.more)
		sh.read.Store(t)
	}
	sh.dirty = table{}
	sh.fresh.Store(0)
}

// each calls fn with every entry of sh. sh.mu is held.
func (sh *shard) each(fn func(*entry)) {
	for _, t := range []*table{sh.read.Load(), &sh.dirty} {
		if t == nil {
			continue
		}
		for _, e := range t.m {
			fn(e)
		}
		for _, e := range t.more {
			fn(e)
		}
	}
}

// Lock acquires the stripe lock of key, waiting until it is free or ctx
// ends. It returns ctx's error, unwrapped, if ctx ended first (or had
// already ended). Holding the stripe lock of a key is what makes a
// read-modify-write of that key atomic; it does not block readers.
func (m *Map) Lock(ctx context.Context, key presence.Key) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := m.shard(m.hash(key))
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
	case <-m.shard(m.hash(key)).wlock:
	default:
		panic("statemap: Unlock of an unlocked stripe")
	}
}

// Load returns a deep copy of the State of key: the zero State if key was
// never published.
func (m *Map) Load(key presence.Key) presence.State {
	enc := m.encoded(key)
	if enc == "" {
		return presence.State{}
	}
	return m.decode(enc)
}

// decode decodes an encoding the Map holds, which it validated or made.
func (m *Map) decode(enc string) presence.State {
	var s presence.State
	if _, err := decodeState(enc, &m.strs, &s); err != nil {
		panic(fmt.Sprintf("statemap: a stored state does not decode: %v", err))
	}
	return s
}

// Visit calls fn with the State of each of users in tenant, in order;
// duplicates are visited once per occurrence, and a user never published
// has the zero State. The *State is lent: it is valid only during that
// call of fn, which must neither keep nor change it or anything it points
// to. Visiting decodes each state into storage reused from one user to
// the next, so reading many users allocates next to nothing. No lock is
// held while fn runs.
func (m *Map) Visit(tenant string, users []string, fn func(i int, s *presence.State)) {
	var r scratch
	var s presence.State
	th := m.tenantHash(tenant)
	for i, u := range users {
		key := presence.Key{Tenant: tenant, User: u}
		enc := m.encodedAt(m.userHash(th, u), key)
		if enc == "" {
			s = presence.State{}
		} else if _, err := decodeReusing(enc, &m.strs, &s, &r); err != nil {
			panic(fmt.Sprintf("statemap: a stored state does not decode: %v", err))
		}
		fn(i, &s)
	}
}

// encoded returns the encoded State of key, "" if key was never published.
func (m *Map) encoded(key presence.Key) string {
	return m.encodedAt(m.hash(key), key)
}

// encodedAt is encoded of a key whose hash h is known.
func (m *Map) encodedAt(h uint64, key presence.Key) string {
	if e := m.shard(h).lookup(h, key); e != nil {
		return e.encoding()
	}
	return ""
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
//
// What is stored is s's encoding (see AppendState), so Load gives back
// its times in UTC and without monotonic readings, and empty slices as
// nil: the State as it would be read back from disk.
func (m *Map) Publish(key presence.Key, s presence.State) {
	var buf [128]byte
	enc := string(AppendState(buf[:0], &s))
	m.put(key, enc, dueNanos(s.Due), true, true)
}

// PublishEncoded is Publish of a state already encoded: enc must be what
// AppendState made of a State whose Due is due. It spares encoding the
// state again when the caller has just encoded it (for its log record).
func (m *Map) PublishEncoded(key presence.Key, enc string, due time.Time) {
	m.put(key, enc, dueNanos(due), true, true)
}

// put stores enc, whose due instant is due, as key's encoded state. A new
// entry gets the shared copy of key.Tenant and, with cloneUser, a copy of
// key.User of its own (the caller's may be part of a larger allocation,
// such as a request). With index the due index is kept up to date.
func (m *Map) put(key presence.Key, enc string, due int64, cloneUser, index bool) {
	h := m.hash(key)
	sh := m.shard(h)
	sh.mu.Lock()
	e := sh.findLocked(h, key)
	if e == nil {
		k := presence.Key{Tenant: m.strs.intern(key.Tenant), User: key.User}
		if cloneUser {
			k.User = strings.Clone(k.User)
		}
		e = &entry{key: k}
		e.due.Store(noDue)
		sh.insert(h, e)
		m.size.Add(1)
	}
	e.setEncoding(enc)
	old := e.due.Swap(due)
	sh.mu.Unlock()
	if index && old != due {
		m.due.changed(e, old, due)
	}
}

// Restore stores enc, an encoding made by AppendState (read back from
// disk, say), as the State of key, keeping key.User as given. It is for
// filling a Map before it serves: it does not index the Due, so call
// IndexDue once every Restore is done. Restores of different keys may run
// concurrently; of one key, the last one wins. An enc that is not a valid
// encoding is an error, and nothing is stored.
func (m *Map) Restore(key presence.Key, enc []byte) error {
	s := string(enc)
	due, err := decodeState(s, nil, nil)
	if err != nil {
		return err
	}
	m.put(key, s, dueNanos(due), false, false)
	return nil
}

// RestoreState is Restore of a State rather than of its encoding.
func (m *Map) RestoreState(key presence.Key, s presence.State) {
	m.put(key, string(AppendState(nil, &s)), dueNanos(s.Due), true, false)
}

// DecodeKey reads a key written by AppendKey from the start of p and
// returns it and the rest of p. The tenant is the Map's shared copy; the
// user is a string of its own, as Restore wants it.
func (m *Map) DecodeKey(p []byte) (presence.Key, []byte, error) {
	return decodeKey(p, &m.strs)
}

// IndexDue rebuilds the due index from the Due of every key, after
// Restore, and publishes every shard's table, so that reads of the keys
// restored take no lock. It must not run concurrently with Publish.
func (m *Map) IndexDue() {
	h := make([]duePair, 0, m.Len())
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		sh.promote()
		sh.each(func(e *entry) {
			if d := e.due.Load(); d != noDue {
				h = append(h, duePair{d, e})
			}
		})
		sh.mu.Unlock()
	}
	m.due.rebuild(h)
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
	return m.SnapshotEncoded(ctx, func(k presence.Key, enc string) error {
		return fn(k, m.decode(enc))
	})
}

// SnapshotEncoded is Snapshot of the states' encodings (see AppendState),
// which it does not decode.
func (m *Map) SnapshotEncoded(ctx context.Context, fn func(key presence.Key, enc string) error) error {
	type kv struct {
		k   presence.Key
		enc string
	}
	var buf []kv
	for i := range m.shards {
		sh := &m.shards[i]
		select {
		case sh.wlock <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		sh.mu.Lock()
		buf = buf[:0]
		sh.each(func(e *entry) { buf = append(buf, kv{e.key, e.encoding()}) })
		sh.mu.Unlock()
		<-sh.wlock
		for _, x := range buf {
			if err := fn(x.k, x.enc); err != nil {
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
