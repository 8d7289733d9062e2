package redisstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
)

// The bounds of the shared delivery log, the same as the memory log's
// (notify.MemoryDeliveryLog): the attempts kept per subscription and the
// notifications kept per attempt. A subscription's log lives
// DeliveryLogTTL after its last attempt, so the logs of deleted or expired
// subscriptions go away on their own.
const (
	deliveryLogLen   = 50
	deliveryLogItems = 20
	// DeliveryLogTTL is how long a subscription's delivery log outlives its
	// last recorded attempt.
	DeliveryLogTTL = 24 * time.Hour
)

// DeliveryLog is the delivery log shared by every node of the keyspace: a
// presence.DeliveryLog, so that the console on any node shows the attempts
// of whichever node delivered. Each subscription's log is one Redis list,
// newest first, on its own hash tag (no operation spans two keys):
//
//	pd:{dl:<subscription id>}  list of JSON attempts, at most 50, with a TTL
type DeliveryLog struct{ s *Store }

var _ presence.DeliveryLog = DeliveryLog{}

// DeliveryLog returns the store's shared delivery log.
func (s *Store) DeliveryLog() DeliveryLog { return DeliveryLog{s} }

// deliveryLogScript pushes one attempt, trims the list and renews its TTL
// at once (a script on one key, so that it works on a Cluster too).
//
//	KEYS: 1 list   ARGV: 1 JSON  2 last index kept  3 TTL in ms
var deliveryLogScript = newScript(`
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

func (l DeliveryLog) key(sub string) string {
	return l.s.opts.Prefix + ":{dl:" + strings.ToLower(sub) + "}"
}

// Record implements presence.DeliveryLog: it pushes the attempt onto its
// subscription's list, trims the list to its bound and renews its TTL, in
// one script on one key. Errors match presence.ErrUnavailable when Redis
// cannot answer.
func (l DeliveryLog) Record(ctx context.Context, a presence.DeliveryAttempt) error {
	if len(a.Items) > deliveryLogItems {
		a.Items = a.Items[:deliveryLogItems:deliveryLogItems]
	}
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("redisstore: encode delivery attempt: %w", err)
	}
	cli, err := l.s.client()
	if err != nil {
		return err
	}
	key := l.key(a.Subscription)
	octx, cancel := l.s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	err = deliveryLogScript.run(octx, cli, []string{key}, []string{string(data),
		strconv.Itoa(deliveryLogLen - 1), strconv.FormatInt(DeliveryLogTTL.Milliseconds(), 10)}).Error()
	l.s.metrics.roundTrip("deliverylog", start, err)
	return wrap(ctx, "record delivery attempt", err)
}

// Recent implements presence.DeliveryLog: the subscription's recorded
// attempts, newest first. Errors match presence.ErrUnavailable when Redis
// cannot answer.
func (l DeliveryLog) Recent(ctx context.Context, subscription string) ([]presence.DeliveryAttempt, error) {
	cli, err := l.s.client()
	if err != nil {
		return nil, err
	}
	octx, cancel := l.s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	vals, err := cli.Do(octx, cli.B().Lrange().Key(l.key(subscription)).Start(0).Stop(deliveryLogLen-1).Build()).AsStrSlice()
	l.s.metrics.roundTrip("deliverylog", start, err)
	if err != nil {
		return nil, wrap(ctx, "read delivery log", err)
	}
	out := make([]presence.DeliveryAttempt, 0, len(vals))
	for _, v := range vals {
		var a presence.DeliveryAttempt
		if err := json.Unmarshal([]byte(v), &a); err != nil {
			return nil, fmt.Errorf("redisstore: a stored delivery attempt does not decode: %w", err)
		}
		out = append(out, a)
	}
	return out, nil
}
