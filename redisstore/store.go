package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
	"github.com/redis/rueidis"
)

var _ presence.Store = (*Store)(nil)

// revLen is the length of the revision that starts every stored value.
const revLen = 8

// lockStripes is the number of per-node mutexes that serialize Updates of
// the same user inside one node.
const lockStripes = 4096

// Store is a presence.Store kept in Redis, shared by every node that opens
// the same keyspace. It is safe for concurrent use.
type Store struct {
	opts   Options
	copt   rueidis.ClientOption
	tags   [Partitions]string
	holder string // this node's lease value: node id and a random token
	seed   maphash.Seed

	cli     atomic.Pointer[rueidis.Client]
	cluster atomic.Bool
	config  atomic.Pointer[ServerConfig]

	locks [lockStripes]chan struct{} // each a mutex that a waiter may give up

	own ownership
	// tickMu is held through each leaseTick; Leave takes it to mark the
	// node leaving, so that no round begun before (whose heartbeat would
	// put the node back among the live ones and whose renewals would take
	// its partitions again) ends after.
	tickMu sync.Mutex
	// reportMu keeps the OnPartitions calls in order (leaseLoop, Leave and
	// Close all report).
	reportMu sync.Mutex
	// subscribed marks the partitions whose change events this node hears
	// now, following counts them, and eventsStarted is set once Events
	// was called (see Following).
	subscribed    [Partitions]atomic.Bool
	following     atomic.Int32
	eventsStarted atomic.Bool
	metrics       *metrics
	bg            context.Context
	stop          context.CancelFunc
	wg            sync.WaitGroup
	closed        atomic.Bool
	closeMu       sync.Mutex
}

// Open opens the store described by opts.
//
// When Redis answers, Open checks the keyspace's meta data and the
// server's durability settings (logging loudly what cannot keep the
// promise), joins the live nodes, takes the partitions this node wins and
// returns. When Redis cannot be reached (connection refused, timeout,
// LOADING), Open does not fail and does not hang: it returns a store whose
// methods answer errors matching presence.ErrUnavailable and whose Ping
// fails, and keeps connecting in the background every second until it
// succeeds or the store is closed. Open fails only for what retrying
// cannot fix: a bad URL or options, refused credentials, a keyspace made
// with another format or number of partitions.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	copt, err := clientOption(opts.URL, opts.DialTimeout)
	if err != nil {
		return nil, err
	}
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	s := &Store{
		opts:    opts,
		copt:    copt,
		tags:    makeTags(),
		holder:  opts.NodeID + ":" + hex.EncodeToString(tok[:]),
		seed:    maphash.MakeSeed(),
		metrics: newMetrics(opts.Registerer),
	}
	s.own.init()
	for i := range s.locks {
		s.locks[i] = make(chan struct{}, 1)
	}
	s.bg, s.stop = context.WithCancel(context.Background())
	err = s.connect(ctx)
	switch {
	case err == nil:
	case errors.Is(err, presence.ErrUnavailable):
		opts.Logger.Warn("redis: not reachable; serving 503 until it is, retrying in the background", "err", err)
		s.wg.Go(s.reconnect)
	default:
		s.stop()
		return nil, err
	}
	return s, nil
}

// connect makes the client, checks the server and the keyspace, takes the
// first leases and starts the lease loop.
func (s *Store) connect(ctx context.Context) error {
	cli, err := rueidis.NewClient(s.copt)
	if err != nil {
		if re, ok := rueidis.IsRedisErr(err); ok && !transient(re) {
			return fmt.Errorf("redisstore: connect: %w", err)
		}
		return presence.Unavailable(fmt.Errorf("redisstore: connect: %w", err))
	}
	s.cluster.Store(cli.Mode() == rueidis.ClientModeCluster)
	cctx, cancel := context.WithTimeout(ctx, 5*s.opts.OpTimeout)
	defer cancel()
	if err := s.checkMeta(cctx, cli); err != nil {
		cli.Close()
		return err
	}
	s.checkConfig(cctx, cli)
	s.cli.Store(&cli)
	s.leaseTick(cctx)
	s.wg.Go(s.leaseLoop)
	return nil
}

// reconnect retries connect every second until it succeeds or the store
// closes.
func (s *Store) reconnect() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.bg.Done():
			return
		case <-t.C:
		}
		err := s.connect(s.bg)
		if err == nil {
			s.opts.Logger.Info("redis: connected")
			return
		}
		if !errors.Is(err, presence.ErrUnavailable) {
			s.opts.Logger.Error("redis: cannot use the keyspace; the store stays unavailable", "err", err)
			return
		}
	}
}

// client returns the Redis client, or an error when the store is closed or
// not connected yet.
func (s *Store) client() (rueidis.Client, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	c := s.cli.Load()
	if c == nil {
		return nil, presence.Unavailable(ErrNotConnected)
	}
	return *c, nil
}

// Ping reports whether Redis answers now (for /readyz): nil, or an error
// matching presence.ErrUnavailable (or ErrClosed).
func (s *Store) Ping(ctx context.Context) error {
	return s.call(ctx, "ping", func(ctx context.Context, cli rueidis.Client) error {
		return cli.Do(ctx, cli.B().Ping().Build()).Error()
	})
}

// call runs one round trip of op with the store's deadline (OpTimeout),
// records it in the metrics and wraps its error.
func (s *Store) call(ctx context.Context, op string, fn func(ctx context.Context, cli rueidis.Client) error) error {
	cli, err := s.client()
	if err != nil {
		return err
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	err = fn(octx, cli)
	s.metrics.roundTrip(op, start, err)
	return wrap(ctx, op, err)
}

// metaKey is the hash recording the keyspace's format.
func (s *Store) metaKey() string  { return s.opts.Prefix + ":{m}:meta" }
func (s *Store) nodesKey() string { return s.opts.Prefix + ":{m}:nodes" }

func (s *Store) stateKey(p int, member string) string {
	return s.opts.Prefix + ":{" + s.tags[p] + "}:u:" + member
}
func (s *Store) dueKey(p int) string     { return s.opts.Prefix + ":{" + s.tags[p] + "}:due" }
func (s *Store) outboxKey(p int) string  { return s.opts.Prefix + ":{" + s.tags[p] + "}:ob" }
func (s *Store) leaseKey(p int) string   { return s.opts.Prefix + ":{" + s.tags[p] + "}:lease" }
func (s *Store) channelKey(p int) string { return s.opts.Prefix + ":{" + s.tags[p] + "}:ev" }

// Partition returns the partition of key, in [0, Partitions).
func (s *Store) Partition(key presence.Key) int { return partitionOf(memberOf(key)) }

// keyFormat is the layout version recorded in the meta hash.
const keyFormat = "1"

func (s *Store) checkMeta(ctx context.Context, cli rueidis.Client) error {
	k := s.metaKey()
	res := cli.DoMulti(ctx,
		cli.B().Hsetnx().Key(k).Field("format").Value(keyFormat).Build(),
		cli.B().Hsetnx().Key(k).Field("partitions").Value(strconv.Itoa(Partitions)).Build(),
		cli.B().Hmget().Key(k).Field("format", "partitions").Build())
	for _, r := range res {
		if err := r.Error(); err != nil {
			return wrap(ctx, "meta", err)
		}
	}
	vals, err := res[2].AsStrSlice()
	if err != nil {
		return wrap(ctx, "meta", err)
	}
	if len(vals) != 2 || vals[0] != keyFormat || vals[1] != strconv.Itoa(Partitions) {
		return fmt.Errorf("redisstore: keyspace %q has format %v, want format %s with %d partitions",
			s.opts.Prefix, vals, keyFormat, Partitions)
	}
	return nil
}

// ServerConfig is what the start-up check read from Redis. A value is
// "unknown" when CONFIG GET was refused (managed services often block it).
type ServerConfig struct {
	AppendOnly      string
	AppendFsync     string
	MaxmemoryPolicy string
	// Durable reports whether the settings keep the promise: every
	// acknowledged write is in an fsynced append-only file and nothing is
	// evicted. False also when a setting is unknown.
	Durable bool
}

// ServerConfig returns what the start-up check found, or nil before the
// store has connected.
func (s *Store) ServerConfig() *ServerConfig { return s.config.Load() }

// checkConfig reads the durability settings of every master and logs
// loudly the ones that cannot keep the durability promise.
func (s *Store) checkConfig(ctx context.Context, cli rueidis.Client) {
	nodes := map[string]rueidis.Client{"": cli}
	if s.cluster.Load() {
		nodes = cli.Nodes()
	}
	var worst *ServerConfig // the first that cannot keep the promise, else any
	for addr, n := range nodes {
		if s.cluster.Load() {
			role, err := n.Do(ctx, n.B().Role().Build()).ToArray()
			if err == nil && len(role) > 0 {
				if r, _ := role[0].ToString(); r != "master" {
					continue
				}
			}
		}
		get := func(name string) string {
			m, err := n.Do(ctx, n.B().ConfigGet().Parameter(name).Build()).AsStrMap()
			if err != nil || m[name] == "" {
				return "unknown"
			}
			return m[name]
		}
		c := ServerConfig{AppendOnly: get("appendonly"), AppendFsync: get("appendfsync"), MaxmemoryPolicy: get("maxmemory-policy")}
		log := s.opts.Logger.With("node", addr)
		switch c.AppendOnly {
		case "yes":
		case "unknown":
			log.Warn("redis: cannot read appendonly (CONFIG GET refused); acknowledged writes are durable only with appendonly yes")
		default:
			log.Error("redis: appendonly is not yes: a restart of redis loses acknowledged writes; run redis-server with --appendonly yes --appendfsync always", "appendonly", c.AppendOnly)
		}
		switch c.AppendFsync {
		case "always":
		case "unknown":
			log.Warn("redis: cannot read appendfsync (CONFIG GET refused); acknowledged writes survive a crash only with appendfsync always")
		default:
			log.Warn("redis: appendfsync is not always: an OS crash or power loss may lose about the last second of acknowledged writes", "appendfsync", c.AppendFsync)
		}
		switch c.MaxmemoryPolicy {
		case "noeviction":
		case "unknown":
			log.Warn("redis: cannot read maxmemory-policy (CONFIG GET refused); it must be noeviction")
		default:
			log.Error("redis: maxmemory-policy is not noeviction: redis may evict users' states (lost presence, reused sequence numbers); set --maxmemory-policy noeviction", "maxmemory-policy", c.MaxmemoryPolicy)
		}
		c.Durable = c.AppendOnly == "yes" && c.AppendFsync == "always" && c.MaxmemoryPolicy == "noeviction"
		if worst == nil || (worst.Durable && !c.Durable) {
			worst = &c
		}
	}
	if worst == nil {
		worst = &ServerConfig{AppendOnly: "unknown", AppendFsync: "unknown", MaxmemoryPolicy: "unknown"}
	}
	s.config.Store(worst)
}

// opCtx returns the context of one round trip: ctx with OpTimeout.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.opts.OpTimeout)
}

// Get returns the states of users in tenant, in order.
func (s *Store) Get(ctx context.Context, tenant string, users []string) ([]presence.State, error) {
	out := make([]presence.State, len(users))
	err := s.read(ctx, tenant, users, func(i int, enc string) error {
		if enc == "" {
			return nil
		}
		st, err := statemap.DecodeState(enc)
		out[i] = st
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Visit calls fn with the state of each of users in tenant, in order,
// decoding into storage reused from one user to the next.
func (s *Store) Visit(ctx context.Context, tenant string, users []string, fn func(i int, s *presence.State)) error {
	var d statemap.Decoder
	var st presence.State
	return s.read(ctx, tenant, users, func(i int, enc string) error {
		if enc == "" {
			st = presence.State{}
		} else if err := d.Decode(enc, &st); err != nil {
			return err
		}
		fn(i, &st)
		return nil
	})
}

// read fetches the stored encodings (without revisions) of users and calls
// each with i and the encoding, "" for a user never written.
func (s *Store) read(ctx context.Context, tenant string, users []string, each func(i int, enc string) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: read: %w", err)
	}
	cli, err := s.client()
	if err != nil {
		return err
	}
	if len(users) == 0 {
		return nil
	}
	keys := make([]string, len(users))
	parts := make([]int, len(users))
	for i, u := range users {
		m := memberOf(presence.Key{Tenant: tenant, User: u})
		parts[i] = partitionOf(m)
		keys[i] = s.stateKey(parts[i], m)
	}
	vals := make([]rueidis.RedisMessage, len(users))
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	if !s.cluster.Load() {
		arr, err := cli.Do(octx, cli.B().Mget().Key(keys...).Build()).ToArray()
		s.metrics.roundTrip("mget", start, err)
		if err != nil {
			return wrap(ctx, "mget", err)
		}
		if len(arr) != len(keys) {
			return fmt.Errorf("redisstore: MGET of %d keys returned %d values", len(keys), len(arr))
		}
		copy(vals, arr)
	} else {
		// One MGET per partition (each one slot), pipelined to the masters.
		byPart := map[int][]int{}
		var order []int
		for i, p := range parts {
			if _, ok := byPart[p]; !ok {
				order = append(order, p)
			}
			byPart[p] = append(byPart[p], i)
		}
		cmds := make([]rueidis.Completed, len(order))
		for j, p := range order {
			ks := make([]string, len(byPart[p]))
			for n, i := range byPart[p] {
				ks[n] = keys[i]
			}
			cmds[j] = cli.B().Mget().Key(ks...).Build()
		}
		res := cli.DoMulti(octx, cmds...)
		var ferr error
		for j, r := range res {
			arr, err := r.ToArray()
			if err != nil {
				ferr = err
				break
			}
			for n, i := range byPart[order[j]] {
				vals[i] = arr[n]
			}
		}
		s.metrics.roundTrip("mget", start, ferr)
		if ferr != nil {
			return wrap(ctx, "mget", ferr)
		}
	}
	for i := range vals {
		enc, err := vals[i].ToString()
		if err != nil && !rueidis.IsRedisNil(err) {
			return fmt.Errorf("redisstore: value of %s:%s: %w", tenant, users[i], err)
		}
		if len(enc) > 0 {
			if len(enc) < revLen {
				return fmt.Errorf("redisstore: value of %s:%s is %d bytes, too short", tenant, users[i], len(enc))
			}
			enc = enc[revLen:]
		}
		if err := each(i, enc); err != nil {
			return fmt.Errorf("redisstore: state of %s:%s: %w", tenant, users[i], err)
		}
	}
	return nil
}

// lock serializes the Updates of one member inside this node, so that
// writers of a hot user queue here instead of losing compare-and-sets to
// each other in Redis. It gives up when ctx ends; unlock releases it.
func (s *Store) lock(ctx context.Context, member string) (unlock func(), err error) {
	l := s.locks[s.stripe(member)]
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stripe is the index of member's lock.
func (s *Store) stripe(member string) uint64 { return maphash.String(s.seed, member) % lockStripes }

// decodeValue splits a stored value into its revision and its state.
func decodeValue(v string) (rev string, st presence.State, err error) {
	if v == "" {
		return "", presence.State{}, nil
	}
	if len(v) < revLen {
		return "", presence.State{}, fmt.Errorf("redisstore: stored value of %d bytes is too short", len(v))
	}
	st, err = statemap.DecodeState(v[revLen:])
	return v[:revLen], st, err
}

// dueScore is the due index's score of an instant: its Unix microseconds
// rounded up (a double holds them exactly until the year 2255), so that
// "score <= floor(now)" implies "Due <= now".
func dueScore(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

// Update atomically applies fn to a copy of the user's state: it reads
// the state, runs fn in Go, and writes the result with a compare-and-set
// on the revision, retrying with the current value when another writer
// came first, until UpdateTimeout or ctx ends. A write whose outcome is
// unknown (the connection failed after the script was sent) is not
// retried: it returns an error matching presence.ErrUnavailable.
func (s *Store) Update(ctx context.Context, key presence.Key, fn func(*presence.State) error) (before, after presence.State, err error) {
	if err := ctx.Err(); err != nil {
		return before, after, fmt.Errorf("redisstore: update %s: %w", key, err)
	}
	cli, err := s.client()
	if err != nil {
		return before, after, err
	}
	member := memberOf(key)
	p := partitionOf(member)
	skey := s.stateKey(p, member)
	deadline := time.Now().Add(s.opts.UpdateTimeout)
	lctx, cancel := context.WithDeadline(ctx, deadline)
	unlock, err := s.lock(lctx, member)
	cancel()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return before, after, fmt.Errorf("redisstore: update %s: %w", key, cerr)
		}
		return before, after, presence.Unavailable(fmt.Errorf("redisstore: update %s: %w", key, ErrContention))
	}
	defer unlock()

	octx, cancel := s.opCtx(ctx)
	start := time.Now()
	cur, gerr := cli.Do(octx, cli.B().Get().Key(skey).Build()).ToString()
	cancel()
	if rueidis.IsRedisNil(gerr) {
		gerr = nil
	}
	s.metrics.roundTrip("get", start, gerr)
	if gerr != nil {
		return before, after, wrap(ctx, "update "+key.String(), gerr)
	}
	for {
		rev, old, err := decodeValue(cur)
		if err != nil {
			return before, after, fmt.Errorf("redisstore: update %s: %w", key, err)
		}
		next := old.Clone()
		if err := fn(&next); err != nil {
			return presence.State{}, presence.State{}, err
		}
		call := s.casCall(key, member, p, rev, &old, &next)
		ok, current, err := s.cas(ctx, cli, call.keys, call.args)
		if err != nil {
			if notExecuted(err) && time.Now().Before(deadline) && ctx.Err() == nil {
				// Refused before it ran (LOADING, TRYAGAIN, …): read
				// again and retry after a pause.
				if !sleepCtx(ctx, 50*time.Millisecond) {
					return before, after, wrap(ctx, "update "+key.String(), err)
				}
				octx, cancel := s.opCtx(ctx)
				cur, gerr = cli.Do(octx, cli.B().Get().Key(skey).Build()).ToString()
				cancel()
				if rueidis.IsRedisNil(gerr) {
					gerr = nil
				}
				if gerr != nil {
					return before, after, wrap(ctx, "update "+key.String(), gerr)
				}
				continue
			}
			return before, after, wrap(ctx, "update "+key.String(), err)
		}
		if ok {
			return old, next.Clone(), nil
		}
		s.metrics.conflict()
		if cerr := ctx.Err(); cerr != nil {
			return before, after, fmt.Errorf("redisstore: update %s: %w", key, cerr)
		}
		if time.Now().After(deadline) {
			return before, after, presence.Unavailable(fmt.Errorf("redisstore: update %s: %w", key, ErrContention))
		}
		cur = current
	}
}

// casCall builds the compare-and-set of member (of key, in partition p)
// from old, stored at revision rev ("" for none), to next.
func (s *Store) casCall(key presence.Key, member string, p int, rev string, old, next *presence.State) scriptCall {
	var newRev uint64 = 1
	if rev != "" {
		newRev = binary.BigEndian.Uint64([]byte(rev)) + 1
	}
	val := binary.BigEndian.AppendUint64(make([]byte, 0, 128), newRev)
	val = statemap.AppendState(val, next)
	args := []string{rev, string(val), member, dueArg(old.Due, next.Due), outboxArg(old.Outbox, next.Outbox), "", s.channelKey(p)}
	if ev := s.eventPayload(key, old, next); ev != nil {
		args[5] = string(ev)
	}
	return scriptCall{keys: []string{s.stateKey(p, member), s.dueKey(p), s.outboxKey(p)}, args: args}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// dueArg is the script's due-index operation for a change of Due.
func dueArg(old, next time.Time) string {
	switch {
	case next.Equal(old) && next.IsZero() == old.IsZero():
		return ""
	case next.IsZero():
		return "-"
	}
	return strconv.FormatInt(dueScore(next), 10)
}

// outboxArg is the script's operation on the set of users with undelivered
// notices.
func outboxArg(old, next []presence.Notice) string {
	switch {
	case len(next) > 0:
		return "+" // idempotent, and repairs a set that lost the member
	case len(old) > 0:
		return "-"
	}
	return ""
}

// cas runs the compare-and-set script once. ok reports whether it wrote;
// when it did not, current is what is stored ("" for nothing).
func (s *Store) cas(ctx context.Context, cli rueidis.Client, keys, args []string) (ok bool, current string, err error) {
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	var res rueidis.RedisResult
	if s.opts.WaitReplicas > 0 {
		res, err = s.casWait(octx, cli, keys, args)
	} else {
		res = casScript.run(octx, cli, keys, args)
	}
	if err == nil {
		err = res.Error()
	}
	s.metrics.roundTrip("cas", start, err)
	if err != nil {
		return false, "", err
	}
	return casReply(res)
}

// casReply reads the compare-and-set script's reply: whether it wrote,
// and when it did not, what is stored ("" for nothing).
func casReply(res rueidis.RedisResult) (ok bool, current string, err error) {
	arr, err := res.ToArray()
	if err != nil || len(arr) == 0 {
		return false, "", fmt.Errorf("redisstore: unexpected CAS reply: %v", err)
	}
	won, err := arr[0].AsInt64()
	if err != nil {
		return false, "", err
	}
	if won == 1 {
		return true, "", nil
	}
	if len(arr) > 1 {
		current, _ = arr[1].ToString()
	}
	return false, current, nil
}

// casWait runs the script and WAIT in one pipeline on a dedicated
// connection (WAIT waits for the offset of its own connection, and must
// not block the shared one), and fails when too few replicas acknowledged.
func (s *Store) casWait(ctx context.Context, cli rueidis.Client, keys, args []string) (rueidis.RedisResult, error) {
	var out rueidis.RedisResult
	err := cli.Dedicated(func(c rueidis.DedicatedClient) error {
		res := c.DoMulti(ctx, casScript.evalsha(c.B(), keys, args), s.waitCmd(c))
		if isNoScript(res[0].Error()) {
			res = c.DoMulti(ctx, casScript.eval(c.B(), keys, args), s.waitCmd(c))
		}
		out = res[0]
		if err := res[0].Error(); err != nil {
			return err
		}
		if arr, _ := res[0].ToArray(); len(arr) > 0 {
			if won, _ := arr[0].AsInt64(); won != 1 {
				return nil // nothing written: nothing to wait for
			}
		}
		return s.reachedReplicas(res[1], "write")
	})
	return out, err
}

// waitCmd is WAIT for Options.WaitReplicas within Options.WaitTimeout, to
// pipeline after a write on the same (dedicated) connection.
func (s *Store) waitCmd(c rueidis.DedicatedClient) rueidis.Completed {
	return c.B().Wait().Numreplicas(int64(s.opts.WaitReplicas)).Timeout(s.opts.WaitTimeout.Milliseconds()).Build()
}

// reachedReplicas checks waitCmd's answer: fewer replicas than asked is
// presence.Unavailable, what (a write) not known to survive a failover.
func (s *Store) reachedReplicas(res rueidis.RedisResult, what string) error {
	n, err := res.AsInt64()
	if err != nil {
		return err
	}
	if n < int64(s.opts.WaitReplicas) {
		return presence.Unavailable(fmt.Errorf("redisstore: %s reached %d of %d replicas within %v", what, n, s.opts.WaitReplicas, s.opts.WaitTimeout))
	}
	return nil
}

// dueEntry is one member of a due index.
type dueEntry struct {
	score int64
	p     int
	m     string
}

// Due returns up to limit users due by now, earliest first, from the
// partitions this node owns now. Other nodes fire the others.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]presence.Key, error) {
	return s.due(ctx, now, limit, s.own.owned(time.Now()))
}

// DueAll is Due over every partition, owned by this node or not. The test
// clock's advance uses it (through presence.Service.FireAll), so that what
// fell due on any node's users has fired before the advance answers; the
// compare-and-set of each user keeps a change from happening twice when
// the owner fires it too.
func (s *Store) DueAll(ctx context.Context, now time.Time, limit int) ([]presence.Key, error) {
	all := make([]int, Partitions)
	for p := range all {
		all[p] = p
	}
	return s.due(ctx, now, limit, all)
}

// due is Due over the partitions owned.
func (s *Store) due(ctx context.Context, now time.Time, limit int, owned []int) ([]presence.Key, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: due: %w", err)
	}
	cli, err := s.client()
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	if len(owned) == 0 {
		return nil, nil
	}
	// Scores are microseconds rounded up: those up to floor(now) are due;
	// when now is not a whole microsecond, those at floor(now)+1 may be,
	// and their states say.
	floor := now.UnixMicro()
	maxScore := floor
	exact := now.Nanosecond()%1000 == 0
	if !exact {
		maxScore++
	}
	max := strconv.FormatInt(maxScore, 10)
	cmds := make([]rueidis.Completed, len(owned))
	for i, p := range owned {
		cmds[i] = cli.B().Zrangebyscore().Key(s.dueKey(p)).Min("-inf").Max(max).Withscores().Limit(0, int64(limit)).Build()
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	res := cli.DoMulti(octx, cmds...)
	var all, unsure []dueEntry
	var ferr error
	for i, r := range res {
		zs, err := r.AsZScores()
		if err != nil {
			ferr = err
			break
		}
		for _, z := range zs {
			e := dueEntry{score: int64(z.Score), p: owned[i], m: z.Member}
			if e.score > floor {
				unsure = append(unsure, e)
			} else {
				all = append(all, e)
			}
		}
	}
	s.metrics.roundTrip("due", start, ferr)
	if ferr != nil {
		return nil, wrap(ctx, "due", ferr)
	}
	if len(unsure) > 0 {
		cmds := make([]rueidis.Completed, len(unsure))
		for i, e := range unsure {
			cmds[i] = cli.B().Get().Key(s.stateKey(e.p, e.m)).Build()
		}
		for i, r := range cli.DoMulti(octx, cmds...) {
			v, err := r.ToString()
			if rueidis.IsRedisNil(err) {
				continue
			}
			if err != nil {
				return nil, wrap(ctx, "due", err)
			}
			if _, st, err := decodeValue(v); err == nil && !st.Due.IsZero() && !st.Due.After(now) {
				all = append(all, unsure[i])
			}
		}
	}
	slices.SortFunc(all, func(a, b dueEntry) int {
		if a.score != b.score {
			if a.score < b.score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.m, b.m)
	})
	if len(all) > limit {
		all = all[:limit]
	}
	keys := make([]presence.Key, 0, len(all))
	for _, e := range all {
		k, rest, err := statemap.DecodeKey([]byte(e.m))
		if err != nil || len(rest) != 0 {
			s.opts.Logger.Error("redis: invalid member in due index", "partition", e.p, "err", err)
			continue
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// Scan calls fn with every user's state, SCANning each master for the
// keyspace's state keys. It is for start-up work and tests, not requests.
func (s *Store) Scan(ctx context.Context, fn func(presence.Key, presence.State) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: scan: %w", err)
	}
	cli, err := s.client()
	if err != nil {
		return err
	}
	nodes := map[string]rueidis.Client{"": cli}
	if s.cluster.Load() {
		nodes = cli.Nodes()
	}
	pattern := globEscape(s.opts.Prefix) + ":{*}:u:*"
	for _, n := range nodes {
		if s.cluster.Load() {
			octx, cancel := s.opCtx(ctx)
			role, err := n.Do(octx, n.B().Role().Build()).ToArray()
			cancel()
			if err != nil {
				return wrap(ctx, "scan", err)
			}
			if r, _ := role[0].ToString(); r != "master" {
				continue
			}
		}
		var cursor uint64
		for {
			octx, cancel := s.opCtx(ctx)
			entry, err := n.Do(octx, n.B().Scan().Cursor(cursor).Match(pattern).Count(1000).Build()).AsScanEntry()
			cancel()
			if err != nil {
				return wrap(ctx, "scan", err)
			}
			if len(entry.Elements) > 0 {
				if err := s.scanBatch(ctx, n, entry.Elements, fn); err != nil {
					return err
				}
			}
			cursor = entry.Cursor
			if cursor == 0 {
				break
			}
		}
	}
	return nil
}

func (s *Store) scanBatch(ctx context.Context, n rueidis.Client, keys []string, fn func(presence.Key, presence.State) error) error {
	cmds := make([]rueidis.Completed, len(keys))
	for i, k := range keys {
		cmds[i] = n.B().Get().Key(k).Build()
	}
	octx, cancel := s.opCtx(ctx)
	res := n.DoMulti(octx, cmds...)
	cancel()
	for i, r := range res {
		v, err := r.ToString()
		if rueidis.IsRedisNil(err) {
			continue // deleted since the SCAN
		}
		if err != nil {
			return wrap(ctx, "scan", err)
		}
		member, ok := s.memberOfKey(keys[i])
		if !ok {
			continue
		}
		key, rest, err := statemap.DecodeKey([]byte(member))
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("redisstore: scan: invalid key %q", keys[i])
		}
		_, st, err := decodeValue(v)
		if err != nil {
			return fmt.Errorf("redisstore: scan %s: %w", key, err)
		}
		if err := fn(key, st); err != nil {
			return err
		}
	}
	return nil
}

// memberOfKey returns the member of a state key.
func (s *Store) memberOfKey(k string) (string, bool) {
	rest, ok := strings.CutPrefix(k, s.opts.Prefix+":{")
	if !ok {
		return "", false
	}
	i := strings.Index(rest, "}:u:")
	if i < 0 {
		return "", false
	}
	return rest[i+4:], true
}

// globEscape escapes the characters SCAN's MATCH treats specially.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// PendingOutboxes calls fn with every user, in the partitions this node
// owns, whose state holds undelivered notices: what a new owner (or a
// restarted node) must deliver, found without scanning every user.
func (s *Store) PendingOutboxes(ctx context.Context, fn func(presence.Key)) error {
	for _, p := range s.own.owned(time.Now()) {
		if err := s.PendingOutboxesOf(ctx, p, fn); err != nil {
			return err
		}
	}
	return nil
}

// PendingOutboxesOf calls fn with every user of partition p whose state
// holds undelivered notices, whoever owns p.
func (s *Store) PendingOutboxesOf(ctx context.Context, p int, fn func(presence.Key)) error {
	cli, err := s.client()
	if err != nil {
		return err
	}
	if p < 0 || p >= Partitions {
		return fmt.Errorf("redisstore: no partition %d", p)
	}
	var cursor uint64
	for {
		octx, cancel := s.opCtx(ctx)
		entry, err := cli.Do(octx, cli.B().Sscan().Key(s.outboxKey(p)).Cursor(cursor).Count(1000).Build()).AsScanEntry()
		cancel()
		if err != nil {
			return wrap(ctx, "pending outboxes", err)
		}
		for _, m := range entry.Elements {
			key, rest, err := statemap.DecodeKey([]byte(m))
			if err != nil || len(rest) != 0 {
				s.opts.Logger.Error("redis: invalid member in outbox set", "partition", p)
				continue
			}
			fn(key)
		}
		if cursor = entry.Cursor; cursor == 0 {
			return nil
		}
	}
}

// Close stops the lease loop, releases this node's leases (so that other
// nodes take its partitions at once), leaves the live set and closes the
// connections. Closing twice returns ErrClosed.
func (s *Store) Close() error {
	return s.shutdown(true)
}

func (s *Store) shutdown(release bool) error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	s.stop()
	s.wg.Wait()
	c := s.cli.Load()
	if c != nil && release {
		ctx, cancel := context.WithTimeout(context.Background(), 2*s.opts.OpTimeout)
		s.releaseAll(ctx, *c)
		cancel()
	}
	s.closed.Store(true)
	if c != nil {
		(*c).Close()
	}
	return nil
}

// logger returns the store's logger.
func (s *Store) logger() *slog.Logger { return s.opts.Logger }

// PendingOutboxUsers counts the users of the partitions this node owns
// whose outbox holds notices not yet delivered: the node's outbox lag, as
// a number of users (a growing figure means deliveries fall behind).
func (s *Store) PendingOutboxUsers(ctx context.Context) (int64, error) {
	cli, err := s.client()
	if err != nil {
		return 0, err
	}
	owned := s.own.owned(time.Now())
	if len(owned) == 0 {
		return 0, nil
	}
	cmds := make([]rueidis.Completed, len(owned))
	for i, p := range owned {
		cmds[i] = cli.B().Scard().Key(s.outboxKey(p)).Build()
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	var total int64
	for _, r := range cli.DoMulti(octx, cmds...) {
		n, err := r.AsInt64()
		if err != nil {
			return 0, wrap(ctx, "pending outbox users", err)
		}
		total += n
	}
	return total, nil
}
