package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/redisstore"
)

// remoteRelay hands the changes other nodes made to this node's event
// streams, connections and consoles. The events arrive on the Redis
// client's reading goroutine, which must never wait: offer queues them
// (bounded) and returns. A goroutine of its own (run) takes them in
// batches: a stream shows the whole presence (status message,
// out-of-office), which an event does not carry, so the users of a batch
// are read together, one read per tenant, rather than one read per event.
//
// A full queue loses an event, but never a user's latest state: the users
// whose events were dropped are remembered (up to remoteLostMax of them)
// and read again with the next batch, and their presence as it is then is
// published, so that every watcher ends up with it (watchers take a
// sequenceNumber no newer than one they have as already seen).
type remoteRelay struct {
	queue  chan redisstore.RemoteEvent
	read   func(ctx context.Context, tenant string, users []string) ([]presence.View, error)
	clock  func() time.Time
	loud   func(presence.Event) // publishes a change of the visible pair, with its view
	pair   func(presence.Event) // publishes it at once, with its pair and version only
	quiet  func(presence.Event) // publishes a write that changed none
	logger *slog.Logger

	mu      sync.Mutex
	lost    map[presence.Key]struct{}
	dropped atomic.Uint64 // events dropped from a full queue
}

const (
	// remoteBatch bounds the events handled (and the users read) at once.
	remoteBatch = 256
	// remoteLostMax bounds the users remembered for a read after their
	// events were dropped.
	remoteLostMax = 1 << 16
)

func newRemoteRelay(queue int, svc *presence.Service, logger *slog.Logger) *remoteRelay {
	return &remoteRelay{
		queue:  make(chan redisstore.RemoteEvent, queue),
		read:   svc.Read,
		clock:  svc.Clock().Now,
		loud:   svc.PublishRemote,
		pair:   svc.PublishRemotePair,
		quiet:  svc.PublishRemoteQuiet,
		logger: logger,
		lost:   make(map[presence.Key]struct{}),
	}
}

// offer queues re without waiting; when the queue is full, re's user is
// remembered to be read again instead.
func (r *remoteRelay) offer(re redisstore.RemoteEvent) {
	select {
	case r.queue <- re:
		return
	default:
	}
	r.dropped.Add(1)
	kept := r.remember(re.Key)
	// The logger limits how often a warning is written.
	r.logger.Warn("redis: other nodes' changes arrive faster than this node relays them; one was dropped, and its user is read again and relayed as it is then",
		"user", re.Key.User, "remembered", kept)
}

// remember notes keys to be read again with the next batch, up to
// remoteLostMax users; it reports whether all of them could be noted.
func (r *remoteRelay) remember(keys ...presence.Key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	all := true
	for _, k := range keys {
		if _, ok := r.lost[k]; !ok && len(r.lost) >= remoteLostMax {
			all = false
			continue
		}
		r.lost[k] = struct{}{}
	}
	return all
}

// run relays the queued events until ctx is done.
func (r *remoteRelay) run(ctx context.Context) {
	batch := make([]redisstore.RemoteEvent, 0, remoteBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case re := <-r.queue:
			batch = append(batch[:0], re)
		}
	more:
		for len(batch) < remoteBatch {
			select {
			case re := <-r.queue:
				batch = append(batch, re)
			default:
				break more
			}
		}
		// The readers of the pair alone (client connections) need not
		// wait for the read of the views.
		for _, re := range batch {
			if !re.Quiet {
				for _, ev := range re.Events {
					r.pair(ev)
				}
			}
		}
		r.relay(ctx, batch, r.takeLost())
		clear(batch)
	}
}

// takeLost returns the users remembered after a drop, and forgets them.
func (r *remoteRelay) takeLost() []presence.Key {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.lost) == 0 {
		return nil
	}
	keys := make([]presence.Key, 0, len(r.lost))
	for k := range r.lost {
		keys = append(keys, k)
	}
	clear(r.lost)
	return keys
}

// relay publishes a batch of other nodes' changes, each change of the
// visible pair with the user's presence read once for the batch, then
// the presence of the users in lost.
func (r *remoteRelay) relay(ctx context.Context, batch []redisstore.RemoteEvent, lost []presence.Key) {
	byTenant := map[string][]string{}
	want := map[presence.Key]bool{}
	need := func(k presence.Key) {
		if !want[k] {
			want[k] = true
			byTenant[k.Tenant] = append(byTenant[k.Tenant], k.User)
		}
	}
	for _, re := range batch {
		if !re.Quiet && len(re.Events) > 0 {
			need(re.Key)
		}
	}
	for _, k := range lost {
		need(k)
	}
	views := make(map[presence.Key]presence.View, len(want))
	for tenant, users := range byTenant {
		got, err := r.read(ctx, tenant, users)
		if err != nil {
			// The events then carry their pair and version only; the
			// lost users stay unread, as they would with no relay.
			r.logger.Warn("redis: reading the presence of other nodes' changes", "tenant", tenant, "users", len(users), "err", err)
			continue
		}
		for i, u := range users {
			views[presence.Key{Tenant: tenant, User: u}] = got[i]
		}
	}
	now := presence.Event{At: r.clock()}
	for _, re := range batch {
		if re.Quiet {
			// Its watchers (the console) read the user themselves.
			ev := now
			ev.Key = re.Key
			r.quiet(ev)
			continue
		}
		if v, ok := views[re.Key]; ok && len(re.Events) > 0 {
			re.Events[len(re.Events)-1].After = v
		}
		for _, ev := range re.Events {
			r.loud(ev)
		}
	}
	var unread []presence.Key
	for _, k := range lost {
		v, ok := views[k]
		if !ok {
			unread = append(unread, k)
			continue
		}
		ev := now
		ev.Key, ev.Before, ev.After = k, v, v
		r.pair(ev)
		r.loud(ev)
	}
	r.remember(unread...) // read again with the next batch
}
