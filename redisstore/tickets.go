package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/redis/rueidis"

	presence "github.com/presenced/presenced"
)

// Tickets keeps the short-lived, single-use tickets a browser trades for a
// connection or a stream where it cannot send an Authorization header,
// shared by every node: a ticket minted through one node is redeemed
// through any other (a load balancer may send the two requests apart).
// Each ticket is one key with a time to live, taken with GETDEL so that it
// is redeemed once.
type Tickets struct{ s *Store }

// Tickets returns the store's ticket store.
func (s *Store) Tickets() Tickets { return Tickets{s} }

type ticketValue struct {
	Principal presence.Principal `json:"p"`
	Expires   int64              `json:"e"` // Unix nanoseconds
}

func (x Tickets) key(id string) string { return x.s.opts.Prefix + ":{t:" + id + "}" }

// Put keeps p under id until expires.
func (x Tickets) Put(ctx context.Context, id string, p presence.Principal, expires time.Time) error {
	ttl := time.Until(expires)
	if ttl <= 0 {
		return nil // already expired: nothing to keep
	}
	data, err := json.Marshal(ticketValue{Principal: p, Expires: expires.UnixNano()})
	if err != nil {
		return fmt.Errorf("redisstore: encode ticket: %w", err)
	}
	cli, err := x.s.client()
	if err != nil {
		return err
	}
	octx, cancel := x.s.opCtx(ctx)
	defer cancel()
	err = cli.Do(octx, cli.B().Set().Key(x.key(id)).Value(string(data)).Px(max(ttl, time.Millisecond)).Build()).Error()
	return wrap(ctx, "put ticket", err)
}

// Take removes the ticket id and returns its principal, if it was there and
// had not expired at now.
func (x Tickets) Take(ctx context.Context, id string, now time.Time) (presence.Principal, bool, error) {
	cli, err := x.s.client()
	if err != nil {
		return presence.Principal{}, false, err
	}
	octx, cancel := x.s.opCtx(ctx)
	defer cancel()
	v, err := cli.Do(octx, cli.B().Getdel().Key(x.key(id)).Build()).ToString()
	if rueidis.IsRedisNil(err) {
		return presence.Principal{}, false, nil
	}
	if err != nil {
		return presence.Principal{}, false, wrap(ctx, "take ticket", err)
	}
	var t ticketValue
	if err := json.Unmarshal([]byte(v), &t); err != nil {
		return presence.Principal{}, false, fmt.Errorf("redisstore: a stored ticket does not decode: %w", err)
	}
	if now.UnixNano() >= t.Expires {
		return presence.Principal{}, false, nil
	}
	return t.Principal, true, nil
}
