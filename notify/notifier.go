package notify

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
)

// Defaults of Config.
const (
	DefaultMaxLifetime       = 60 * time.Minute
	MinLifetime              = 45 * time.Minute
	DefaultValidationTimeout = 10 * time.Second
	DefaultDeliveryTimeout   = 3 * time.Second
	// ReauthorizationNotice is how long before expiry reauthorizationRequired
	// is sent.
	ReauthorizationNotice = 15 * time.Minute
)

// Config is what a Notifier needs.
type Config struct {
	Service *presence.Service
	// Dir keeps the subscriptions; empty keeps them in memory only.
	Dir string
	// Client calls notification URLs (handshakes and deliveries); it should
	// trust the roots of --webhook-ca-file.
	Client *http.Client
	Signer *Signer
	// Issuer is the iss of validation tokens: the server's public URL.
	Issuer string
	// AllowAppSubscriptions lets application tokens with Presence.Read.All
	// subscribe (Graph allows only delegated ones).
	AllowAppSubscriptions bool
	MaxLifetime           time.Duration
	ValidationTimeout     time.Duration
	DeliveryTimeout       time.Duration
	// Workers is how many deliveries run at once (default DefaultWorkers).
	Workers int
	// DeliveryLog, when set, records delivery attempts for the console
	// instead of memory (MemoryDeliveryLog): a shared log shows every
	// node's deliveries.
	DeliveryLog presence.DeliveryLog
	// PerHost is how many of them may go to one receiver host (host and
	// port) at once (default DefaultPerHost), so that a slow or failing
	// receiver delays only its own subscriptions.
	PerHost int
	// MaxQueued bounds the notifications held in memory for delivery
	// (default DefaultMaxQueued); beyond it new changes wait in the users'
	// durable outboxes. MaxQueuedPerSubscription bounds one subscription's
	// (default DefaultMaxQueuedPerSubscription); beyond it its new
	// notifications are dropped and counted.
	MaxQueued, MaxQueuedPerSubscription int
	Logger                              *slog.Logger
	Metrics                             *Metrics
	// Subscriptions, when set, keeps the subscriptions instead of a file
	// in Dir: a shared store makes several nodes one service.
	Subscriptions presence.SubscriptionStore
	// Owns, when set, tells whether this node delivers the notifications
	// of a user; with several nodes exactly one node owns each user at a
	// time. Nil means this node delivers every user's.
	Owns func(presence.Key) bool
	// Leader, when set, tells whether this node runs the subscriptions'
	// lifecycle (expiry and reauthorization notices), so that a notice is
	// sent by one node, not by each. Nil means it does.
	Leader func() bool
}

// Notifier is presence's change-notification service: it keeps
// subscriptions, watches their users' changes through the Service's outbox,
// and delivers them to webhooks with retries.
type Notifier struct {
	cfg    Config
	svc    *presence.Service
	clock  presence.Clock
	store  presence.SubscriptionStore
	logger *slog.Logger
	m      *Metrics

	mu      sync.Mutex
	subs    map[string]*presence.Subscription
	byUser  map[presence.Key][]string // subscription ids watching a user
	slots   map[slotKey]string        // (tenant, creator, app) -> subscription id
	pending map[slotKey]bool          // slots reserved by a create in progress
	version uint64                    // the store's version the index was loaded at
	shared  bool                      // other nodes write the store too
	// reload lets one sync at a time load the shared store: the writers
	// that find the version moved at once wait for that load instead of
	// each loading every subscription (64 scheduler workers would).
	reload sync.Mutex

	d    *deliverer
	dlog presence.DeliveryLog // recent delivery attempts, for the console
}

type slotKey struct{ tenant, creator, app string }

var _ presence.Subscriptions = (*Notifier)(nil)
var _ presence.Watcher = (*Notifier)(nil)

// New opens the subscription store and returns a Notifier; call Run to
// start delivering, and install it on the Service with SetWatcher (New does
// that).
func New(cfg Config) (*Notifier, error) {
	if cfg.MaxLifetime <= 0 {
		cfg.MaxLifetime = DefaultMaxLifetime
	}
	if cfg.ValidationTimeout <= 0 {
		cfg.ValidationTimeout = DefaultValidationTimeout
	}
	if cfg.DeliveryTimeout <= 0 {
		cfg.DeliveryTimeout = DefaultDeliveryTimeout
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.PerHost <= 0 {
		cfg.PerHost = DefaultPerHost
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = DefaultMaxQueued
	}
	if cfg.MaxQueuedPerSubscription <= 0 {
		cfg.MaxQueuedPerSubscription = DefaultMaxQueuedPerSubscription
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		cfg.Client = http.DefaultClient
	}
	cfg.Client = observeClient(cfg.Client)
	if cfg.DeliveryLog == nil {
		cfg.DeliveryLog = NewMemoryDeliveryLog()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	st := cfg.Subscriptions
	if st == nil {
		fs, err := openSubStore(cfg.Dir)
		if err != nil {
			return nil, err
		}
		st = fileSubs{fs}
	}
	n := &Notifier{
		cfg: cfg, svc: cfg.Service, clock: cfg.Service.Clock(), store: st, logger: cfg.Logger, m: cfg.Metrics,
		subs: map[string]*presence.Subscription{}, byUser: map[presence.Key][]string{},
		slots: map[slotKey]string{}, pending: map[slotKey]bool{}, dlog: cfg.DeliveryLog,
	}
	_, local := st.(fileSubs)
	n.shared = !local
	all, version, err := st.Load(context.Background())
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	for _, sub := range all {
		n.index(&sub)
	}
	n.version = version
	n.d = newDeliverer(n)
	n.m.outboxDropped = func() float64 { return float64(cfg.Service.Stats().OutboxDropped) }
	cfg.Service.SetWatcher(n)
	return n, nil
}

// Run delivers until ctx is done: it drains new changes and retries on the
// clock. What a crash left in outboxes is delivered once the service's
// Recover has reported it through Pending.
func (n *Notifier) Run(ctx context.Context) {
	n.d.run(ctx)
}

// Close releases the subscription store.
func (n *Notifier) Close() error { return n.store.Close() }

// Watching implements presence.Watcher.
func (n *Notifier) Watching(k presence.Key) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.byUser[k]) > 0
}

// Pending implements presence.Watcher. A user this node does not own
// (Config.Owns) is left to its owner, which learns of the notices from the
// store.
func (n *Notifier) Pending(k presence.Key) {
	if n.cfg.Owns != nil && !n.cfg.Owns(k) {
		return
	}
	n.d.pending(k)
}

// HandOff gives up the queued notices of the users gone names, which this
// node no longer owns (Config.Owns): they stay in the users' outboxes for
// their new owner. Notices already in a POST finish here; InFlight names
// their users until then.
func (n *Notifier) HandOff(gone func(presence.Key) bool) { n.d.handOff(gone) }

// InFlight returns the users whose notices this node is POSTing now, or
// whose delivered notices it has yet to trim from their outboxes: a node
// handing their partition over waits for them, so that the next owner
// neither repeats a delivery nor misses one.
func (n *Notifier) InFlight() []presence.Key { return n.d.inFlight() }

// SyncWatching implements presence.WatchSyncer: with a shared subscription
// store it reloads the index when another node changed a subscription, so
// that a write made after a subscription's 201 on any node keeps its
// notices. With the file store it does nothing.
func (n *Notifier) SyncWatching(ctx context.Context) error { return n.sync(ctx) }

// WatchShared implements presence.WatchSyncer: whether the subscriptions
// are in a store other nodes share.
func (n *Notifier) WatchShared() bool { return n.shared }

// sync reloads the index from the store when the store's version moved.
func (n *Notifier) sync(ctx context.Context) error {
	if !n.shared {
		return nil
	}
	v, err := n.store.Version(ctx)
	if err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	n.mu.Lock()
	same := v == n.version
	n.mu.Unlock()
	if same {
		return nil
	}
	n.reload.Lock()
	defer n.reload.Unlock()
	// Another sync may have loaded while this one waited: the index is
	// current if it holds the version the store has now.
	if v, err = n.store.Version(ctx); err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	n.mu.Lock()
	same = v == n.version
	n.mu.Unlock()
	if same {
		return nil
	}
	all, v, err := n.store.Load(ctx)
	if err != nil {
		return fmt.Errorf("subscriptions: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if v == n.version {
		return nil
	}
	gone := make(map[string]bool, len(n.subs))
	for id := range n.subs {
		gone[id] = true
	}
	n.subs = make(map[string]*presence.Subscription, len(all))
	n.byUser = make(map[presence.Key][]string)
	n.slots = make(map[slotKey]string)
	for i := range all {
		delete(gone, all[i].ID)
		n.index(&all[i])
	}
	n.version = v
	for id := range gone {
		// Deleted on another node: nothing more goes to it from here.
		go n.d.dropSubscription(id)
	}
	return nil
}

// Flush makes everything that fell due by the clock's now happen before it
// returns: subscription expiries and reauthorization notices, the draining
// of outboxes, and every delivery or retry that is due. The test clock's
// advance calls it.
func (n *Notifier) Flush(ctx context.Context) error {
	n.lifecycle(ctx)
	return n.d.flush(ctx)
}

// index adds sub to the in-memory indexes; n.mu held or not yet shared.
func (n *Notifier) index(sub *presence.Subscription) {
	n.subs[sub.ID] = sub
	n.slots[slotKey{sub.Tenant, sub.CreatorID, sub.ApplicationID}] = sub.ID
	for _, u := range sub.Users {
		k := presence.Key{Tenant: sub.Tenant, User: u}
		n.byUser[k] = append(n.byUser[k], sub.ID)
	}
}

// unindex removes sub from the indexes; n.mu held.
func (n *Notifier) unindex(sub *presence.Subscription) {
	delete(n.subs, sub.ID)
	if slot := (slotKey{sub.Tenant, sub.CreatorID, sub.ApplicationID}); n.slots[slot] == sub.ID {
		// An expired subscription's slot may already hold its successor.
		delete(n.slots, slot)
	}
	for _, u := range sub.Users {
		k := presence.Key{Tenant: sub.Tenant, User: u}
		ids := slices.DeleteFunc(n.byUser[k], func(id string) bool { return id == sub.ID })
		if len(ids) == 0 {
			delete(n.byUser, k)
		} else {
			n.byUser[k] = ids
		}
	}
}

// subscribers returns copies of the subscriptions watching k.
func (n *Notifier) subscribers(k presence.Key) []presence.Subscription {
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := n.byUser[k]
	out := make([]presence.Subscription, 0, len(ids))
	for _, id := range ids {
		out = append(out, *n.subs[id])
	}
	return out
}

// subscription returns a copy of the subscription id, if it exists.
func (n *Notifier) subscription(id string) (presence.Subscription, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, ok := n.subs[id]
	if !ok {
		return presence.Subscription{}, false
	}
	return *s, true
}

// lifecycle sends reauthorizationRequired to subscriptions about to expire
// and deletes the expired ones, at the clock's now.
func (n *Notifier) lifecycle(ctx context.Context) {
	if n.cfg.Leader != nil && !n.cfg.Leader() {
		return
	}
	if err := n.sync(ctx); err != nil {
		n.logger.ErrorContext(ctx, "subscription lifecycle", "err", err)
		return
	}
	now := n.clock.Now()
	var expired []presence.Subscription
	var remind []presence.Subscription
	n.mu.Lock()
	for _, s := range n.subs {
		switch {
		case !now.Before(s.ExpirationDateTime):
			expired = append(expired, *s)
		case !s.ReauthorizationSent && s.LifecycleNotificationURL != "" && !now.Before(s.ExpirationDateTime.Add(-ReauthorizationNotice)):
			s.ReauthorizationSent = true
			remind = append(remind, *s)
		}
	}
	for i := range expired {
		n.unindex(&expired[i])
	}
	n.mu.Unlock()
	for _, s := range expired {
		if err := n.store.Delete(ctx, s); err != nil {
			n.logger.ErrorContext(ctx, "deleting an expired subscription", "id", s.ID, "err", err)
		}
		n.d.dropSubscription(s.ID)
		n.m.Expired.Inc()
	}
	for _, s := range remind {
		if _, err := n.store.Replace(ctx, s); err != nil {
			n.logger.ErrorContext(ctx, "recording a reauthorization notice", "id", s.ID, "err", err)
		}
		n.d.lifecycleEvent(s, "reauthorizationRequired")
	}
}
