package presence

import (
	"context"
	"time"
)

// DeliveryLog keeps the recent delivery attempts of each subscription: the
// notification service records every attempt, the console reads them. One
// process keeps them in memory; several nodes can share one log (on the
// store they share) so that any node's console shows every node's
// deliveries. It must be safe for concurrent use and bounded.
type DeliveryLog interface {
	// Record adds an attempt. It is called as each delivery attempt ends,
	// on the delivering goroutine, so it must be quick (a shared log may
	// buffer); an error is logged and otherwise ignored.
	Record(ctx context.Context, a DeliveryAttempt) error
	// Recent returns the subscription's recorded attempts, newest first.
	Recent(ctx context.Context, subscription string) ([]DeliveryAttempt, error)
}

// DeliveryAttempt is one webhook POST presenced made for a subscription
// and what came of it, as the console shows it. The notification service
// keeps the most recent ones of each subscription in a DeliveryLog.
type DeliveryAttempt struct {
	// Subscription is the id of the subscription the POST was for.
	Subscription string
	// At is the service-clock instant the attempt started.
	At time.Time
	// Lifecycle reports a POST of lifecycle events rather than changes.
	Lifecycle bool
	// Items are the notifications the POST carried (at most a few of them
	// are kept; Count is how many there were).
	Items []DeliveredItem
	Count int
	// Status is the receiver's HTTP status, 0 when none came (Error says why).
	Status int
	Error  string
	// Latency is the wall-clock time from sending to the receiver's answer.
	Latency time.Duration
	// Attempt is 1 for a first try, 2 for its first retry, and so on.
	Attempt int
	// Outcome is "delivered", "retrying" (NextRetry says when) or "dropped".
	Outcome   string
	NextRetry time.Time
}

// DeliveredItem is one notification of a DeliveryAttempt: a user's change,
// its sequence number and pair, or a lifecycle event.
type DeliveredItem struct {
	User           string
	Seq            uint64
	Pair           Pair
	LifecycleEvent string
}

// The outcomes of a DeliveryAttempt.
const (
	DeliveryDelivered = "delivered"
	DeliveryRetrying  = "retrying"
	DeliveryDropped   = "dropped"
)
