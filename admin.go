package presence

import (
	"context"
	"fmt"
	"time"
)

// UserState is one user's stored state as the test hooks show it, with
// what it looks like at the instant it was read.
type UserState struct {
	Key   Key
	State State
	// View is the visible presence at the instant of the read.
	View View
	// NextChange is when the visible presence next changes by itself; zero
	// when it never will.
	NextChange time.Time
}

// States calls fn with every user of tenant that has stored state, in no
// particular order, at the service's now, which it returns. Users whose
// state is the zero State (never written, or reset) are left out. It
// scans the whole store, so it is for tests and tools, not for serving.
func (s *Service) States(ctx context.Context, tenant string, fn func(UserState) error) (time.Time, error) {
	now := s.clock.Now()
	err := s.store.Scan(ctx, func(k Key, st State) error {
		if k.Tenant != tenant || st.IsZero() {
			return nil
		}
		u := UserState{Key: k, State: st, View: st.ViewAt(now)}
		u.NextChange, _ = st.NextChange(now)
		return fn(u)
	})
	if err != nil {
		return now, fmt.Errorf("states of tenant %s: %w", tenant, err)
	}
	return now, nil
}

// Reset forgets every user of tenant, or of every tenant when tenant is
// empty: each stored state becomes the zero State, as if never written
// (Offline, sequence number restarting). It emits no change events; a
// caller that keeps subscriptions forgets the tenant's first. It returns
// how many users it reset.
func (s *Service) Reset(ctx context.Context, tenant string) (int, error) {
	var keys []Key
	err := s.store.Scan(ctx, func(k Key, st State) error {
		if (tenant == "" || k.Tenant == tenant) && !st.IsZero() {
			keys = append(keys, k)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("reset: %w", err)
	}
	for _, k := range keys {
		before, _, err := s.store.Update(ctx, k, func(st *State) error {
			*st = State{}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("reset %s: %w", k, err)
		}
		s.sessions.Add(-int64(len(before.Sessions)))
	}
	return len(keys), nil
}
