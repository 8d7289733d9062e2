package redisstore

import (
	"context"
	"fmt"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/redis/rueidis"
)

var _ presence.EachUpdater = (*Store)(nil)

// UpdateEach implements presence.EachUpdater in two round trips for the
// lot: one pipeline reads every user whose lock in this node is free, fn
// runs for each, and one pipeline of compare-and-sets writes them (each
// user's write is atomic on its own, as Update's). It never waits for a
// lock while holding others: a user whose lock another Update holds,
// whose compare-and-set lost to another writer, or whose read or write
// Redis refused before running it, is updated afterwards with Update,
// which waits and retries as it always does. A write whose outcome is
// unknown is not retried, as with Update. With WaitReplicas set, every
// user is updated with Update.
func (s *Store) UpdateEach(ctx context.Context, keys []presence.Key, fn func(i int, st *presence.State) error) []presence.Updated {
	cli, err := s.client()
	if err != nil || s.opts.WaitReplicas != 0 || len(keys) < 2 || ctx.Err() != nil {
		return presence.UpdateConcurrently(ctx, s, keys, fn) // Update says why it cannot
	}
	out := make([]presence.Updated, len(keys))
	s.updateAlone(ctx, keys, fn, out, s.updateBatch(ctx, cli, keys, fn, out))
	return out
}

// updateBatch updates in two pipelines, into out, the users of keys whose
// locks are free, and returns the indexes of those left to Update.
func (s *Store) updateBatch(ctx context.Context, cli rueidis.Client, keys []presence.Key, fn func(i int, st *presence.State) error, out []presence.Updated) (later []int) {
	type item struct {
		i      int
		member string
		p      int
		old    presence.State
		next   presence.State
	}
	held := make(map[uint64]bool)
	defer func() {
		for st := range held {
			<-s.locks[st]
		}
	}()
	items := make([]item, 0, len(keys))
	for i, k := range keys {
		member := memberOf(k)
		if st := s.stripe(member); !held[st] {
			select {
			case s.locks[st] <- struct{}{}:
				held[st] = true
			default:
				later = append(later, i)
				continue
			}
		}
		items = append(items, item{i: i, member: member, p: partitionOf(member)})
	}
	if len(items) == 0 {
		return later
	}

	gets := make(rueidis.Commands, len(items))
	for j := range items {
		gets[j] = cli.B().Get().Key(s.stateKey(items[j].p, items[j].member)).Build()
	}
	octx, cancel := s.opCtx(ctx)
	start := time.Now()
	read := cli.DoMulti(octx, gets...)
	cancel()
	s.metrics.roundTripEach("get", start, read)
	calls := make([]scriptCall, 0, len(items))
	sent := make([]int, 0, len(items)) // the items of calls
	for j := range items {
		it := &items[j]
		cur, err := read[j].ToString()
		if err != nil && !isRedisNil(err) {
			later = append(later, it.i) // Update reads again, or says why not
			continue
		}
		rev, old, err := decodeValue(cur)
		if err != nil {
			out[it.i].Err = fmt.Errorf("redisstore: update %s: %w", keys[it.i], err)
			continue
		}
		next := old.Clone()
		if err := fn(it.i, &next); err != nil {
			out[it.i].Err = err
			continue
		}
		it.old, it.next = old, next
		calls = append(calls, s.casCall(keys[it.i], it.member, it.p, rev, &it.old, &it.next))
		sent = append(sent, j)
	}
	if len(calls) == 0 {
		return later
	}
	octx, cancel = s.opCtx(ctx)
	start = time.Now()
	wrote := casScript.runMulti(octx, cli, calls)
	cancel()
	s.metrics.roundTripEach("cas", start, wrote)
	for k, res := range wrote {
		it := &items[sent[k]]
		ok, err := false, res.Error()
		if err == nil {
			ok, _, err = casReply(res)
		}
		switch {
		case err != nil && notExecuted(err):
			later = append(later, it.i)
		case err != nil:
			out[it.i].Err = wrap(ctx, "update "+keys[it.i].String(), err)
		case ok:
			out[it.i].Before, out[it.i].After = it.old, it.next.Clone()
		default:
			s.metrics.conflict()
			later = append(later, it.i)
		}
	}
	return later
}

// updateAlone updates the users of keys at the indexes which with Update,
// up to 16 at a time, into out.
func (s *Store) updateAlone(ctx context.Context, keys []presence.Key, fn func(i int, st *presence.State) error, out []presence.Updated, which []int) {
	if len(which) == 0 {
		return
	}
	sub := make([]presence.Key, len(which))
	for j, i := range which {
		sub[j] = keys[i]
	}
	res := presence.UpdateConcurrently(ctx, s, sub, func(j int, st *presence.State) error { return fn(which[j], st) })
	for j, i := range which {
		out[i] = res[j]
	}
}
