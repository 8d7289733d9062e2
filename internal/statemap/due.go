package statemap

import (
	"sync"

	presence "github.com/presenced/presenced"
)

// compactSlack is how many stale pairs the due index tolerates beyond the
// number of live ones before it filters itself.
const compactSlack = 1024

// dueIndex is a min-heap of (instant, entry) pairs with lazy deletion: a
// pair is live while its instant equals its entry's current due.
type dueIndex struct {
	mu sync.Mutex
	h  []duePair
	// live is the number of entries whose due is not noDue.
	live int
	// epoch numbers de-duplicating passes; see entry.mark.
	epoch uint64
}

// duePair is 16 bytes: one pending instant of one user.
type duePair struct {
	at int64
	e  *entry
}

func (p duePair) live() bool { return p.e.due.Load() == p.at }

// changed records that e's due went from old to new (they differ).
func (d *dueIndex) changed(e *entry, old, new int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if old == noDue {
		d.live++
	}
	if new == noDue {
		d.live--
		return
	}
	d.push(duePair{new, e})
	if len(d.h) > 2*d.live+compactSlack {
		d.compact()
	}
}

// compact drops stale and duplicate pairs and restores the heap order.
func (d *dueIndex) compact() {
	d.epoch++
	kept := d.h[:0]
	for _, p := range d.h {
		if p.live() && p.e.mark != d.epoch {
			p.e.mark = d.epoch
			kept = append(kept, p)
		}
	}
	clear(d.h[len(kept):])
	d.h = kept
	for i := len(d.h)/2 - 1; i >= 0; i-- {
		d.down(i)
	}
	if cap(d.h) > 4*len(d.h)+compactSlack {
		d.h = append(make([]duePair, 0, 2*len(d.h)+compactSlack), d.h...)
	}
}

// popDue returns up to limit keys whose live instant is not after now,
// earliest first, and leaves them in the index.
func (d *dueIndex) popDue(now int64, limit int) []presence.Key {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.epoch++
	var out []presence.Key
	var keep []duePair
	for len(d.h) > 0 && len(out) < limit && d.h[0].at <= now {
		p := d.pop()
		if !p.live() || p.e.mark == d.epoch {
			continue // stale, or a duplicate of a pair already taken
		}
		p.e.mark = d.epoch
		out = append(out, p.e.key)
		keep = append(keep, p)
	}
	for _, p := range keep {
		d.push(p)
	}
	return out
}

func (d *dueIndex) push(p duePair) {
	d.h = append(d.h, p)
	d.up(len(d.h) - 1)
}

func (d *dueIndex) pop() duePair {
	n := len(d.h) - 1
	p := d.h[0]
	d.h[0] = d.h[n]
	d.h[n] = duePair{}
	d.h = d.h[:n]
	if n > 0 {
		d.down(0)
	}
	return p
}

func (d *dueIndex) up(i int) {
	h := d.h
	for i > 0 {
		parent := (i - 1) / 2
		if h[parent].at <= h[i].at {
			break
		}
		h[parent], h[i] = h[i], h[parent]
		i = parent
	}
}

func (d *dueIndex) down(i int) {
	h := d.h
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h[r].at < h[l].at {
			c = r
		}
		if h[i].at <= h[c].at {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// rebuild makes h, every live pair once, the index.
func (d *dueIndex) rebuild(h []duePair) {
	d.mu.Lock()
	defer d.mu.Unlock()
	clear(d.h)
	d.h = h
	d.live = len(h)
	for i := len(d.h)/2 - 1; i >= 0; i-- {
		d.down(i)
	}
}
