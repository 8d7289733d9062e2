package notify

import (
	"context"
	"time"

	presence "github.com/presenced/presenced"
)

// fileSubs is the default presence.SubscriptionStore: the JSON-lines file of
// subStore (or memory). Only this process writes it, so the Notifier's
// index, which checks slots itself, is the truth.
type fileSubs struct{ s *subStore }

var _ presence.SubscriptionStore = fileSubs{}

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
