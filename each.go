package presence

import (
	"context"
	"sync"
	"sync/atomic"
)

// EachUpdater is a Store that updates many users in one go, with fewer
// round trips than one Update each (a shared store). UpdateEach is Update
// for each of keys, fn(i, st) being the i-th user's fn: every user's
// update is atomic on its own (not together with the others'), stored
// durably before UpdateEach returns, and fn may run more than once for a
// user. The i-th result is the i-th user's outcome, as Update returns it.
type EachUpdater interface {
	UpdateEach(ctx context.Context, keys []Key, fn func(i int, st *State) error) []Updated
}

// Updated is one user's outcome in UpdateEach: what Update would return.
type Updated struct {
	Before, After State
	Err           error
}

// eachWorkers is how many Updates UpdateEach runs at once on a store that
// has no UpdateEach of its own: enough to fill a group commit.
const eachWorkers = 16

// UpdateEach updates each of keys in store: with the store's own
// UpdateEach when it is an EachUpdater, else with up to 16 Updates at a
// time (so that a store's group commit makes them durable together).
func UpdateEach(ctx context.Context, store Store, keys []Key, fn func(i int, st *State) error) []Updated {
	if e, ok := store.(EachUpdater); ok {
		return e.UpdateEach(ctx, keys, fn)
	}
	return UpdateConcurrently(ctx, store, keys, fn)
}

// UpdateConcurrently updates each of keys with store.Update, up to 16 at a
// time; it is UpdateEach for a store that has no better way.
func UpdateConcurrently(ctx context.Context, store Store, keys []Key, fn func(i int, st *State) error) []Updated {
	out := make([]Updated, len(keys))
	inParallel(len(keys), eachWorkers, func(i int) bool {
		r := &out[i]
		r.Before, r.After, r.Err = store.Update(ctx, keys[i], func(st *State) error { return fn(i, st) })
		return true
	})
	return out
}

// inParallel calls do(i) for i in [0, n) on up to workers goroutines,
// each taking the next i, and returns when they are done; a worker whose
// do returns false takes no more.
func inParallel(n, workers int, do func(i int) bool) {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
	)
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || !do(i) {
					return
				}
			}
		})
	}
	wg.Wait()
}

// DoEach validates cmds[i] and applies it to keys[i] for every i, as Do
// would one by one, and returns each one's error (nil when it succeeded).
// The store updates them together (UpdateEach), which is how a node
// renews thousands of connection leases a second in a few round trips.
// Every command of the call runs at the same instant, and sees every
// subscription created before DoEach began.
func (s *Service) DoEach(ctx context.Context, keys []Key, cmds []Command) []error {
	errs := make([]error, len(keys))
	idx := make([]int, 0, len(keys))
	for i, cmd := range cmds[:len(keys)] {
		if err := cmd.Validate(&s.env); err != nil {
			errs[i] = err
			continue
		}
		idx = append(idx, i)
	}
	if len(idx) == 0 {
		return errs
	}
	if s.syncer != nil {
		if err := s.syncer.SyncWatching(ctx); err != nil {
			for _, i := range idx {
				errs[i] = err
			}
			return errs
		}
	}
	now := s.clock.Now()
	outs := make([]stepOut, len(idx))
	fns := make([]func(*State) error, len(idx))
	valid := make([]Key, len(idx))
	for j, i := range idx {
		valid[j] = keys[i]
		fns[j] = s.step(keys[i], cmds[i], now, &outs[j])
	}
	res := UpdateEach(ctx, s.store, valid, func(j int, st *State) error { return fns[j](st) })
	for j, i := range idx {
		r := &res[j]
		_, errs[i] = s.applied(keys[i], &outs[j], r.Before, r.After, r.Err, now)
	}
	return errs
}
