package redisstore

import (
	"context"
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
}

func (o *ownership) init() { o.seen = map[string]time.Time{} }

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
	sent := time.Now()
	ttl := s.opts.LeaseTTL
	var gained, lost []int
	defer func() { s.report(gained, lost) }()

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
	// Stop acting on a partition before releasing it.
	o.mu.Lock()
	for _, p := range drop {
		if o.held[p] {
			o.held[p] = false
			lost = append(lost, p)
		}
	}
	o.mu.Unlock()
	releaseScript.runMulti(ctx, cli, rcalls)

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
