package presence

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Event says that the visible availability or activity of a user changed,
// whoever caused it: an API call, the clock or a test hook.
type Event struct {
	Key    Key
	Before View
	After  View
	// At is the instant of the change; for a change made by the clock it is
	// the instant it fell due, even when it is processed later.
	At time.Time
}

// Change is the outcome of one command: the views just before and after it,
// and the events it caused (clock changes that fell due first, then the
// command's own).
type Change struct {
	Before View
	After  View
	Events []Event
}

// Stats are the Service's counters since it started.
type Stats struct {
	// Events counts change events emitted.
	Events uint64
	// EventsDropped counts events a watch of the Feed did not take because
	// its reader fell behind (the watch was overflowed).
	EventsDropped uint64
	// Fired counts users the scheduler re-evaluated.
	Fired uint64
	// LagNanos is how late the last scheduled change was processed.
	LagNanos int64
	// Sessions is the number of stored sessions: counted by Recover at
	// start-up, then kept by every write (expired sessions leave when the
	// scheduler prunes them).
	Sessions int64
	// OutboxDropped counts notices dropped because a user's outbox was full.
	OutboxDropped uint64
}

// MaxOutbox is how many undelivered notices one user's outbox keeps; past it
// the oldest are dropped (and counted).
const MaxOutbox = 1024

// Watcher is told about the changes of users someone subscribed to. The
// Service keeps those changes in the user's outbox, in the same durable write
// as the change, until the Watcher trims them.
type Watcher interface {
	// Watching reports whether changes of key must be kept for delivery. It
	// is called inside a store update, so it must be quick and must not
	// call the Service.
	Watching(key Key) bool
	// Pending says that key's outbox holds notices. It must not block.
	Pending(key Key)
}

// WatchSyncer is a Watcher whose subscriptions other nodes may change too.
// When WatchShared reports that they do, the Service calls SyncWatching
// for each write, begun with it and finished before the write's Watching,
// so that Watching answers for every subscription created (on any node)
// before the write began.
type WatchSyncer interface {
	SyncWatching(ctx context.Context) error
	// WatchShared reports whether other nodes change the subscriptions:
	// whether SyncWatching has anything to do.
	WatchShared() bool
}

// Service applies commands to users' presence through a Store, emits change
// events, and runs the scheduler that makes the clock's changes happen.
type Service struct {
	store  Store
	clock  Clock
	env    Env
	logger *slog.Logger

	fireMu sync.Mutex

	feed *Feed
	// pairs carries the changes of the visible pair and version only: this
	// node's as they happen, other nodes' as soon as they arrive (see
	// PairFeed).
	pairs *Feed
	// quiet carries the writes that changed no visible pair (see WatchQuiet).
	quiet *Feed

	watcher Watcher
	syncer  WatchSyncer

	events, fired, outboxDropped atomic.Uint64
	lag, sessions                atomic.Int64
}

// NewService returns a Service over store with clock.
func NewService(store Store, clock Clock, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		store:  store,
		clock:  clock,
		env:    Env{Zones: zoneNames()},
		logger: logger,
		feed:   NewFeed(),
		pairs:  NewFeed(),
		quiet:  NewFeed(),
	}
}

// Clock returns the service's clock.
func (s *Service) Clock() Clock { return s.clock }

// Stats returns the service's counters.
func (s *Service) Stats() Stats {
	return Stats{
		Events:        s.events.Load(),
		EventsDropped: s.feed.Stats().Dropped,
		Fired:         s.fired.Load(),
		LagNanos:      s.lag.Load(),
		Sessions:      s.sessions.Load(),
		OutboxDropped: s.outboxDropped.Load(),
	}
}

// SetWatcher installs the Watcher; call it before serving.
func (s *Service) SetWatcher(w Watcher) {
	s.watcher = w
	s.syncer = nil
	if ws, ok := w.(WatchSyncer); ok && ws.WatchShared() {
		s.syncer = ws
	}
}

// Outbox returns the undelivered notices of key, oldest first.
func (s *Service) Outbox(ctx context.Context, key Key) ([]Notice, error) {
	states, err := s.store.Get(ctx, key.Tenant, []string{key.User})
	if err != nil {
		return nil, fmt.Errorf("read outbox of %s: %w", key, err)
	}
	return states[0].Outbox, nil
}

// TrimOutbox removes the notices of key up to and including seq, once they
// have been delivered (or given up on).
func (s *Service) TrimOutbox(ctx context.Context, key Key, seq uint64) error {
	_, _, err := s.store.Update(ctx, key, func(st *State) error {
		i := 0
		for i < len(st.Outbox) && st.Outbox[i].Seq <= seq {
			i++
		}
		if i == 0 {
			return errNothingToDo // no write at all
		}
		st.Outbox = st.Outbox[i:]
		if len(st.Outbox) == 0 {
			st.Outbox = nil
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNothingToDo) {
		return fmt.Errorf("trim outbox of %s: %w", key, err)
	}
	return nil
}

// errNothingToDo ends an update that would change nothing, so that it
// writes nothing.
var errNothingToDo = errors.New("nothing to do")

// Recover scans every stored state once, at start-up, before anything
// else uses the service: it counts the stored sessions, so that
// Stats.Sessions is right from the start, and calls outbox for every user
// whose outbox holds notices that a crash or a restart left undelivered.
func (s *Service) Recover(ctx context.Context, outbox func(Key, []Notice)) error {
	var sessions int64
	err := s.store.Scan(ctx, func(k Key, st State) error {
		sessions += int64(len(st.Sessions))
		if len(st.Outbox) > 0 && outbox != nil {
			outbox(k, st.Outbox)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	s.sessions.Add(sessions)
	return nil
}

// Read returns the views of users in tenant at the service's now, in order.
func (s *Service) Read(ctx context.Context, tenant string, users []string) ([]View, error) {
	states, err := s.store.Get(ctx, tenant, users)
	if err != nil {
		return nil, fmt.Errorf("read presence: %w", err)
	}
	now := s.clock.Now()
	views := make([]View, len(states))
	for i := range states {
		views[i] = states[i].ViewAt(now)
	}
	return views, nil
}

// ReadEach calls fn with the view of each of users in tenant at the
// service's now, in order. The *View is lent: it, and the status message
// and out-of-office message it points to, are valid only during that call
// of fn. Unlike Read it allocates next to nothing per user, which is what
// bulk reads need.
func (s *Service) ReadEach(ctx context.Context, tenant string, users []string, fn func(i int, v *View)) error {
	now := s.clock.Now()
	var v View
	err := s.store.Visit(ctx, tenant, users, func(i int, st *State) {
		v = st.ViewAt(now)
		fn(i, &v)
	})
	if err != nil {
		return fmt.Errorf("read presence: %w", err)
	}
	return nil
}

// Do validates cmd and applies it to the user at the service's now.
func (s *Service) Do(ctx context.Context, key Key, cmd Command) (Change, error) {
	if err := cmd.Validate(&s.env); err != nil {
		return Change{}, err
	}
	return s.apply(ctx, key, cmd, s.clock.Now())
}

// apply runs one read-modify-write of the user's state at now: first the
// clock's changes that fell due, each at its own instant, then cmd.
func (s *Service) apply(ctx context.Context, key Key, cmd Command, now time.Time) (Change, error) {
	// The step's outcome in one variable: the closure captures it, so it
	// is allocated once rather than once per result.
	var out stepOut
	fn := s.step(key, cmd, now, &out)
	if s.syncer != nil {
		// The subscriptions are read while the store reads the state (one
		// round trip for both on a shared store, its calls pipelined); the
		// step waits for them.
		synced := make(chan error, 1)
		go func() { synced <- s.syncer.SyncWatching(ctx) }()
		wait := sync.OnceValue(func() error { return <-synced })
		step := fn
		fn = func(st *State) error {
			if err := wait(); err != nil {
				return err
			}
			return step(st)
		}
	}
	before, after, err := s.store.Update(ctx, key, fn)
	return s.applied(key, &out, before, after, err, now)
}

// stepOut is what a store update's fn (Service.step) leaves for
// Service.applied.
type stepOut struct {
	ch       Change
	dropped  int
	recorded bool
}

// step returns the fn of a store update that applies cmd to key's state
// at now and records its events in the outbox when someone subscribes to
// key; it leaves what the last run produced in out.
func (s *Service) step(key Key, cmd Command, now time.Time, out *stepOut) func(*State) error {
	return func(st *State) error {
		var err error
		out.ch, err = Step(key, st, cmd, now)
		out.dropped, out.recorded = 0, false
		if err == nil && len(out.ch.Events) > 0 && s.watcher != nil && s.watcher.Watching(key) {
			out.dropped, out.recorded = st.record(out.ch.Events), true
		}
		return err
	}
}

// applied finishes a store update made with step: it counts the sessions,
// the scheduler's lag and the dropped notices, and publishes the events.
func (s *Service) applied(key Key, out *stepOut, before, after State, err error, now time.Time) (Change, error) {
	ch, dropped, recorded := out.ch, out.dropped, out.recorded
	if errors.Is(err, ErrNothingDue) {
		return Change{}, nil // a Tick that found nothing due: nothing written
	}
	if err != nil {
		return Change{}, err
	}
	s.sessions.Add(int64(len(after.Sessions) - len(before.Sessions)))
	if !before.Due.IsZero() && !before.Due.After(now) {
		// Measured when this user is done, not when the scheduler's pass
		// began, so a pass that falls behind shows its true lateness.
		s.lag.Store(int64(s.clock.Now().Sub(before.Due)))
	}
	s.outboxDropped.Add(uint64(dropped))
	for _, ev := range ch.Events {
		s.publish(ev)
	}
	if len(ch.Events) == 0 {
		s.quiet.Publish(Event{Key: key, Before: ch.Before, After: ch.After, At: now})
	}
	if recorded {
		s.watcher.Pending(key)
	}
	return ch, nil
}

// ErrNothingDue is returned by Step for a Tick on a state with nothing due
// by now: the store then writes nothing, so a scheduler that fires a user
// twice (two nodes, or a retry) costs a read and no write.
var ErrNothingDue = errors.New("nothing due")

// Step applies cmd to st at now: first the clock's changes that fell due
// since st was written, each at its own instant, then cmd itself. It keeps
// Seq, SeqAt and Due up to date and returns the views around cmd and the
// events. It is pure: the same inputs give the same result.
//
// Three rules hold on every store, so that several nodes can share one:
// a Tick with nothing due by now returns ErrNothingDue and changes
// nothing; a now earlier than the state's last change (SeqAt) is taken as
// SeqAt, so a node whose clock runs behind never moves a state back in time
// or makes a boundary happen twice; and every increment of Seq is floored
// by the change's instant (SeqFloor), so a state that comes back older
// after a store's failover never hands out a sequenceNumber again.
func Step(key Key, st *State, cmd Command, now time.Time) (Change, error) {
	if now.Before(st.SeqAt) {
		now = st.SeqAt
	}
	if _, tick := cmd.(Tick); tick && (st.Due.IsZero() || st.Due.After(now)) {
		return Change{}, ErrNothingDue
	}
	var ch Change
	ch.Events = catchUp(key, st, now, nil)
	ch.Before = st.ViewAt(now)
	st.SeqAt = now
	if err := cmd.Apply(st, now); err != nil {
		return Change{}, err
	}
	st.prune(now)
	ch.After = st.visible(now)
	ch.After.Seq = ch.Before.Seq
	if !sameVisible(ch.Before, ch.After) {
		st.Seq = nextSeq(st.Seq, now)
		ch.After.Seq = st.Seq
	}
	if ch.Before.Pair != ch.After.Pair {
		ch.Events = append(ch.Events, Event{Key: key, Before: ch.Before, After: ch.After, At: now})
	}
	st.Due, _ = st.NextChange(now)
	return ch, nil
}

// record appends events to the outbox, keeping at most MaxOutbox notices,
// and returns how many old ones it dropped.
func (st *State) record(events []Event) int {
	for _, ev := range events {
		st.Outbox = append(st.Outbox, Notice{Seq: ev.After.Seq, At: ev.At, Pair: ev.After.Pair, Work: noticeWork(ev.After.WorkLocation)})
	}
	over := len(st.Outbox) - MaxOutbox
	if over <= 0 {
		return 0
	}
	st.Outbox = append(st.Outbox[:0:0], st.Outbox[over:]...)
	return over
}

// catchUp records, in time order, every change the clock made to st since
// it was written and up to now, advancing Seq and SeqAt, and returns the
// events for those that changed the visible pair.
func catchUp(key Key, st *State, now time.Time, events []Event) []Event {
	if st.SeqAt.IsZero() {
		st.SeqAt = now
	}
	for {
		at, ok := st.NextChange(st.SeqAt)
		if !ok || at.After(now) {
			return events
		}
		before := st.visible(st.SeqAt)
		before.Seq = st.Seq
		after := st.visible(at)
		if !sameVisible(before, after) {
			st.Seq = nextSeq(st.Seq, at)
		}
		after.Seq = st.Seq
		if before.Pair != after.Pair {
			events = append(events, Event{Key: key, Before: before, After: after, At: at})
		}
		st.SeqAt = at
		st.prune(at)
	}
}

// fireWorkers is how many users the scheduler re-evaluates at once: their
// writes share the store's group commit instead of each waiting for its own.
const fireWorkers = 64

// Fire re-evaluates every user whose next change has fallen due by the
// service's now, emitting the events the clock caused. It returns how many
// users it re-evaluated.
func (s *Service) Fire(ctx context.Context) (int, error) {
	return s.fire(ctx, s.store.Due)
}

// AllDue is a Store shared by several nodes that can also list the due
// users of every node, not only of those this node fires.
type AllDue interface {
	DueAll(ctx context.Context, now time.Time, limit int) ([]Key, error)
}

// FireAll is Fire over every user of the store, whichever node fires it
// ordinarily: after the test clock moves, everything that fell due has
// happened when it returns. On a store of one node it is Fire.
func (s *Service) FireAll(ctx context.Context) (int, error) {
	if all, ok := s.store.(AllDue); ok {
		return s.fire(ctx, all.DueAll)
	}
	return s.Fire(ctx)
}

func (s *Service) fire(ctx context.Context, due func(context.Context, time.Time, int) ([]Key, error)) (int, error) {
	s.fireMu.Lock()
	defer s.fireMu.Unlock()
	now := s.clock.Now()
	total := 0
	for {
		keys, err := due(ctx, now, 4096)
		if err != nil {
			return total, fmt.Errorf("scheduler: list due users: %w", err)
		}
		if len(keys) == 0 {
			return total, nil
		}
		var (
			errMu sync.Mutex
			first error
		)
		inParallel(len(keys), fireWorkers, func(i int) bool {
			if _, err := s.apply(ctx, keys[i], Tick{}, now); err != nil {
				errMu.Lock()
				if first == nil {
					first = fmt.Errorf("scheduler: re-evaluate %s: %w", keys[i], err)
				}
				errMu.Unlock()
				return false
			}
			s.fired.Add(1)
			return true
		})
		if first != nil {
			return total, first
		}
		total += len(keys)
	}
}

// RunScheduler fires due changes every interval until ctx is done.
func (s *Service) RunScheduler(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Fire(ctx); err != nil && ctx.Err() == nil {
				s.logger.ErrorContext(ctx, "scheduler failed", "err", err)
			}
		}
	}
}

// Feed returns the service's change feed.
func (s *Service) Feed() *Feed { return s.feed }

// Watch returns a watch of the change events of keys, with room for buffer
// of them; see Feed.Watch.
func (s *Service) Watch(keys []Key, buffer int) *Watch { return s.feed.Watch(keys, buffer) }

// Subscribe returns a stream of every change event with room for buffer of
// them; once a full stream missed an event it gets no more (see
// Feed.WatchAll). Call cancel to stop receiving.
func (s *Service) Subscribe(buffer int) (events <-chan Event, cancel func()) {
	w := s.feed.WatchAll(buffer)
	return w.Events(), w.Close
}

// WatchQuiet returns a watch of the writes of this node that changed no
// user's visible pair, with room for buffer of them: a status message, the
// out-of-office settings, the work location, a session or the preferred
// presence that is not what users see. They make no change event (no
// notification, nothing in Feed), but a view of the whole stored state
// (the console) must show them. Each carries the views around the write.
// Close it when done.
func (s *Service) WatchQuiet(buffer int) *Watch { return s.quiet.WatchAll(buffer) }

// PublishRemote hands ev, a change made on another node, to this node's
// readers of the feed (event streams), as if it had been made here; it
// does not count in Stats.Events. Events of this node are published by the
// Service itself and must not be passed again.
func (s *Service) PublishRemote(ev Event) { s.feed.Publish(ev) }

// PairFeed returns the feed of the changes of the visible availability,
// activity and version: every change of this node (as Feed has them), and
// every change of another node as soon as it arrives (PublishRemotePair),
// before its whole view is read for Feed. Readers that show only the pair
// and the sequenceNumber (client connections' watches) take it, and need
// not wait for that read.
func (s *Service) PairFeed() *Feed { return s.pairs }

// PublishRemotePair hands ev, a change made on another node whose Before
// and After carry their pair and version only, to the readers of
// PairFeed. PublishRemote later hands the same change, with its whole
// view, to the readers of Feed.
func (s *Service) PublishRemotePair(ev Event) { s.pairs.Publish(ev) }

// PublishRemoteQuiet hands a write made on another node that changed no
// visible pair to this node's quiet watchers (WatchQuiet).
func (s *Service) PublishRemoteQuiet(ev Event) { s.quiet.Publish(ev) }

func (s *Service) publish(ev Event) {
	s.events.Add(1)
	s.feed.Publish(ev)
	s.pairs.Publish(ev)
}
