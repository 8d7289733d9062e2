package notify

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
)

// Graph's messages for subscription failures.
const (
	msgNotAuthorized = "Operation: Create; Exception: [Status Code: Forbidden; Reason: The request is not authorized for this user or application.]"
	msgExists        = "Operation: Create; Exception: [Status Code: Conflict; Reason: A subscripton already exists. It must be deleted before a another can be made.]"
	msgValidation    = "Subscription validation request failed. Response must exactly match validationToken query parameter."
	msgTimeout       = "Subscription validation request timed out."
	maxClientState   = 128
	maxCertID        = 128
)

func invalid(format string, args ...any) error {
	return presence.Errorf(presence.CodeInvalidRequest, format, args...)
}

func notFound(id string) error {
	return presence.Errorf(presence.CodeNotFound, "The subscription '%s' does not exist.", id)
}

// mayManage decides whether p may create or renew presence subscriptions:
// delegated work or school accounts with Presence.Read.All, and with
// AllowAppSubscriptions applications with Presence.Read.All.
func (n *Notifier) mayManage(p presence.Principal) error {
	ok := !p.Personal && (p.HasScope(presence.ScopePresenceReadAll) ||
		n.cfg.AllowAppSubscriptions && p.HasRole(presence.ScopePresenceReadAll, presence.ScopePresenceReadWriteAll))
	if !ok {
		return &presence.Error{Code: presence.CodeExtensionError, Message: msgNotAuthorized, Status: 403}
	}
	return nil
}

// scopeSubscriptionReadAll is the delegated scope that lets a user list the
// subscriptions every application made for them.
const scopeSubscriptionReadAll = "Subscription.Read.All"

// mayRead decides whether p may read subscriptions (get, list): whoever may
// manage them, and delegated work or school accounts with
// Subscription.Read.All.
func (n *Notifier) mayRead(p presence.Principal) error {
	if !p.Personal && p.HasScope(scopeSubscriptionReadAll) {
		return nil
	}
	return n.mayManage(p)
}

// creator is the creatorId a principal's subscriptions carry: the signed-in
// user, or for an application its app id.
func creator(p presence.Principal) string {
	if p.Delegated {
		return p.User
	}
	return p.AppID
}

// owned returns the subscription id if p may see it: same tenant and app,
// and for a delegated caller the same user.
func (n *Notifier) owned(p presence.Principal, id string) (presence.Subscription, error) {
	s, ok := n.subscription(strings.ToLower(id))
	if !ok || s.Tenant != p.Tenant || s.ApplicationID != p.AppID || s.CreatorID != creator(p) ||
		!n.clock.Now().Before(s.ExpirationDateTime) {
		return presence.Subscription{}, notFound(id)
	}
	return s, nil
}

// expiry checks a requested expirationDateTime: in the future, at most
// MaxLifetime ahead; less than 45 minutes ahead is raised to 45.
func (n *Notifier) expiry(raw string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, raw)
	if err != nil {
		return time.Time{}, invalid("The expirationDateTime '%s' is not a valid date and time.", raw)
	}
	now := n.clock.Now()
	if t.After(now.Add(n.cfg.MaxLifetime)) || !t.After(now) {
		return time.Time{}, &presence.Error{Code: presence.CodeExtensionError, Status: 400,
			Message: fmt.Sprintf("Subscription expiration can only be %d minutes in the future.", int(n.cfg.MaxLifetime/time.Minute))}
	}
	minimum := min(MinLifetime, n.cfg.MaxLifetime)
	if t.Before(now.Add(minimum)) {
		t = now.Add(minimum)
	}
	return t.UTC(), nil
}

func httpsURL(name, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" {
		return invalid("The %s '%s' must be an absolute https URL.", name, raw)
	}
	return nil
}

// Create implements presence.Subscriptions, in the order of the spec's
// validation table.
func (n *Notifier) Create(ctx context.Context, p presence.Principal, req presence.SubscriptionRequest) (presence.Subscription, error) {
	required := []struct {
		name string
		v    *string
	}{{"changeType", req.ChangeType}, {"notificationUrl", req.NotificationURL}, {"resource", req.Resource}, {"expirationDateTime", req.ExpirationDateTime}}
	for _, r := range required {
		if r.v == nil || *r.v == "" {
			return presence.Subscription{}, invalid("The property '%s' is required.", r.name)
		}
	}
	users, err := presence.ParseSubscriptionResource(*req.Resource)
	if err != nil {
		return presence.Subscription{}, err
	}
	if err := n.mayManage(p); err != nil {
		return presence.Subscription{}, err
	}
	for _, ct := range strings.Split(*req.ChangeType, ",") {
		if !strings.EqualFold(strings.TrimSpace(ct), "updated") {
			return presence.Subscription{}, invalid("The changeType '%s' is not supported for presence; only 'updated' is.", *req.ChangeType)
		}
	}
	if err := httpsURL("notificationUrl", *req.NotificationURL); err != nil {
		return presence.Subscription{}, err
	}
	if req.LifecycleNotificationURL != nil && *req.LifecycleNotificationURL != "" {
		if err := httpsURL("lifecycleNotificationUrl", *req.LifecycleNotificationURL); err != nil {
			return presence.Subscription{}, err
		}
	}
	sub := presence.Subscription{
		ID: presence.NewGUID(), Tenant: p.Tenant, Resource: *req.Resource, Users: users, ChangeType: "updated",
		NotificationURL: *req.NotificationURL, ApplicationID: p.AppID, CreatorID: creator(p), LatestSupportedTLSVersion: "v1_2",
	}
	if req.LifecycleNotificationURL != nil {
		sub.LifecycleNotificationURL = *req.LifecycleNotificationURL
	}
	if req.ClientState != nil {
		if len([]rune(*req.ClientState)) > maxClientState {
			return presence.Subscription{}, invalid("The clientState is longer than %d characters.", maxClientState)
		}
		sub.ClientState = *req.ClientState
	}
	if sub.ExpirationDateTime, err = n.expiry(*req.ExpirationDateTime); err != nil {
		return presence.Subscription{}, err
	}
	if err := presence.CheckSubscriptionUsers(users); err != nil {
		return presence.Subscription{}, err
	}
	if req.IncludeResourceData != nil && *req.IncludeResourceData {
		if err := checkCertificate(req.EncryptionCertificate, req.EncryptionCertificateID); err != nil {
			return presence.Subscription{}, err
		}
		sub.IncludeResourceData = true
		sub.EncryptionCertificate = *req.EncryptionCertificate
		sub.EncryptionCertificateID = *req.EncryptionCertificateID
	}
	// Checks the spec's validation table does not list come after those it
	// does, so that a request failing a listed check always gets that
	// check's answer; they still come before the conflict and the handshake.
	if req.LatestSupportedTLSVersion != nil {
		switch v := *req.LatestSupportedTLSVersion; v {
		case "v1_0", "v1_1", "v1_2", "v1_3":
			sub.LatestSupportedTLSVersion = v
		default:
			return presence.Subscription{}, invalid("The latestSupportedTlsVersion '%s' is not one of v1_0, v1_1, v1_2, v1_3.", v)
		}
	}
	if len(req.Other) > 0 {
		return presence.Subscription{}, invalid("The property '%s' is not supported for presence subscriptions.", req.Other[0])
	}

	slot := slotKey{sub.Tenant, sub.CreatorID, sub.ApplicationID}
	if err := n.sync(ctx); err != nil {
		return presence.Subscription{}, err
	}
	if err := n.reserve(slot); err != nil {
		return presence.Subscription{}, err
	}
	defer n.release(slot)
	if err := n.handshake(ctx, sub.NotificationURL); err != nil {
		return presence.Subscription{}, err
	}
	if sub.LifecycleNotificationURL != "" {
		if err := n.handshake(ctx, sub.LifecycleNotificationURL); err != nil {
			return presence.Subscription{}, err
		}
	}
	if err := n.store.Put(ctx, sub, n.clock.Now()); err != nil {
		if errors.Is(err, presence.ErrSubscriptionSlotTaken) {
			return presence.Subscription{}, &presence.Error{Code: presence.CodeExtensionError, Message: msgExists, Status: 409}
		}
		return presence.Subscription{}, err
	}
	n.mu.Lock()
	stored := sub
	n.index(&stored)
	n.mu.Unlock()
	n.m.Subscriptions.Inc()
	return sub, nil
}

// checkCertificate checks the encryption certificate of a rich subscription.
func checkCertificate(cert, id *string) error {
	if cert == nil || *cert == "" || id == nil || *id == "" {
		return invalid("A subscription with includeResourceData needs encryptionCertificate and encryptionCertificateId.")
	}
	if len(*id) > maxCertID {
		return invalid("The encryptionCertificateId is longer than %d characters.", maxCertID)
	}
	if _, err := ParseEncryptionCertificate(*cert); err != nil {
		// The cause is for logs; the caller gets Graph's words.
		return invalid("%s", ErrBadCertificate.Error())
	}
	return nil
}

// reserve takes the one presence subscription slot of (tenant, creator, app)
// for a create in progress.
func (n *Notifier) reserve(slot slotKey) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	taken := n.pending[slot]
	if cur := n.subs[n.slots[slot]]; cur != nil {
		// A subscription past its expiry no longer holds the slot, even
		// before lifecycle removes it.
		taken = taken || n.clock.Now().Before(cur.ExpirationDateTime)
	}
	if taken {
		return &presence.Error{Code: presence.CodeExtensionError, Message: msgExists, Status: 409}
	}
	n.pending[slot] = true
	return nil
}

func (n *Notifier) release(slot slotKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.pending, slot)
}

// Get implements presence.Subscriptions: the caller's own subscription, if
// its token may read subscriptions.
func (n *Notifier) Get(ctx context.Context, p presence.Principal, id string) (presence.Subscription, error) {
	if err := n.sync(ctx); err != nil {
		return presence.Subscription{}, err
	}
	sub, err := n.owned(p, id)
	if err != nil {
		return presence.Subscription{}, err
	}
	if err := n.mayRead(p); err != nil {
		return presence.Subscription{}, err
	}
	return sub, nil
}

// List implements presence.Subscriptions: the caller's own subscriptions,
// and with Subscription.Read.All those every application made for the
// signed-in user.
func (n *Notifier) List(ctx context.Context, p presence.Principal) ([]presence.Subscription, error) {
	if err := n.sync(ctx); err != nil {
		return nil, err
	}
	if err := n.mayRead(p); err != nil {
		return nil, err
	}
	anyApp := p.HasScope(scopeSubscriptionReadAll)
	now := n.clock.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []presence.Subscription
	for _, s := range n.subs {
		if s.Tenant == p.Tenant && (anyApp || s.ApplicationID == p.AppID) && s.CreatorID == creator(p) && now.Before(s.ExpirationDateTime) {
			out = append(out, *s)
		}
	}
	slices.SortFunc(out, func(a, b presence.Subscription) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Update implements presence.Subscriptions: renew, move the notification
// URL (with a new handshake), or rotate the encryption certificate.
func (n *Notifier) Update(ctx context.Context, p presence.Principal, id string, req presence.SubscriptionRequest) (presence.Subscription, error) {
	if err := n.sync(ctx); err != nil {
		return presence.Subscription{}, err
	}
	sub, err := n.owned(p, id)
	if err != nil {
		return presence.Subscription{}, err
	}
	if err := n.mayManage(p); err != nil {
		return presence.Subscription{}, err
	}
	switch {
	case len(req.Other) > 0:
		return presence.Subscription{}, invalid("The property '%s' is not supported for presence subscriptions.", req.Other[0])
	case req.LifecycleNotificationURL != nil:
		return presence.Subscription{}, invalid("The lifecycleNotificationUrl cannot be added or changed by an update.")
	case req.Resource != nil || req.ChangeType != nil || req.ClientState != nil || req.IncludeResourceData != nil:
		return presence.Subscription{}, invalid("Only expirationDateTime, notificationUrl, encryptionCertificate and encryptionCertificateId can be updated.")
	}
	if req.ExpirationDateTime != nil {
		if sub.ExpirationDateTime, err = n.expiry(*req.ExpirationDateTime); err != nil {
			return presence.Subscription{}, err
		}
		sub.ReauthorizationSent = false
	}
	if req.EncryptionCertificate != nil || req.EncryptionCertificateID != nil {
		cert, certID := req.EncryptionCertificate, req.EncryptionCertificateID
		if cert == nil {
			cert = &sub.EncryptionCertificate
		}
		if certID == nil {
			certID = &sub.EncryptionCertificateID
		}
		if err := checkCertificate(cert, certID); err != nil {
			return presence.Subscription{}, err
		}
		sub.EncryptionCertificate, sub.EncryptionCertificateID = *cert, *certID
	}
	if req.NotificationURL != nil && *req.NotificationURL != sub.NotificationURL {
		if err := httpsURL("notificationUrl", *req.NotificationURL); err != nil {
			return presence.Subscription{}, err
		}
		if err := n.handshake(ctx, *req.NotificationURL); err != nil {
			return presence.Subscription{}, err
		}
		sub.NotificationURL = *req.NotificationURL
	}
	// The subscription may have been deleted (or have expired) during the
	// handshake: it stays deleted.
	if ok, err := n.store.Replace(ctx, sub); err != nil {
		return presence.Subscription{}, err
	} else if !ok {
		return presence.Subscription{}, notFound(id)
	}
	n.mu.Lock()
	if cur, ok := n.subs[sub.ID]; ok {
		*cur = sub
	}
	n.mu.Unlock()
	return sub, nil
}

// Delete implements presence.Subscriptions.
func (n *Notifier) Delete(ctx context.Context, p presence.Principal, id string) error {
	if err := n.sync(ctx); err != nil {
		return err
	}
	sub, err := n.owned(p, id)
	if err != nil {
		return err
	}
	// Deleting needs what creating needs: a caller that can no longer
	// manage subscriptions cannot remove one either.
	if err := n.mayManage(p); err != nil {
		return err
	}
	if err := n.store.Delete(ctx, sub); err != nil {
		return err
	}
	n.mu.Lock()
	if cur, ok := n.subs[sub.ID]; ok {
		n.unindex(cur)
	}
	n.mu.Unlock()
	n.d.dropSubscription(sub.ID)
	return nil
}

// Reauthorize implements presence.Subscriptions: it confirms the caller
// still may hold the subscription, without extending it.
func (n *Notifier) Reauthorize(ctx context.Context, p presence.Principal, id string) error {
	if err := n.sync(ctx); err != nil {
		return err
	}
	if _, err := n.owned(p, id); err != nil {
		return err
	}
	return n.mayManage(p)
}
