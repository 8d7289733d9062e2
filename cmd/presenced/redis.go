package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/internal/keyfile"
	"github.com/presenced/presenced/notify"
	"github.com/presenced/presenced/redisstore"
)

// redisNode is what --store redis adds to a node: the store every node
// shares, and the pieces of the service that live in it instead of in the
// process (the test clock, the request budgets, the signing keys, the
// subscriptions), plus the two background jobs that make several nodes
// one service: following the changes other nodes make, and delivering the
// notices of the partitions this node owns.
type redisNode struct {
	store     *redisstore.Store
	logger    *slog.Logger
	testHooks bool
	notifier  atomic.Pointer[notify.Notifier]
	bg        context.Context
}

// drainTimeout bounds how long a node that gives a partition up keeps its
// lease while a webhook POST of that partition is in flight: longer than
// a delivery's own timeout.
const drainTimeout = notify.DefaultDeliveryTimeout + 2*time.Second

// Names of the settings and keys the nodes share through Redis.
const (
	settingLimit      = "presencePer30s"
	settingWindow     = "throttleWindowSeconds"
	sharedSignerKey   = "notify-signing-key"
	sharedDevIssuer   = "dev-signing-key"
	outboxSweepPeriod = 5 * time.Second
	// remoteEventQueue bounds the other nodes' changes waiting for this
	// node's event streams.
	remoteEventQueue = 4096
)

// openRedisNode opens the Redis store. It does not fail when Redis is
// down: the node then answers 503 and reports not ready until Redis is
// back (redisstore.Open says why).
func openRedisNode(ctx context.Context, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*redisNode, error) {
	n := &redisNode{logger: logger, testHooks: cfg.TestHooks, bg: context.WithoutCancel(ctx)}
	st, err := redisstore.Open(ctx, redisstore.Options{
		URL:          cfg.RedisURL,
		NodeID:       cfg.NodeID,
		Logger:       logger,
		WaitReplicas: cfg.RedisWaitReplicas,
		Registerer:   reg,
		OnPartitions: n.partitionsChanged,
		Busy:         n.busyPartitions,
		DrainTimeout: drainTimeout,
	})
	if err != nil {
		return nil, fmt.Errorf("open the Redis store: %w", err)
	}
	n.store = st
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "presenced_outbox_pending_users",
		Help: "Users of the partitions this node owns whose webhook notices are not delivered yet (the outbox lag).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(n.bg, 2*time.Second)
		defer cancel()
		v, err := st.PendingOutboxUsers(ctx)
		if err != nil {
			return -1
		}
		return float64(v)
	}))
	return n, nil
}

// partitionsChanged hands the queued notices of the partitions this node
// lost to their new owner (they stay in the outboxes), and queues the
// undelivered notices of the partitions it gained. A partition changes
// hands only once its old owner has no delivery of it in flight and has
// trimmed what it delivered (busyPartitions keeps the lease until then),
// so the new owner reads outboxes that hold exactly what is left to send;
// only a node that dies mid-delivery leaves a notice that is sent twice.
func (n *redisNode) partitionsChanged(gained, lost []int) {
	nt := n.notifier.Load()
	if nt == nil {
		return
	}
	if len(lost) > 0 {
		set := make(map[int]bool, len(lost))
		for _, p := range lost {
			set[p] = true
		}
		nt.HandOff(func(k presence.Key) bool { return set[n.store.Partition(k)] })
	}
	if len(gained) > 0 {
		go n.queueOutboxes(n.bg, gained, nt)
	}
}

// busyPartitions returns the partitions with webhook work in flight on
// this node (redisstore.Options.Busy).
func (n *redisNode) busyPartitions() []int {
	nt := n.notifier.Load()
	if nt == nil {
		return nil
	}
	var ps []int
	for _, k := range nt.InFlight() {
		ps = append(ps, n.store.Partition(k))
	}
	return ps
}

// leave hands this node's partitions over before it stops (a graceful
// stop): the deliveries in flight end and their notices are trimmed
// before any other node takes the partitions.
func (n *redisNode) leave(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, drainTimeout)
	defer cancel()
	if err := n.store.Leave(ctx); err != nil {
		n.logger.Warn("redis: handing partitions over", "err", err)
	}
}

func (n *redisNode) queueOutboxes(ctx context.Context, parts []int, nt *notify.Notifier) {
	for _, p := range parts {
		if err := n.store.PendingOutboxesOf(ctx, p, nt.Pending); err != nil && ctx.Err() == nil {
			n.logger.Warn("redis: listing undelivered notices", "partition", p, "err", err)
		}
	}
}

// attach hands the node its notifier: from now on it delivers the notices
// of the partitions it owns, starting with those left undelivered.
func (n *redisNode) attach(nt *notify.Notifier) {
	n.notifier.Store(nt)
	go n.queueOutboxes(n.bg, n.store.Owned(), nt)
}

// run follows the changes other nodes make, feeding them to this node's
// event streams and waking its deliverer for the users it owns, and sweeps
// the owned partitions' outboxes now and then (pub/sub may lose a wake-up
// across a reconnect; the notices stay in the store until delivered). It
// returns when ctx is done.
func (n *redisNode) run(ctx context.Context, svc *presence.Service) {
	go func() {
		t := time.NewTicker(outboxSweepPeriod)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if nt := n.notifier.Load(); nt != nil {
					n.queueOutboxes(ctx, n.store.Owned(), nt)
				}
			}
		}
	}()
	// Events calls its function on the Redis client's reading goroutine,
	// which must never wait for Redis itself (it would wait for its own
	// reply): wake-ups are handed over at once, and the events for local
	// streams, which read the user's presence, go to the relay (pub/sub is
	// at-most-once anyway; the notices themselves stay in the store).
	relay := newRemoteRelay(remoteEventQueue, svc, n.logger)
	go relay.run(ctx)
	handle := func(re redisstore.RemoteEvent) {
		n.wake(re)
		if len(re.Events) == 0 && !re.Quiet {
			return
		}
		relay.offer(re)
	}
	for ctx.Err() == nil {
		err := n.store.Events(ctx, handle)
		if ctx.Err() != nil {
			return
		}
		n.logger.Warn("redis: following other nodes' changes; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// wake tells the deliverer about notices another node recorded for a user
// this node owns. It does not block.
func (n *redisNode) wake(re redisstore.RemoteEvent) {
	if re.Watched && n.store.Owns(re.Key) {
		if nt := n.notifier.Load(); nt != nil {
			nt.Pending(re.Key)
		}
	}
}

// limiter is the request budget shared by every node. Under --test-hooks
// the budget set through /_test/limits on any node applies on all of them.
func (n *redisNode) limiter() graphapi.Limiter { return redisLimiter{n} }

type redisLimiter struct{ n *redisNode }

func (l redisLimiter) Allow(ctx context.Context, app, tenant string, now time.Time, b graphapi.Budget) (time.Duration, bool, error) {
	if l.n.testHooks {
		m, err := l.n.store.Settings(ctx)
		if err != nil {
			return 0, false, err
		}
		if v, err := strconv.Atoi(m[settingLimit]); err == nil {
			b.Limit = v
		}
		if v, err := strconv.Atoi(m[settingWindow]); err == nil && v > 0 {
			b.Window = time.Duration(v) * time.Second
		}
	}
	return l.n.store.Limiter().AllowWindow(ctx, app, tenant, now, b.Limit, b.Window)
}

// setSetting records a test hook's setting for every node.
func (n *redisNode) setSetting(name string, v int) {
	ctx, cancel := context.WithTimeout(n.bg, 5*time.Second)
	defer cancel()
	if err := n.store.SetSetting(ctx, name, strconv.Itoa(v)); err != nil {
		n.logger.Error("redis: recording a test hook's setting for every node", "setting", name, "err", err)
	}
}

// signer returns the validationToken signer every node shares: the first
// node makes the key and stores it in Redis.
func (n *redisNode) signer(ctx context.Context) (*notify.Signer, error) {
	pem, err := n.store.SharedKey(ctx, sharedSignerKey, notify.NewSignerKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("notification signing key in Redis: %w", err)
	}
	return notify.NewSignerFromPEM("redis:"+sharedSignerKey, pem)
}

// devIssuer returns the development issuer every node shares, so that
// each accepts the tokens `presenced token` mints for any of them. The
// first node offers its own key file (or a new key); the key in Redis is
// then written to the key file of each node that has none, where
// `presenced token --data` finds it.
func (n *redisNode) devIssuer(ctx context.Context, keyFile string) (*auth.DevIssuer, error) {
	local, err := os.ReadFile(keyFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("development key %s: %w", keyFile, err)
	}
	pem, err := n.store.SharedKey(ctx, sharedDevIssuer, func() ([]byte, error) {
		if local != nil {
			return local, nil
		}
		return auth.NewDevKeyPEM()
	})
	if err != nil {
		return nil, fmt.Errorf("development key in Redis: %w", err)
	}
	switch {
	case local == nil:
		err := os.MkdirAll(filepath.Dir(keyFile), 0o700)
		if err == nil {
			err = keyfile.WriteNew(keyFile, pem)
		}
		if err != nil && !errors.Is(err, fs.ErrExist) {
			n.logger.Warn("could not write the shared development key for `presenced token`", "file", keyFile, "err", err)
		}
	case !bytes.Equal(local, pem):
		n.logger.Warn("the development key file differs from the key the nodes share in Redis; tokens signed with the file are refused",
			"file", keyFile)
	}
	return auth.NewDevIssuerFromPEM("redis:"+sharedDevIssuer, pem)
}
