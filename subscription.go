package presence

import (
	"context"
	"errors"
	"strings"
	"time"
)

// Subscription is a change-notification subscription to the presence of one
// or more users of a tenant.
type Subscription struct {
	ID     string `json:"id"`
	Tenant string `json:"tenant"`
	// Resource is the resource string as the creator sent it; Users are the
	// user ids it names.
	Resource                  string    `json:"resource"`
	Users                     []string  `json:"users"`
	ChangeType                string    `json:"changeType"`
	ClientState               string    `json:"clientState,omitempty"`
	NotificationURL           string    `json:"notificationUrl"`
	LifecycleNotificationURL  string    `json:"lifecycleNotificationUrl,omitempty"`
	ExpirationDateTime        time.Time `json:"expirationDateTime"`
	ApplicationID             string    `json:"applicationId"`
	CreatorID                 string    `json:"creatorId"`
	IncludeResourceData       bool      `json:"includeResourceData,omitempty"`
	EncryptionCertificate     string    `json:"encryptionCertificate,omitempty"`
	EncryptionCertificateID   string    `json:"encryptionCertificateId,omitempty"`
	LatestSupportedTLSVersion string    `json:"latestSupportedTlsVersion,omitempty"`
	// ReauthorizationSent records that reauthorizationRequired was sent for
	// the current expiry.
	ReauthorizationSent bool `json:"reauthorizationSent,omitempty"`
}

// SubscriptionRequest is the body of a subscription create or update; a nil
// field was absent.
type SubscriptionRequest struct {
	ChangeType                *string
	NotificationURL           *string
	LifecycleNotificationURL  *string
	Resource                  *string
	ExpirationDateTime        *string
	ClientState               *string
	IncludeResourceData       *bool
	EncryptionCertificate     *string
	EncryptionCertificateID   *string
	LatestSupportedTLSVersion *string
	// Other names the members present that presence subscriptions do not
	// take (Web Push keys, for one).
	Other []string
}

// Subscriptions is the change-notification service the HTTP surface calls.
// Every method acts for a verified principal, in its tenant.
type Subscriptions interface {
	Create(ctx context.Context, p Principal, req SubscriptionRequest) (Subscription, error)
	Get(ctx context.Context, p Principal, id string) (Subscription, error)
	List(ctx context.Context, p Principal) ([]Subscription, error)
	Update(ctx context.Context, p Principal, id string, req SubscriptionRequest) (Subscription, error)
	Delete(ctx context.Context, p Principal, id string) error
	Reauthorize(ctx context.Context, p Principal, id string) error
}

// ParseSubscriptionResource parses a presence subscription's resource:
// "communications/presences/{id}" or
// "communications/presences?$filter=id in ('{id}',...)", with or without a
// leading "/", with 1 to 650 distinct quoted GUIDs. It returns the canonical
// ids in order; CheckSubscriptionUsers checks their number, which the
// validation order puts later.
func ParseSubscriptionResource(resource string) ([]string, error) {
	bad := func() error {
		return Errorf(CodeInvalidRequest, "The resource '%s' is not a supported presence resource: use 'communications/presences/{id}' or \"communications/presences?$filter=id in ('{id}',...)\".", resource)
	}
	r := strings.TrimPrefix(resource, "/")
	const prefix = "communications/presences"
	if len(r) < len(prefix) || !strings.EqualFold(r[:len(prefix)], prefix) {
		return nil, bad()
	}
	rest := r[len(prefix):]
	var raw []string
	switch {
	case strings.HasPrefix(rest, "/"):
		raw = []string{rest[1:]}
	case strings.HasPrefix(rest, "?"):
		q := rest[1:]
		const filter = "$filter="
		if len(q) < len(filter) || !strings.EqualFold(q[:len(filter)], filter) {
			return nil, bad()
		}
		// Counting the ids comes later in the validation order: parse
		// them all (a body is at most 1 MiB).
		ids, err := parseIDFilter(q[len(filter):], 1<<20)
		if err != nil {
			var e *Error
			errors.As(err, &e)
			return nil, Errorf(CodeInvalidRequest, "%s", e.Message)
		}
		raw = ids
	default:
		return nil, bad()
	}
	seen := make(map[string]bool, len(raw))
	out := make([]string, 0, len(raw))
	for _, id := range raw {
		g, ok := CanonicalGUID(id)
		if !ok {
			return nil, Errorf(CodeInvalidRequest, "'%s' in the resource is not a user object id.", id)
		}
		if !seen[g] {
			seen[g] = true
			out = append(out, g)
		}
	}
	if len(out) == 0 {
		return nil, Errorf(CodeInvalidRequest, "A presence subscription names 1 to %d users.", MaxIDs)
	}
	return out, nil
}

// CheckSubscriptionUsers checks that a subscription names 1 to MaxIDs
// distinct users.
func CheckSubscriptionUsers(users []string) error {
	if len(users) == 0 || len(users) > MaxIDs {
		return Errorf(CodeInvalidRequest, "A presence subscription names 1 to %d users; this one names %d.", MaxIDs, len(users))
	}
	return nil
}

// SubscriptionStore keeps change-notification subscriptions durably. The
// notifier's default keeps them in a file beside the presence store (or in
// memory); a shared store (Redis) lets several nodes serve the same
// subscriptions.
type SubscriptionStore interface {
	// Load returns every stored subscription and the store's version.
	Load(ctx context.Context) ([]Subscription, uint64, error)
	// Version is a number that changes whenever any node changes a
	// subscription. A store that only this process writes may always
	// return 0: the Notifier's index is then the truth.
	Version(ctx context.Context) (uint64, error)
	// Put stores a new subscription. It fails with ErrSubscriptionSlotTaken when
	// another subscription of the same (tenant, creator, application)
	// that has not expired by now is stored: a shared store checks that
	// atomically, so two nodes cannot both create one.
	Put(ctx context.Context, sub Subscription, now time.Time) error
	// Replace overwrites a stored subscription; it reports false, writing
	// nothing, when the subscription is no longer stored.
	Replace(ctx context.Context, sub Subscription) (bool, error)
	// Delete removes a subscription; deleting one that is not stored is
	// not an error.
	Delete(ctx context.Context, sub Subscription) error
	// Close releases the store.
	Close() error
}

// ErrSubscriptionSlotTaken is returned by SubscriptionStore.Put when the creator's
// application already holds a live presence subscription in the tenant.
var ErrSubscriptionSlotTaken = errors.New("the subscription slot of this creator and application is taken")
