package notify

import (
	"context"
	"errors"

	presence "github.com/presenced/presenced"
)

// Reset forgets every subscription of tenant, or of every tenant when
// tenant is empty, with the deliveries and lifecycle notifications still
// queued for them, as if each had been deleted. The test hooks' reset
// calls it before forgetting the tenant's users. A create still in
// progress (its handshake running) is not affected. It returns how many
// subscriptions it removed.
func (n *Notifier) Reset(ctx context.Context, tenant string) (int, error) {
	if err := n.sync(ctx); err != nil {
		return 0, err
	}
	n.mu.Lock()
	var subs []presence.Subscription
	for _, sub := range n.subs {
		if tenant == "" || sub.Tenant == tenant {
			subs = append(subs, *sub)
		}
	}
	n.mu.Unlock()
	var errs []error
	removed := 0
	for _, sub := range subs {
		if err := n.store.Delete(ctx, sub); err != nil {
			errs = append(errs, err)
			continue
		}
		n.mu.Lock()
		if cur, ok := n.subs[sub.ID]; ok {
			n.unindex(cur)
		}
		n.mu.Unlock()
		n.d.dropSubscription(sub.ID)
		removed++
	}
	return removed, errors.Join(errs...)
}
