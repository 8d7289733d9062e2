// Package memstore is a presence.Store that keeps every user's State in
// memory only: fast, and forgotten when the process ends. It is meant for
// tests and for deployments that accept losing presence on restart.
//
// Update holds the user's stripe lock across the read-modify-write, so fn
// runs exactly once per successful or failed call; Get never waits for a
// writer of another user. Due follows the semantics of the shared serving
// copy: a key returned by Due stays due, and is returned again, until an
// Update changes its State.Due.
package memstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
)

// ErrClosed is returned by the methods of a Store that has been closed.
var ErrClosed = errors.New("memstore: store closed")

// Store is an in-memory presence.Store. Create one with New.
type Store struct {
	m      *statemap.Map
	closed atomic.Bool
}

var _ presence.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{m: statemap.New()}
}

// Get returns the states of users in tenant, in order; a user never written
// to has the zero State. The states are the caller's own copies.
func (s *Store) Get(ctx context.Context, tenant string, users []string) ([]presence.State, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: get: %w", err)
	}
	return s.m.Get(tenant, users), nil
}

// Update atomically applies fn to a copy of key's state and stores the
// result. If fn returns an error nothing is stored and that error is
// returned as is. On any error before and after are zero.
func (s *Store) Update(ctx context.Context, key presence.Key, fn func(*presence.State) error) (before, after presence.State, err error) {
	if s.closed.Load() {
		return presence.State{}, presence.State{}, ErrClosed
	}
	if err := s.m.Lock(ctx, key); err != nil {
		return presence.State{}, presence.State{}, fmt.Errorf("memstore: update %s: %w", key, err)
	}
	defer s.m.Unlock(key)
	before = s.m.Load(key)
	after = before.Clone()
	if err := fn(&after); err != nil {
		return presence.State{}, presence.State{}, err
	}
	s.m.Publish(key, after)
	return before, after, nil
}

// Visit calls fn with the state of each of users in tenant, in order; the
// *State is lent to fn for that call only (see presence.Store).
func (s *Store) Visit(ctx context.Context, tenant string, users []string, fn func(i int, st *presence.State)) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: visit: %w", err)
	}
	s.m.Visit(tenant, users, fn)
	return nil
}

// Due returns, earliest first, up to limit users whose State.Due is not zero
// and not after now. A key stays due until an Update changes its Due, so it
// is returned again by later calls until then. A limit of zero or less
// returns no keys.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]presence.Key, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("memstore: due: %w", err)
	}
	return s.m.Due(now, limit), nil
}

// Scan calls fn with every user's state, shard by shard, until fn or ctx
// returns an error.
func (s *Store) Scan(ctx context.Context, fn func(presence.Key, presence.State) error) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.m.Snapshot(ctx, fn); err != nil {
		return fmt.Errorf("memstore: scan: %w", err)
	}
	return nil
}

// Close marks the store closed; later calls return ErrClosed. Closing twice
// returns ErrClosed.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}
	return nil
}
