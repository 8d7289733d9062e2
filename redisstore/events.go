package redisstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/redis/rueidis"
)

// RemoteEvent is the change of one user's visible presence made by an
// Update on some node, as published by the compare-and-set script on the
// partition's shard channel.
type RemoteEvent struct {
	Key presence.Key
	// Origin is the NodeID of the node that made the change.
	Origin string
	// Watched reports whether the change recorded notices in the user's
	// outbox (someone subscribed to the user).
	Watched bool
	// Quiet reports a write that changed no visible pair but something
	// else a reader shows: the status message, out-of-office, the work
	// location or plan, the preferred presence, an overlay, or which
	// sessions exist (not a session's renewal). Events is then empty.
	Quiet bool
	// Events are the changes of the visible pair, in time order: those the
	// clock made since the user was last written, then the write's own.
	// Their views carry Pair and Seq only (not the status message or the
	// out-of-office settings: read the state when they are needed).
	Events []presence.Event
}

// eventVersion starts every payload.
const eventVersion = 1

// changes derives the events of one Update from the states before and
// after it, the way the domain's Step emits them: every instant in
// (before.SeqAt, after.SeqAt] at which the clock changed before's visible
// pair, then the change from that to after's pair at after.SeqAt.
func changes(key presence.Key, before, after *presence.State) []presence.Event {
	if after.Seq == before.Seq {
		return nil // the visible presence did not change
	}
	at := after.SeqAt
	if at.IsZero() {
		return nil
	}
	var evs []presence.Event
	t := before.SeqAt
	if t.IsZero() || t.After(at) {
		t = at
	}
	prev := before.ViewAt(t)
	for i := 0; i < 10000; i++ {
		next, ok := before.NextChange(t)
		if !ok || next.After(at) {
			break
		}
		cur := before.ViewAt(next)
		if cur.Pair != prev.Pair {
			evs = append(evs, presence.Event{Key: key, Before: thin(prev), After: thin(cur), At: next})
		}
		prev, t = cur, next
	}
	final := after.ViewAt(at)
	if final.Pair != prev.Pair {
		evs = append(evs, presence.Event{Key: key, Before: thin(prev), After: thin(final), At: at})
	}
	return evs
}

// thin keeps the pair and version of a view.
func thin(v presence.View) presence.View { return presence.View{Pair: v.Pair, Seq: v.Seq} }

// watched reports whether after's outbox holds notices before's did not.
func watched(before, after *presence.State) bool {
	if len(after.Outbox) == 0 {
		return false
	}
	if len(before.Outbox) == 0 {
		return true
	}
	return after.Outbox[len(after.Outbox)-1].Seq > before.Outbox[len(before.Outbox)-1].Seq
}

// eventPayload returns the event of an Update, or nil when the visible
// pair did not change.
func (s *Store) eventPayload(key presence.Key, before, after *presence.State) []byte {
	evs := changes(key, before, after)
	if len(evs) == 0 {
		if !quietChange(before, after) {
			return nil
		}
		return appendEvent(nil, &RemoteEvent{Key: key, Origin: s.opts.NodeID, Watched: watched(before, after), Quiet: true})
	}
	return appendEvent(nil, &RemoteEvent{Key: key, Origin: s.opts.NodeID, Watched: watched(before, after), Events: evs})
}

// quietChange reports whether a write that changed no visible pair
// changed something else a reader of the user shows (see
// RemoteEvent.Quiet). A session's renewal alone is not one: it is the
// most common write of all, and every node would hear of it.
func quietChange(before, after *presence.State) bool {
	if before.CalendarBusy != after.CalendarBusy || before.PresenceDisabled != after.PresenceDisabled ||
		len(before.Sessions) != len(after.Sessions) {
		return true
	}
	for i := range before.Sessions {
		if before.Sessions[i].ID != after.Sessions[i].ID || before.Sessions[i].Pair != after.Sessions[i].Pair {
			return true
		}
	}
	return !reflect.DeepEqual(before.Status, after.Status) || !reflect.DeepEqual(before.OOF, after.OOF) ||
		!reflect.DeepEqual(before.Work, after.Work) || !reflect.DeepEqual(before.Preferred, after.Preferred)
}

// The payload, all strings as uvarint length and bytes:
//
//	version=1 origin tenant user flags(1 = watched, 2 = quiet) n:uvarint change*
//	change = at:varint(Unix ns) beforeSeq:uvarint beforeAvail beforeAct
//	         afterSeq:uvarint afterAvail afterAct
func appendEvent(b []byte, ev *RemoteEvent) []byte {
	str := func(s string) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	b = append(b, eventVersion)
	str(ev.Origin)
	str(ev.Key.Tenant)
	str(ev.Key.User)
	var flags byte
	if ev.Watched {
		flags |= 1
	}
	if ev.Quiet {
		flags |= 2
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(len(ev.Events)))
	for _, e := range ev.Events {
		b = binary.AppendVarint(b, e.At.UnixNano())
		b = binary.AppendUvarint(b, e.Before.Seq)
		str(e.Before.Availability)
		str(e.Before.Activity)
		b = binary.AppendUvarint(b, e.After.Seq)
		str(e.After.Availability)
		str(e.After.Activity)
	}
	return b
}

var errBadEvent = errors.New("redisstore: invalid event payload")

// decodeEvent parses a payload made by appendEvent.
func decodeEvent(p []byte) (RemoteEvent, error) {
	var ev RemoteEvent
	bad := false
	uv := func() uint64 {
		v, n := binary.Uvarint(p)
		if n <= 0 {
			bad = true
			return 0
		}
		p = p[n:]
		return v
	}
	str := func() string {
		n := uv()
		if bad || n > uint64(len(p)) {
			bad = true
			return ""
		}
		s := string(p[:n])
		p = p[n:]
		return s
	}
	if len(p) < 1 || p[0] != eventVersion {
		return ev, errBadEvent
	}
	p = p[1:]
	ev.Origin = str()
	ev.Key.Tenant = str()
	ev.Key.User = str()
	if bad || len(p) < 1 || p[0] > 3 {
		return RemoteEvent{}, errBadEvent
	}
	ev.Watched = p[0]&1 != 0
	ev.Quiet = p[0]&2 != 0
	p = p[1:]
	n := uv()
	if bad || n > uint64(len(p))/7 {
		return RemoteEvent{}, errBadEvent
	}
	for range n {
		at, k := binary.Varint(p)
		if k <= 0 {
			return RemoteEvent{}, errBadEvent
		}
		p = p[k:]
		e := presence.Event{Key: ev.Key, At: time.Unix(0, at).UTC()}
		e.Before.Seq = uv()
		e.Before.Availability = str()
		e.Before.Activity = str()
		e.After.Seq = uv()
		e.After.Availability = str()
		e.After.Activity = str()
		if bad {
			return RemoteEvent{}, errBadEvent
		}
		ev.Events = append(ev.Events, e)
	}
	if len(p) != 0 {
		return RemoteEvent{}, errBadEvent
	}
	return ev, nil
}

// Events subscribes to the change events of every partition (SSUBSCRIBE,
// one subscription per partition, each on its shard's node) and calls fn,
// from several goroutines (one per partition, so the events of one user
// come in order), with each event made by another node. It
// blocks until ctx ends or the store closes, resubscribing after a lost
// connection. fn runs on the Redis client's reading goroutine: it must not
// block, and above all must not call the store (or anything that waits for
// Redis), which would wait for a reply that goroutine is to read; hand the
// event to another goroutine instead.
//
// Pub/sub is at-most-once: events published while this node was not
// subscribed (a reconnect, a Redis restart, a cluster failover) are lost.
// They are meant for live streams, which start from the current presence,
// and as a wake-up; the durable record of a change is the state itself and
// its outbox.
func (s *Store) Events(ctx context.Context, fn func(RemoteEvent)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.bg.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	s.eventsStarted.Store(true)
	var wg sync.WaitGroup
	for p := range Partitions {
		wg.Go(func() { s.receive(ctx, p, fn) })
	}
	wg.Wait()
	if s.closed.Load() || s.bg.Err() != nil {
		return ErrClosed
	}
	return ctx.Err()
}

// Following reports whether this node hears every other node's change
// events (for /readyz): nil before Events was first called or while every
// partition's channel is subscribed, else an error matching
// presence.ErrUnavailable. A node that does not hear them would serve
// event streams that miss other nodes' changes.
func (s *Store) Following() error {
	if !s.eventsStarted.Load() {
		return nil
	}
	if n := s.following.Load(); n < Partitions {
		return presence.Unavailable(fmt.Errorf("redisstore: following %d of %d partitions' change events", n, Partitions))
	}
	return nil
}

func (s *Store) receive(ctx context.Context, p int, fn func(RemoteEvent)) {
	ch := s.channelKey(p)
	// The subscription's confirmation counts the partition as followed;
	// the end of Receive (a lost connection) uncounts it.
	hooked := rueidis.WithOnSubscriptionHook(ctx, func(ps rueidis.PubSubSubscription) {
		if ps.Kind == "ssubscribe" && !s.subscribed[p].Swap(true) {
			s.following.Add(1)
		}
	})
	s.resubscribe(ctx, hooked, ch, func(m rueidis.PubSubMessage) {
		ev, err := decodeEvent([]byte(m.Message))
		if err != nil {
			s.logger().Warn("redis: invalid event", "channel", m.Channel, "err", err)
			return
		}
		if ev.Origin != s.opts.NodeID {
			fn(ev)
		}
	}, func() {
		if s.subscribed[p].Swap(false) {
			s.following.Add(-1)
		}
	})
}

// resubscribe hands the messages of the sharded channel ch to fn, and
// subscribes again (after a pause) whenever the subscription ends, as a
// lost connection ends it, until ctx is done. subCtx is the context of
// each subscription (ctx, or ctx with a subscription hook); ended, if set,
// runs each time one ends.
func (s *Store) resubscribe(ctx, subCtx context.Context, ch string, fn func(rueidis.PubSubMessage), ended func()) {
	for ctx.Err() == nil {
		c := s.cli.Load()
		if c == nil {
			if !sleepCtx(ctx, 200*time.Millisecond) {
				return
			}
			continue
		}
		cli := *c
		err := cli.Receive(subCtx, cli.B().Ssubscribe().Channel(ch).Build(), fn)
		if ended != nil {
			ended()
		}
		if ctx.Err() != nil {
			return
		}
		s.logger().Debug("redis: subscription ended; subscribing again", "channel", ch, "err", err)
		if !sleepCtx(ctx, 200*time.Millisecond) {
			return
		}
	}
}
