package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/redis/rueidis"
)

// leaseMargin is how long before its lease's expiry, on this node's
// monotonic clock, a node stops acting on a partition: room for clock
// drift and for the round trip of the renewal that set it.
const leaseMargin = 500 * time.Millisecond

// ownership is what this node believes it holds.
type ownership struct {
	mu    sync.Mutex
	held  [Partitions]bool
	until [Partitions]time.Time // monotonic: stop acting at this instant
	seen  map[string]time.Time  // when this node first saw each live node
	// draining holds the partitions this node gave up but still leases
	// while Options.Busy names them, each until its deadline.
	draining map[int]time.Time
	// leaving is set by Leave: the node acts on nothing any more and
	// only keeps the leases it drains.
	leaving bool
}

func (o *ownership) init() {
	o.seen = map[string]time.Time{}
	o.draining = map[int]time.Time{}
}

// owned returns the partitions this node may act on at now.
func (o *ownership) owned(now time.Time) []int {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ps []int
	for p := range Partitions {
		if o.held[p] && now.Before(o.until[p]) {
			ps = append(ps, p)
		}
	}
	return ps
}

func (o *ownership) owns(p int, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held[p] && now.Before(o.until[p])
}

// Owns reports whether this node owns the partition of key now: whether it
// fires that user's timers and delivers its notices.
func (s *Store) Owns(key presence.Key) bool {
	return s.own.owns(s.Partition(key), time.Now())
}

// OwnsPartition reports whether this node owns partition p now.
func (s *Store) OwnsPartition(p int) bool { return s.own.owns(p, time.Now()) }

// OwnedPartitions returns how many partitions this node owns now.
func (s *Store) OwnedPartitions() int { return len(s.own.owned(time.Now())) }

// leaseLoop renews and rebalances the leases every LeaseTTL/3 until the
// store closes.
func (s *Store) leaseLoop() {
	t := time.NewTicker(s.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(s.bg, s.opts.LeaseTTL/3)
		s.leaseTick(ctx)
		cancel()
	}
}

// leaseTick is one round: heartbeat (which returns the live nodes, by
// Redis's clock), then for every partition: acquire or renew it when this
// node wins it by rendezvous hashing over the live nodes; keep renewing a
// held partition whose winner is not yet stable (live for two rounds), so
// that a hand-over leaves no gap; release one whose stable winner is
// another node. Partitions whose validity ran out are dropped.
func (s *Store) leaseTick(ctx context.Context) {
	c := s.cli.Load()
	if c == nil {
		return
	}
	cli := *c
	s.tickMu.Lock()
	defer s.tickMu.Unlock()
	sent := time.Now()
	ttl := s.opts.LeaseTTL
	var gained, lost []int
	defer func() { s.report(gained, lost) }()

	s.own.mu.Lock()
	leaving := s.own.leaving
	s.own.mu.Unlock()
	if leaving {
		s.drainLeases(ctx, cli, s.busy(), nil)
		return
	}

	hb := heartbeatScript.run(ctx, cli, []string{s.nodesKey()},
		[]string{s.opts.NodeID, strconv.FormatInt(ttl.Milliseconds(), 10), "3600000"})
	live, err := hb.AsStrSlice()
	s.metrics.roundTrip("heartbeat", sent, err)
	if err != nil {
		s.logger().Debug("redis: heartbeat failed", "err", err)
		lost = s.expire(sent)
		return
	}
	if !slices.Contains(live, s.opts.NodeID) {
		live = append(live, s.opts.NodeID)
	}
	o := &s.own
	o.mu.Lock()
	for n := range o.seen {
		if !slices.Contains(live, n) {
			delete(o.seen, n)
		}
	}
	for _, n := range live {
		if _, ok := o.seen[n]; !ok {
			o.seen[n] = sent
		}
	}
	stable := func(n string) bool {
		return n == s.opts.NodeID || sent.Sub(o.seen[n]) >= 2*ttl/3
	}
	var take, drop []int
	for p := range Partitions {
		win, best := "", uint64(0)
		for _, n := range live {
			if w := rendezvous(n, p); win == "" || w > best || (w == best && n < win) {
				win, best = n, w
			}
		}
		switch {
		case win == s.opts.NodeID:
			take = append(take, p)
		case o.held[p] && !stable(win):
			take = append(take, p)
		case o.held[p]:
			drop = append(drop, p)
		}
	}
	o.mu.Unlock()

	calls := make([]scriptCall, 0, len(take))
	for _, p := range take {
		calls = append(calls, scriptCall{keys: []string{s.leaseKey(p)}, args: []string{s.holder, strconv.FormatInt(ttl.Milliseconds(), 10)}})
	}
	res := leaseScript.runMulti(ctx, cli, calls)
	rcalls := make([]scriptCall, 0, len(drop))
	for _, p := range drop {
		rcalls = append(rcalls, scriptCall{keys: []string{s.leaseKey(p)}, args: []string{s.holder}})
	}
	// Stop acting on a partition before releasing it; with Busy, keep its
	// lease while the work started on it ends (drainLeases releases it).
	o.mu.Lock()
	for _, p := range drop {
		if o.held[p] {
			o.held[p] = false
			lost = append(lost, p)
		}
		if s.opts.Busy != nil {
			if _, ok := o.draining[p]; !ok {
				o.draining[p] = sent.Add(s.opts.DrainTimeout)
			}
		}
	}
	o.mu.Unlock()
	if s.opts.Busy == nil {
		releaseScript.runMulti(ctx, cli, rcalls)
	}
	// Busy is asked only now that the dropped partitions are no longer
	// acted on: work it does not name cannot start on them any more.
	s.drainLeases(ctx, cli, s.busy(), take)

	until := sent.Add(ttl - leaseMargin)
	o.mu.Lock()
	for i, p := range take {
		r, err := res[i].AsInt64()
		switch {
		case err != nil:
			// Unknown: keep what we had until its validity runs out.
		case r == 0:
			if o.held[p] {
				o.held[p] = false
				lost = append(lost, p)
			}
		default:
			if !o.held[p] {
				o.held[p] = true
				gained = append(gained, p)
				s.metrics.takeovers.Add(1)
				s.metrics.takeoversC.Inc()
			}
			o.until[p] = until
		}
	}
	o.mu.Unlock()
	lost = append(lost, s.expire(time.Now())...)
}

// busy returns the set of partitions Options.Busy names.
func (s *Store) busy() map[int]bool {
	if s.opts.Busy == nil {
		return nil
	}
	m := map[int]bool{}
	for _, p := range s.opts.Busy() {
		m[p] = true
	}
	return m
}

// drainLeases renews the leases of the partitions being drained that busy
// still names, until their deadline, and releases the others; a partition
// this round takes again (taken) is no longer drained. It returns how many
// are still drained.
func (s *Store) drainLeases(ctx context.Context, cli rueidis.Client, busy map[int]bool, taken []int) int {
	now := time.Now()
	o := &s.own
	var renew, release []scriptCall
	o.mu.Lock()
	for p, deadline := range o.draining {
		switch {
		case slices.Contains(taken, p):
			delete(o.draining, p)
		case busy[p] && now.Before(deadline):
			renew = append(renew, scriptCall{keys: []string{s.leaseKey(p)}, args: []string{s.holder, strconv.FormatInt(s.opts.LeaseTTL.Milliseconds(), 10)}})
		default:
			delete(o.draining, p)
			release = append(release, scriptCall{keys: []string{s.leaseKey(p)}, args: []string{s.holder}})
		}
	}
	left := len(o.draining)
	o.mu.Unlock()
	if len(renew) > 0 {
		leaseScript.runMulti(ctx, cli, renew)
	}
	if len(release) > 0 {
		releaseScript.runMulti(ctx, cli, release)
	}
	return left
}

// Leave hands this node's partitions over before it stops: it stops acting
// on every partition at once (OnPartitions reports them lost), leaves the
// live set so that other nodes become their owners, and releases each
// lease as soon as Options.Busy no longer names it (or DrainTimeout, or
// ctx, ends the wait). Close after Leave releases whatever is left.
func (s *Store) Leave(ctx context.Context) error {
	c := s.cli.Load()
	if c == nil {
		return ErrClosed
	}
	cli := *c
	// A round in flight ends first: begun before the node was leaving, it
	// would put it back among the live nodes and take its partitions again
	// (and stop draining them) after this hands them over.
	s.tickMu.Lock()
	now := time.Now()
	o := &s.own
	var lost []int
	o.mu.Lock()
	o.leaving = true
	for p := range Partitions {
		if o.held[p] {
			o.held[p] = false
			lost = append(lost, p)
			if _, ok := o.draining[p]; !ok {
				o.draining[p] = now.Add(s.opts.DrainTimeout)
			}
		}
	}
	o.mu.Unlock()
	s.tickMu.Unlock()
	s.report(nil, lost)
	if err := cli.Do(ctx, cli.B().Zrem().Key(s.nodesKey()).Member(s.opts.NodeID).Build()).Error(); err != nil {
		return fmt.Errorf("redisstore: leaving the live nodes: %w", err)
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for s.drainLeases(ctx, cli, s.busy(), nil) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("redisstore: handing partitions over: %w", ctx.Err())
		case <-t.C:
		}
	}
	return nil
}

// expire drops the partitions whose validity ran out and returns them.
func (s *Store) expire(now time.Time) []int {
	o := &s.own
	o.mu.Lock()
	defer o.mu.Unlock()
	var lost []int
	for p := range Partitions {
		if o.held[p] && !now.Before(o.until[p]) {
			o.held[p] = false
			lost = append(lost, p)
		}
	}
	return lost
}

// report updates the metrics and tells OnPartitions.
func (s *Store) report(gained, lost []int) {
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	n := s.OwnedPartitions()
	s.metrics.owned.Store(int64(n))
	s.metrics.ownedG.Set(float64(n))
	if len(gained)+len(lost) == 0 {
		return
	}
	slices.Sort(gained)
	slices.Sort(lost)
	s.logger().Info("redis: partitions changed", "node", s.opts.NodeID, "gained", len(gained), "lost", len(lost), "owned", n)
	if s.opts.OnPartitions != nil {
		s.opts.OnPartitions(gained, lost)
	}
}

// releaseAll releases every lease this node holds and leaves the live set,
// so other nodes take its partitions at their next round.
func (s *Store) releaseAll(ctx context.Context, cli rueidis.Client) {
	o := &s.own
	o.mu.Lock()
	var calls []scriptCall
	var lost []int
	for p := range Partitions {
		if o.held[p] {
			o.held[p] = false
			lost = append(lost, p)
		}
		// Release even what we no longer believe we hold: the script
		// deletes only our own value.
		calls = append(calls, scriptCall{keys: []string{s.leaseKey(p)}, args: []string{s.holder}})
	}
	o.mu.Unlock()
	s.report(nil, lost)
	releaseScript.runMulti(ctx, cli, calls)
	cli.Do(ctx, cli.B().Zrem().Key(s.nodesKey()).Member(s.opts.NodeID).Build())
}

// Leader reports whether this node is the service's leader now, for the
// work one node must do for all (the subscriptions' lifecycle): the owner
// of partition 0 is the leader, so leadership moves with that lease.
func (s *Store) Leader() bool { return s.own.owns(0, time.Now()) }

// Owned returns the partitions this node owns now, in order. With
// OnPartitions it lets a consumer wired after Open (the first gains are
// reported inside Open) start from the current set.
func (s *Store) Owned() []int { return s.own.owned(time.Now()) }

// NodeID returns the node's id, as in Options.NodeID.
func (s *Store) NodeID() string { return s.opts.NodeID }
