package notify

import (
	"context"
	"errors"
	"time"

	presence "github.com/presenced/presenced"
)

// SubscriptionStore keeps subscriptions durably. The default keeps them in
// a file beside the presence store (or in memory); a shared store (Redis)
// lets several presenced nodes serve the same subscriptions.
type SubscriptionStore interface {
	// Load returns every stored subscription and the store's version.
	Load(ctx context.Context) ([]presence.Subscription, uint64, error)
	// Version is a number that changes whenever any node changes a
	// subscription. A store that only this process writes may always
	// return 0: the Notifier's index is then the truth.
	Version(ctx context.Context) (uint64, error)
	// Put stores a new subscription. It fails with ErrSlotTaken when
	// another subscription of the same (tenant, creator, application)
	// that has not expired by now is stored: a shared store checks that
	// atomically, so two nodes cannot both create one.
	Put(ctx context.Context, sub presence.Subscription, now time.Time) error
	// Replace overwrites a stored subscription; it reports false, writing
	// nothing, when the subscription is no longer stored.
	Replace(ctx context.Context, sub presence.Subscription) (bool, error)
	// Delete removes a subscription; deleting one that is not stored is
	// not an error.
	Delete(ctx context.Context, sub presence.Subscription) error
	// Close releases the store.
	Close() error
}

// ErrSlotTaken is returned by SubscriptionStore.Put when the creator's
// application already holds a live presence subscription in the tenant.
var ErrSlotTaken = errors.New("the subscription slot of this creator and application is taken")

// fileSubs is the default SubscriptionStore: the JSON-lines file of
// subStore (or memory). Only this process writes it, so the Notifier's
// index, which checks slots itself, is the truth.
type fileSubs struct{ s *subStore }

func (f fileSubs) Load(context.Context) ([]presence.Subscription, uint64, error) {
	return f.s.all(), 0, nil
}

func (f fileSubs) Version(context.Context) (uint64, error) { return 0, nil }

func (f fileSubs) Put(_ context.Context, sub presence.Subscription, _ time.Time) error {
	return f.s.put(sub)
}

func (f fileSubs) Replace(_ context.Context, sub presence.Subscription) (bool, error) {
	return f.s.replace(sub)
}

func (f fileSubs) Delete(_ context.Context, sub presence.Subscription) error { return f.s.del(sub.ID) }

func (f fileSubs) Close() error { return f.s.close() }
