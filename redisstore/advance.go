package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"

	presence "github.com/presenced/presenced"
)

var _ presence.HolderAdvances = Holders{}

// The test clock's advances reach the other holders on a sharded channel
// of their own; each answers by adding its name to the announcement's set.
func (h Holders) advanceChannel() string { return h.s.opts.Prefix + ":{h}:advance" }
func (h Holders) answersKey(id string) string {
	return h.s.opts.Prefix + ":{h}:advanced:" + id
}

// answersTTL bounds how long an announcement's answers outlive it.
const answersTTL = time.Minute

// answersPoll is how often Announce reads the answers.
const answersPoll = 10 * time.Millisecond

// Announce implements presence.HolderAdvances.
func (h Holders) Announce(ctx context.Context, now, until time.Time, self string, wait time.Duration) ([]string, error) {
	pending := map[string]bool{}
	err := h.s.call(ctx, "holder_live", func(ctx context.Context, cli rueidis.Client) error {
		res := cli.DoMulti(ctx,
			cli.B().Zrangebyscore().Key(h.recordsKey()).Min("("+millis(now)).Max("+inf").Build(),
			cli.B().Smembers().Key(h.deadKey()).Build())
		live, err := res[0].AsStrSlice()
		if err != nil {
			return err
		}
		dead, err := res[1].AsStrSlice()
		if err != nil {
			return err
		}
		for _, holder := range live {
			if holder != self && !slices.Contains(dead, holder) {
				pending[holder] = true
			}
		}
		return nil
	})
	if err != nil || len(pending) == 0 {
		return nil, err
	}
	id := presence.NewGUID()
	key := h.answersKey(id)
	defer func() {
		_ = h.s.call(context.WithoutCancel(ctx), "holder_advance_done", func(ctx context.Context, cli rueidis.Client) error {
			return cli.Do(ctx, cli.B().Del().Key(key).Build()).Error()
		})
	}()
	if err := h.s.call(ctx, "holder_advance", func(ctx context.Context, cli rueidis.Client) error {
		return cli.Do(ctx, cli.B().Spublish().Channel(h.advanceChannel()).Message(id+" "+millis(until)).Build()).Error()
	}); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(wait)
	for len(pending) > 0 && time.Now().Before(deadline) {
		if !sleepCtx(ctx, answersPoll) {
			return nil, ctx.Err()
		}
		var answered []string
		if err := h.s.call(ctx, "holder_advance_answers", func(ctx context.Context, cli rueidis.Client) error {
			var err error
			answered, err = cli.Do(ctx, cli.B().Smembers().Key(key).Build()).AsStrSlice()
			return err
		}); err != nil {
			return nil, err
		}
		for _, holder := range answered {
			delete(pending, holder)
		}
	}
	missing := make([]string, 0, len(pending))
	for holder := range pending {
		missing = append(missing, holder)
	}
	slices.Sort(missing)
	return missing, nil
}

// parseAdvance reads an announcement: its id, a space, and the advance's
// end in Unix milliseconds.
func parseAdvance(msg string) (id string, until time.Time, err error) {
	id, ms, ok := strings.Cut(msg, " ")
	n, perr := strconv.ParseInt(ms, 10, 64)
	if !ok || perr != nil || id == "" || len(id) > 64 {
		return "", time.Time{}, fmt.Errorf("redisstore: an advance announcement %q does not parse", msg)
	}
	return id, time.UnixMilli(n).UTC(), nil
}

// Listen implements presence.HolderAdvances. It subscribes again after a
// lost connection, until ctx is done.
func (h Holders) Listen(ctx context.Context, extend func(ctx context.Context, until time.Time) string) {
	h.s.resubscribe(ctx, ctx, h.advanceChannel(), func(m rueidis.PubSubMessage) {
		id, until, err := parseAdvance(m.Message)
		if err != nil {
			h.s.logger().Warn("redis: skipping an advance announcement", "err", err)
			return
		}
		// Not on the subscription's reader: extending may take a while
		// (a write per held session).
		go h.answer(ctx, id, until, extend)
	}, nil)
}

// answer extends as the announcement id asks and answers it.
func (h Holders) answer(ctx context.Context, id string, until time.Time, extend func(ctx context.Context, until time.Time) string) {
	holder := extend(ctx, until)
	if holder == "" {
		return
	}
	key := h.answersKey(id)
	err := h.s.call(ctx, "holder_advance_answer", func(ctx context.Context, cli rueidis.Client) error {
		for _, r := range cli.DoMulti(ctx,
			cli.B().Sadd().Key(key).Member(holder).Build(),
			cli.B().Pexpire().Key(key).Milliseconds(answersTTL.Milliseconds()).Build()) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && ctx.Err() == nil {
		h.s.logger().Warn("redis: answering an advance announcement", "holder", holder, "err", err)
	}
}
