// Package connect serves client connections: GET /presenced/connect, a
// WebSocket over which one device of a signed-in user holds that user's
// presence session (a session of kind presence.ConnectionSession, which
// aggregates as a Teams client's), says what its person is doing, and
// watches other users' presence.
//
// Liveness: the server pings every heartbeat; a connection from which
// nothing was heard (no message, no pong) for longer than the timeout is
// dead. A session whose connection closed or died stays for the grace
// window, on the service clock, and ends then unless a connection of the
// same device holds it again. The sessions are leases in the store: while
// this process holds one it renews it every third of the grace window, so
// when the process dies (kill -9) the ordinary scheduler, here after a
// restart or on another node sharing the store, ends it within the grace
// window.
package connect

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/ticket"
)

// Defaults of Config.
const (
	DefaultGrace     = 30 * time.Second
	DefaultHeartbeat = 15 * time.Second
	DefaultTimeout   = 45 * time.Second
	// DefaultQueue is how many changes may wait for a slow watcher.
	DefaultQueue = 256
)

// The close codes the server ends a connection with (besides 1000, 1001
// going away, 1009 message too big and 1011 internal error).
const (
	// CloseBadMessage: a message that is not one, or not allowed then.
	CloseBadMessage websocket.StatusCode = 4400
	// CloseUnauthorized: the token expired.
	CloseUnauthorized websocket.StatusCode = 4401
	// CloseForbidden: the token may not hold a session.
	CloseForbidden websocket.StatusCode = 4403
	// CloseTimeout: nothing heard for longer than the timeout, or no hello
	// in time.
	CloseTimeout websocket.StatusCode = 4408
	// CloseReplaced: another connection of the same device took over.
	CloseReplaced websocket.StatusCode = 4409
	// CloseSlow: the client did not take changes fast enough.
	CloseSlow websocket.StatusCode = 4429
)

// Feed is the stream of presence changes the connections' watches are fed
// from; presence.Service.PairFeed() is one.
type Feed interface {
	WatchAll(buffer int) *presence.Watch
}

// Config is what the connection endpoint needs.
type Config struct {
	Service *presence.Service
	// Feed gives the changes watchers receive (Service.PairFeed() when
	// nil: a watcher is sent the pair and the sequenceNumber only).
	Feed    Feed
	Auth    ticket.Authenticator
	Tickets *ticket.Issuer
	// WriteError answers an error before the upgrade, in Graph's envelope.
	WriteError func(http.ResponseWriter, *http.Request, error)
	// Grace is how long a session outlives its connection.
	Grace time.Duration
	// Heartbeat is how often the server pings; Timeout how long a silent
	// connection lives.
	Heartbeat time.Duration
	Timeout   time.Duration
	// Queue bounds the changes waiting for one watcher.
	Queue int
	// Holders, when set, is the registry of holders shared by every
	// process of the store: the sessions are then held under one record
	// of this process's instead of a lease each (see holders.go).
	// HolderPrefix starts this process's holder names (the node's id).
	Holders      presence.Holders
	HolderPrefix string
	// Advances, with Holders and the test clock, carries the clock's
	// advances between the processes (BeforeAdvance), so that an advance
	// made through one process does not run the others' records out.
	Advances   presence.HolderAdvances
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Server is the connection endpoint and the registry of the sessions this
// process holds.
type Server struct {
	cfg    Config
	svc    *presence.Service
	clock  presence.Clock
	logger *slog.Logger
	m      *metrics

	mu    sync.Mutex
	conns map[*conn]struct{}
	// held are the connections holding a session, by user and device.
	held    map[graceKey]*conn
	closing bool
	// holder is this process's name in Config.Holders, "" before the
	// first hold; regMu orders its registrations.
	holder string
	regMu  sync.Mutex
	// unreleased are the sessions held under a record whose release
	// failed: their long lease would keep them, so the holders' loop
	// releases them again.
	unreleased []unreleased
	// wmu guards watchers and every connection's watching set, apart from
	// mu: handing a change to its watchers never waits for the heartbeat
	// and renewal loops, which go over every connection under mu.
	wmu sync.Mutex
	// watchers are the connections watching each user.
	watchers map[presence.Key]map[*conn]struct{}
	graces   graces
	// running counts the connections whose goroutine has not finished.
	running sync.WaitGroup

	// stopped is done once Close was called; it ends Run.
	stopped context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup
}

// New returns the connection endpoint; Run starts its background work.
func New(cfg Config) (*Server, error) {
	if cfg.Service == nil || cfg.Auth == nil || cfg.Tickets == nil || cfg.WriteError == nil {
		return nil, errors.New("connect: a Service, an Authenticator, a ticket Issuer and WriteError are required")
	}
	if cfg.Feed == nil {
		cfg.Feed = cfg.Service.PairFeed()
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.HolderPrefix == "" {
		cfg.HolderPrefix = "p"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg:      cfg,
		svc:      cfg.Service,
		clock:    cfg.Service.Clock(),
		logger:   cfg.Logger,
		conns:    make(map[*conn]struct{}),
		held:     make(map[graceKey]*conn),
		watchers: make(map[presence.Key]map[*conn]struct{}),
	}
	s.stopped, s.stop = context.WithCancel(context.Background())
	m, err := newMetrics(cfg.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.m = m
	return s, nil
}

// Run feeds watchers, pings connections and renews leases until ctx is
// done or Close is called.
func (s *Server) Run(ctx context.Context) {
	ctx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	defer context.AfterFunc(s.stopped, cancelRun)()
	w := s.cfg.Feed.WatchAll(feedBuffer)
	defer func() { w.Close() }()
	s.wg.Go(func() { s.heartbeats(ctx) })
	s.wg.Go(func() { s.renewals(ctx) })
	if s.holding() {
		s.wg.Go(func() { s.records(ctx) })
		s.wg.Go(func() { s.sweeps(ctx) })
		if s.cfg.Advances != nil {
			s.wg.Go(func() { s.cfg.Advances.Listen(ctx, s.extendFor) })
		}
	}
	defer s.wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-w.Events():
			s.dispatch(ev)
		case <-w.Overflowed():
			// Changes were missed: watch afresh, then send every watcher
			// a new snapshot of its users (changes already sent are not
			// sent twice, their sequenceNumbers being no newer).
			s.logger.Warn("connections: the change feed overflowed; watchers get a new snapshot")
			w.Close()
			w = s.cfg.Feed.WatchAll(feedBuffer)
			s.resnapshot()
		}
	}
}

// feedBuffer is how many changes may wait for the dispatcher: seconds of
// the heaviest bursts (thousands of connects a second, each a change), as
// handing a change to no watcher is a map lookup. A change is ~300 bytes,
// and a buffer's slots become resident memory once a burst has gone
// through them: 65,536 of them were 17 MB, a kilobyte per connection of a
// node holding 17,000. Beyond it, watchers get a new snapshot (Run).
const feedBuffer = 1 << 13

// resnapshot has every watching connection send a new snapshot of the
// users it watches.
func (s *Server) resnapshot() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	seen := make(map[*conn]bool)
	for _, w := range s.watchers {
		for c := range w {
			if seen[c] {
				continue
			}
			seen[c] = true
			ids := make([]string, 0, len(c.watching))
			for k := range c.watching {
				ids = append(ids, k.User)
			}
			select {
			case c.ctl <- ids:
			default:
				c.deliverSlow()
			}
		}
	}
}

// Close ends every connection (1001 going away) and releases its session
// for the grace window, so that clients reconnecting to another node or
// to this one restarted resume them.
func (s *Server) Close() {
	s.mu.Lock()
	s.closing = true
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	s.mu.Unlock()
	for _, c := range all {
		c.end(websocket.StatusGoingAway, "server shutting down")
	}
	s.running.Wait()
	s.stop()
	if s.holding() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.forgetHolder(ctx)
	}
}

// Routes mounts POST /presenced/tickets and GET /presenced/connect on mux.
func (s *Server) Routes(mux *http.ServeMux) {
	mux.Handle("POST /presenced/tickets", ticket.Handler(s.cfg.Tickets, s.cfg.Auth, s.cfg.WriteError))
	mux.Handle("GET /presenced/connect", http.HandlerFunc(s.serveConnect))
}

// ExtendLeases renews every session this process holds, and its holder's
// record, to last as long past until as a renewal at until would. The
// test clock's advance calls it before the clock jumps, as the renewals
// would have done had the time passed.
func (s *Server) ExtendLeases(ctx context.Context, until time.Time) error {
	if s.holding() {
		if err := s.renewRecord(ctx, until); err != nil {
			return err
		}
	}
	return s.renew(ctx, until.Add(s.lease()), func(*conn) bool { return true }, 0)
}

// dispatch hands a change to the connections watching its user.
func (s *Server) dispatch(ev presence.Event) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	watching := s.watchers[ev.Key]
	if len(watching) == 0 {
		return
	}
	data, err := json.Marshal(changeMessage{Type: "change", presenceEntry: entry(ev.Key.User, ev.After)})
	if err != nil {
		return
	}
	enc := &encodedChange{user: ev.Key.User, seq: ev.After.Seq, data: data}
	for c := range watching {
		c.deliver(enc)
	}
}

// heartbeats pings every connection each heartbeat, and ends those from
// which nothing was heard for longer than the timeout and those whose
// token expired (within a sixty-fourth of a heartbeat).
func (s *Server) heartbeats(ctx context.Context) {
	// Each connection is pinged a heartbeat after its last ping: the
	// loop looks heartbeatTicks times a heartbeat, so the pings (and the
	// pongs they bring back) are spread over it in small groups instead
	// of thousands going out at once, which would delay the changes being
	// delivered meanwhile.
	var all []*conn
	every(ctx, s.cfg.Heartbeat/heartbeatTicks, func() {
		s.mu.Lock()
		all = all[:0]
		for c := range s.conns {
			all = append(all, c)
		}
		s.mu.Unlock()
		now := time.Now()
		nowUnix, nowNano, timeout := now.Unix(), now.UnixNano(), s.cfg.Timeout.Nanoseconds()
		live := all[:0]
		for _, c := range all {
			if e := c.p.ExpiresAt; e > 0 && nowUnix >= e && c.expired.CompareAndSwap(false, true) {
				go c.expire()
				continue
			}
			if nowNano-c.heard.Load() > timeout {
				c.end(CloseTimeout, "no heartbeat")
				continue
			}
			live = append(live, c)
		}
		for _, c := range pingsDue(now, live, s.cfg.Heartbeat) {
			go c.ping()
		}
		clear(all) // keep no ended connection alive until the next look
	})
}

// pingsDue marks as pinged at now, and returns, the connections of all
// last pinged a heartbeat ago or more and not being pinged: at most a
// paced share of all (heartbeatTicks looks a heartbeat); the others wait
// for the next look.
func pingsDue(now time.Time, all []*conn, heartbeat time.Duration) []*conn {
	quota := paced(len(all), heartbeatTicks)
	nowNano, every := now.UnixNano(), heartbeat.Nanoseconds()
	var due []*conn
	for _, c := range all {
		if len(due) == quota {
			break
		}
		if nowNano-c.pinged.Load() >= every && c.pinging.CompareAndSwap(false, true) {
			c.pinged.Store(nowNano)
			due = append(due, c)
		}
	}
	return due
}

// paced is how many of n connections one of looks looks per interval
// (at pings, at lease renewals) takes at most: the steady share and a
// quarter more (and 16), so that connections due together are spread over
// four fifths of the interval at least, and a late one catches up within
// it.
func paced(n, looks int) int { return n*5/(looks*4) + 16 }

// renewals renews each held lease a third of the grace window after it was
// last renewed, on the service clock. The renewals are paced: the loop
// looks every renewTicks-th of that interval and renews at most a share
// of the held leases a little over the steady rate (the oldest first), so
// that leases taken together (a burst of connects, a node's restart) are
// spread over the interval instead of renewed together ever after, and
// their writes do not crowd out, every few seconds, the changes being
// delivered. A lease renewed late still has more than a third of the
// window left: the pace catches up on a full interval's leases within
// four fifths of an interval.
func (s *Server) renewals(ctx context.Context) {
	interval := s.lease() / 3
	every(ctx, interval/renewTicks, func() {
		now := s.clock.Now()
		s.sweepGraces(now)
		nowMilli, everyMilli := now.UnixMilli(), interval.Milliseconds()
		due := func(c *conn) bool { return nowMilli-c.renewed.Load() >= everyMilli }
		if err := s.renew(ctx, now.Add(s.lease()), due, renewTicks); err != nil && ctx.Err() == nil {
			s.logger.Warn("renewing connection leases", "err", err)
		}
	})
}

// every runs look every d (a millisecond at least) until ctx is done.
func every(ctx context.Context, d time.Duration, look func()) {
	t := time.NewTicker(max(d, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		look()
	}
}

const (
	// heartbeatTicks is how many times per heartbeat the heartbeat loop
	// looks for connections to ping or to end.
	heartbeatTicks = 64
	// renewTicks is how many times per renewal interval the loop looks
	// for leases due.
	renewTicks = 100
	// renewBatch is how many leases are renewed in one call of the
	// service (Service.DoEach): on Redis two pipelined round trips for
	// the lot, on the file store one group commit or a few.
	renewBatch = 32
)

// renew renews the held leases that due selects to last until until: all
// of them when looks is 0, else at most the paced share of one of looks
// looks, those renewed longest ago first.
func (s *Server) renew(ctx context.Context, until time.Time, due func(*conn) bool, looks int) error {
	s.mu.Lock()
	var all []*conn
	for _, c := range s.held {
		if due(c) {
			all = append(all, c)
		}
	}
	held := len(s.held)
	s.mu.Unlock()
	if looks > 0 {
		if q := paced(held, looks); len(all) > q {
			slices.SortFunc(all, func(a, b *conn) int { return cmp.Compare(a.renewed.Load(), b.renewed.Load()) })
			all = all[:q]
		}
	}
	return inBatches(ctx, all, renewBatch, func(b []*conn) error { return s.renewEach(ctx, until, b) })
}

// inBatches calls fn with all, size at a time, until ctx is done, and
// returns the first error.
func inBatches[T any](ctx context.Context, all []T, size int, fn func([]T) error) error {
	var first error
	for len(all) > 0 && ctx.Err() == nil {
		n := min(size, len(all))
		first = cmpErr(first, fn(all[:n]))
		all = all[n:]
	}
	return first
}

// renewEach renews the leases of conns in one call of the service (a few
// round trips on a shared store); a session found gone is held anew.
func (s *Server) renewEach(ctx context.Context, until time.Time, conns []*conn) error {
	now := s.clock.Now()
	keys := make([]presence.Key, len(conns))
	cmds := make([]presence.Command, len(conns))
	for i, c := range conns {
		keys[i], cmds[i] = c.key, &presence.RenewConnection{Device: c.device, Until: until, Holder: c.getHolder()}
	}
	var first error
	for i, err := range s.svc.DoEach(ctx, keys, cmds) {
		c := conns[i]
		if errors.Is(err, &presence.Error{Code: presence.CodeNotFound}) {
			err = s.holdAs(ctx, c, c.holdCommand())
		}
		if err != nil {
			first = cmpErr(first, err)
			continue
		}
		c.renewed.Store(now.UnixMilli())
	}
	return first
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

// hold records that c holds its device's session, and returns the
// connection it took the device over from.
func (s *Server) hold(c *conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := graceKey{c.key, c.device}
	old := s.held[k]
	s.held[k] = c
	return old
}

// unhold removes c from the holders and watchers and reports whether it
// still held its device's session (it did not when another connection took
// it over).
func (s *Server) unhold(c *conn) (held bool) {
	s.mu.Lock()
	if k := (graceKey{c.key, c.device}); c.device != "" && s.held[k] == c {
		held = true
		delete(s.held, k)
	}
	s.mu.Unlock()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for u := range c.watching {
		s.unwatchLocked(c, u)
	}
	return held
}

// forget removes c from the open connections.
func (s *Server) forget(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

func (s *Server) watch(c *conn, keys []presence.Key) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, k := range keys {
		w := s.watchers[k]
		if w == nil {
			w = make(map[*conn]struct{})
			s.watchers[k] = w
		}
		w[c] = struct{}{}
	}
}

func (s *Server) unwatch(c *conn, keys []presence.Key) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	for _, k := range keys {
		s.unwatchLocked(c, k)
	}
}

func (s *Server) unwatchLocked(c *conn, k presence.Key) {
	delete(c.watching, k)
	if w := s.watchers[k]; w != nil {
		delete(w, c)
		if len(w) == 0 {
			delete(s.watchers, k)
		}
	}
}

// counts returns the open connections and the held sessions by kind.
func (s *Server) counts() (open int, active, idle int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.held {
		if c.idle.Load() {
			idle++
		} else {
			active++
		}
	}
	return len(s.conns), active, idle
}
