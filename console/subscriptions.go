package console

import (
	"net/http"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
)

// subscriptionRecord is a subscription as the console lists it (no client
// state, no certificate).
type subscriptionRecord struct {
	ID                       string    `json:"id"`
	Resource                 string    `json:"resource"`
	Users                    []string  `json:"users"`
	ChangeType               string    `json:"changeType"`
	NotificationURL          string    `json:"notificationUrl"`
	LifecycleNotificationURL string    `json:"lifecycleNotificationUrl,omitempty"`
	ExpirationDateTime       time.Time `json:"expirationDateTime"`
	ApplicationID            string    `json:"applicationId"`
	CreatorID                string    `json:"creatorId"`
	IncludeResourceData      bool      `json:"includeResourceData"`
}

func newSubscriptionRecord(s presence.Subscription) subscriptionRecord {
	users := s.Users
	if users == nil {
		users = []string{}
	}
	return subscriptionRecord{
		ID: s.ID, Resource: s.Resource, Users: users, ChangeType: s.ChangeType, NotificationURL: s.NotificationURL,
		LifecycleNotificationURL: s.LifecycleNotificationURL, ExpirationDateTime: s.ExpirationDateTime,
		ApplicationID: s.ApplicationID, CreatorID: s.CreatorID, IncludeResourceData: s.IncludeResourceData,
	}
}

// visibleSubscriptions returns the subscriptions v may see: for a Graph
// token those Graph's GET /subscriptions lists for it, for the operator
// every subscription of the chosen tenant.
func (c *Console) visibleSubscriptions(r *http.Request, v viewer) ([]presence.Subscription, error) {
	if v.Operator {
		if err := v.mayReadTenant(); err != nil {
			return nil, err
		}
		if c.cfg.TenantSubscriptions == nil {
			return nil, nil
		}
		return c.cfg.TenantSubscriptions(r.Context(), v.Tenant)
	}
	if c.cfg.Subscriptions == nil {
		return nil, nil
	}
	return c.cfg.Subscriptions.List(r.Context(), v.Principal)
}

// listSubscriptions serves GET /presenced/subscriptions.
func (c *Console) listSubscriptions(w http.ResponseWriter, r *http.Request, v viewer) error {
	subs, err := c.visibleSubscriptions(r, v)
	if err != nil {
		return err
	}
	out := make([]subscriptionRecord, 0, len(subs))
	for _, s := range subs {
		out = append(out, newSubscriptionRecord(s))
	}
	return writeJSON(w, map[string]any{"now": c.cfg.Service.Clock().Now(), "value": out})
}

// deliveryRecord is one delivery attempt as the console shows it.
type deliveryRecord struct {
	At             time.Time    `json:"at"`
	Lifecycle      bool         `json:"lifecycle"`
	Notifications  []itemRecord `json:"notifications"`
	Count          int          `json:"count"`
	StatusCode     int          `json:"statusCode"`
	Error          string       `json:"error,omitempty"`
	LatencyMs      float64      `json:"latencyMs"`
	Attempt        int          `json:"attempt"`
	Retries        int          `json:"retries"`
	Outcome        string       `json:"outcome"`
	NextRetryAt    *time.Time   `json:"nextRetryAt"`
	SubscriptionID string       `json:"subscriptionId"`
}

type itemRecord struct {
	User           string `json:"user,omitempty"`
	SequenceNumber string `json:"sequenceNumber,omitempty"`
	Availability   string `json:"availability,omitempty"`
	Activity       string `json:"activity,omitempty"`
	LifecycleEvent string `json:"lifecycleEvent,omitempty"`
}

// deliveries serves GET /presenced/subscriptions/{id}/deliveries: the
// recent delivery attempts of a subscription v may see, newest first.
func (c *Console) deliveries(w http.ResponseWriter, r *http.Request, v viewer) error {
	id := strings.ToLower(r.PathValue("id"))
	subs, err := c.visibleSubscriptions(r, v)
	if err != nil {
		return err
	}
	found := false
	for _, s := range subs {
		found = found || s.ID == id
	}
	if !found {
		return presence.Errorf(presence.CodeNotFound, "The object was not found: subscription '%s'.", r.PathValue("id"))
	}
	var attempts []presence.DeliveryAttempt
	if c.cfg.Deliveries != nil {
		if attempts, err = c.cfg.Deliveries(r.Context(), id); err != nil {
			return err
		}
	}
	out := make([]deliveryRecord, 0, len(attempts))
	for _, a := range attempts {
		d := deliveryRecord{
			At: a.At, Lifecycle: a.Lifecycle, Count: a.Count, StatusCode: a.Status, Error: a.Error,
			LatencyMs: float64(a.Latency.Microseconds()) / 1000, Attempt: a.Attempt, Retries: max(a.Attempt-1, 0),
			Outcome: a.Outcome, SubscriptionID: a.Subscription, Notifications: make([]itemRecord, 0, len(a.Items)),
		}
		if !a.NextRetry.IsZero() {
			t := a.NextRetry
			d.NextRetryAt = &t
		}
		for _, it := range a.Items {
			ir := itemRecord{User: it.User, LifecycleEvent: it.LifecycleEvent}
			if it.LifecycleEvent == "" {
				ir.SequenceNumber = presence.FormatSequence(it.Seq)
				ir.Availability, ir.Activity = it.Pair.Availability, it.Pair.Activity
			}
			d.Notifications = append(d.Notifications, ir)
		}
		out = append(out, d)
	}
	return writeJSON(w, map[string]any{"now": c.cfg.Service.Clock().Now(), "value": out})
}
