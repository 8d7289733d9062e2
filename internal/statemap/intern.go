package statemap

import (
	"strings"
	"sync"
	"sync/atomic"
)

// internMax bounds the strings one interner keeps. Past it, strings are
// simply not shared. Tenant and application ids number in the tens or
// hundreds; the bound only keeps a flood of distinct ids from growing the
// table without end.
const internMax = 1 << 16

// interner hands out one shared copy of each string it has seen: the
// tenant ids of the keys and the GUIDs of session ids (application ids),
// which a million users share among a few values. Lookups of strings it
// already shares take no lock: read is an immutable map replaced, never
// changed. New strings go to dirty, under mu, and move to a new read map
// once looking them up there has cost about as much as copying read.
type interner struct {
	read atomic.Pointer[map[string]string]

	mu     sync.Mutex
	dirty  map[string]string // shared strings not yet in read
	misses int               // lookups that had to take mu since the last move
	full   atomic.Bool       // read holds internMax strings; no more are added
}

// lookup returns the shared copy of s, if there is one, without locking.
// s may be a temporary (a conversion of a byte slice).
func (t *interner) lookup(s string) (string, bool) {
	if r := t.read.Load(); r != nil {
		v, ok := (*r)[s]
		return v, ok
	}
	return "", false
}

// intern returns the shared copy of s, making one (a copy of s) if there is
// room.
func (t *interner) intern(s string) string {
	if v, ok := t.lookup(s); ok {
		return v
	}
	return t.slow(s, true)
}

// internBytes is intern of string(b) that allocates only to add a string.
func (t *interner) internBytes(b []byte) string {
	if r := t.read.Load(); r != nil {
		if v, ok := (*r)[string(b)]; ok {
			return v
		}
	}
	return t.slow(string(b), false)
}

// slow looks s up in dirty, adding it if it is new. clone says whether s
// must be copied before it is kept (it may share a larger allocation).
func (t *interner) slow(s string, clone bool) string {
	if clone {
		s = strings.Clone(s)
	}
	if t.full.Load() { // everything shared is in read
		return s
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := t.lookup(s); ok { // moved to read meanwhile
		return v
	}
	var n int
	if r := t.read.Load(); r != nil {
		n = len(*r)
	}
	v, ok := t.dirty[s]
	if !ok {
		if t.dirty == nil {
			t.dirty = make(map[string]string)
		}
		t.dirty[s] = s
		v = s
		if n+len(t.dirty) >= internMax {
			t.promote(n)
			t.full.Store(true)
			return v
		}
	}
	t.misses++
	if t.misses > n/8 {
		t.promote(n)
	}
	return v
}

// promote replaces read by read and dirty together. t.mu is held.
func (t *interner) promote(n int) {
	m := make(map[string]string, n+len(t.dirty))
	if r := t.read.Load(); r != nil {
		for k, v := range *r {
			m[k] = v
		}
	}
	for k, v := range t.dirty {
		m[k] = v
	}
	t.read.Store(&m)
	t.dirty = nil
	t.misses = 0
}
