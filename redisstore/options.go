package redisstore

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/rueidis"
)

// Options configure a Store.
type Options struct {
	// URL is where Redis is: redis://[user:password@]host:port/db,
	// rediss://… (TLS), unix:///path/redis.sock, or a comma-separated list
	// of seed addresses (host:port or redis:// URLs) of a Redis Cluster.
	URL string
	// NodeID names this node in leases, heartbeats, events and logs. Every
	// node of one service needs its own. Required.
	NodeID string
	// Logger receives the start-up configuration check and lease changes;
	// nil discards.
	Logger *slog.Logger
	// Prefix starts every key the store writes; default "pd". Two stores
	// with different prefixes on one Redis are independent (tests use it).
	Prefix string
	// WaitReplicas, when above zero, makes every write wait until that many
	// replicas have it (WAIT in the same pipeline as the write, on a
	// connection of its own); a write that fewer replicas acknowledged
	// within WaitTimeout fails with an error matching
	// presence.ErrUnavailable (it may still be on the master).
	WaitReplicas int
	// WaitTimeout bounds WAIT; default 500ms.
	WaitTimeout time.Duration
	// OpTimeout bounds each round trip to Redis on the request path;
	// default 5 s. Past it the call fails as unavailable.
	OpTimeout time.Duration
	// UpdateTimeout bounds the compare-and-set retries of one Update under
	// contention (and the request's context bounds it too); default 10 s.
	UpdateTimeout time.Duration
	// DialTimeout bounds connecting; default 2 s.
	DialTimeout time.Duration
	// LeaseTTL is the life of a partition lease; default 3 s. Leases are
	// renewed every LeaseTTL/3.
	LeaseTTL time.Duration
	// OnPartitions, if set, is called (never concurrently, in order) with
	// the partitions this node gained and lost. Partition numbers are
	// those of Store.Partition. The first call, with the partitions taken
	// at start, comes before Open returns (see Store.Owned).
	OnPartitions func(gained, lost []int)
	// Busy, if set, returns the partitions on which the consumer still has
	// work in flight that it started while it owned them (a webhook POST
	// whose outcome is not yet recorded). A partition this node gives up
	// (to a node that joined, or in Leave) stops being acted on at once,
	// but its lease is kept until Busy no longer names it or DrainTimeout
	// passes, so that its next owner never repeats that work.
	Busy func() []int
	// DrainTimeout bounds how long a partition given up stays leased for
	// Busy; default 10 s.
	DrainTimeout time.Duration
	// Registerer, if set, receives the store's Prometheus metrics.
	Registerer prometheus.Registerer
}

func (o *Options) defaults() error {
	if o.URL == "" {
		return errors.New("redisstore: no URL")
	}
	if o.NodeID == "" {
		return errors.New("redisstore: no NodeID")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Prefix == "" {
		o.Prefix = "pd"
	}
	if strings.ContainsAny(o.Prefix, "{}") {
		return fmt.Errorf("redisstore: prefix %q may not contain braces", o.Prefix)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.WaitTimeout, 500*time.Millisecond)
	def(&o.OpTimeout, 5*time.Second)
	def(&o.UpdateTimeout, 10*time.Second)
	def(&o.DialTimeout, 2*time.Second)
	def(&o.LeaseTTL, 3*time.Second)
	def(&o.DrainTimeout, 10*time.Second)
	if o.WaitReplicas > 0 && o.OpTimeout <= o.WaitTimeout {
		o.OpTimeout = o.WaitTimeout + 500*time.Millisecond // room for WAIT's answer
	}
	return nil
}

// clientOption turns a URL of Options.URL into rueidis's options. A
// comma-separated list is a Redis Cluster's seeds: rueidis.ParseURL does
// not split it, so each element is parsed here and its address added.
func clientOption(url string, dial time.Duration) (rueidis.ClientOption, error) {
	parts := strings.Split(url, ",")
	var opt rueidis.ClientOption
	for i, part := range parts {
		part = strings.TrimSpace(part)
		if part == "" {
			return opt, fmt.Errorf("redisstore: empty address in %q", url)
		}
		if !strings.Contains(part, "://") {
			part = "redis://" + part
		}
		o, err := rueidis.ParseURL(part)
		if err != nil {
			return opt, fmt.Errorf("redisstore: URL %q: %w", redact(part), err)
		}
		if i == 0 {
			opt = o
			continue
		}
		if o.DialCtxFn != nil {
			return opt, fmt.Errorf("redisstore: a Unix socket cannot be a cluster seed (%q)", redact(part))
		}
		opt.InitAddress = append(opt.InitAddress, o.InitAddress...)
	}
	if len(parts) > 1 && opt.DialCtxFn != nil {
		return opt, errors.New("redisstore: a Unix socket cannot be a cluster seed")
	}
	opt.Dialer.Timeout = dial
	// Centrifuge's settings: fail fast and let the caller answer 503.
	opt.DisableRetry = true
	opt.DisableCache = true
	opt.ConnWriteTimeout = 2 * dial
	opt.Dialer.KeepAlive = time.Second
	opt.ClientName = "presenced"
	return opt, nil
}

// redact hides a password in a URL for error messages.
func redact(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	return u[:scheme+3] + "…@" + u[at+1:]
}
