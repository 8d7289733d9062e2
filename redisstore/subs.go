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

// Subscriptions returns the keyspace's change-notification subscriptions,
// shared by every node: a presence.SubscriptionStore.
//
//	pd:{m}:subs    hash  id → subscription (JSON)
//	pd:{m}:slots   hash  tenant NUL creator NUL application → "id expiry-ms"
//	pd:{m}:subver  counter, incremented by every change
func (s *Store) Subscriptions() *SubscriptionStore {
	p := s.opts.Prefix + ":{m}:"
	return &SubscriptionStore{s: s, keys: []string{p + "subs", p + "slots", p + "subver"}}
}

// SubscriptionStore keeps subscriptions in Redis for every node. Put checks
// the one-subscription-per-(tenant, creator, application) rule atomically
// in Redis, so two nodes cannot both create one.
type SubscriptionStore struct {
	s    *Store
	keys []string
}

var _ presence.SubscriptionStore = (*SubscriptionStore)(nil)

// subsLoadScript returns the version and every subscription at one instant.
var subsLoadScript = newScript(`
return {redis.call('GET', KEYS[3]) or '0', redis.call('HVALS', KEYS[1])}
`)

// subsPutScript stores a new subscription unless its slot holds another
// live one.
//
//	ARGV: 1 id  2 JSON  3 slot  4 expiry ms  5 now ms
var subsPutScript = newScript(`
local cur = redis.call('HGET', KEYS[2], ARGV[3])
if cur then
  local sp = string.find(cur, ' ', 1, true)
  local oid = string.sub(cur, 1, sp - 1)
  if oid ~= ARGV[1] and tonumber(string.sub(cur, sp + 1)) > tonumber(ARGV[5])
     and redis.call('HEXISTS', KEYS[1], oid) == 1 then
    return 0
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], ARGV[1] .. ' ' .. ARGV[4])
redis.call('INCR', KEYS[3])
return 1
`)

// subsReplaceScript overwrites a stored subscription (and its slot's
// expiry), or returns 0 when it is gone.
//
//	ARGV: 1 id  2 JSON  3 slot  4 expiry ms
var subsReplaceScript = newScript(`
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local cur = redis.call('HGET', KEYS[2], ARGV[3])
if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[1] .. ' ' .. ARGV[4])
end
redis.call('INCR', KEYS[3])
return 1
`)

// subsDeleteScript removes a subscription and frees its slot.
//
//	ARGV: 1 id  2 slot
var subsDeleteScript = newScript(`
local n = redis.call('HDEL', KEYS[1], ARGV[1])
local cur = redis.call('HGET', KEYS[2], ARGV[2])
if cur and string.sub(cur, 1, #ARGV[1] + 1) == ARGV[1] .. ' ' then
  redis.call('HDEL', KEYS[2], ARGV[2])
end
if n > 0 then redis.call('INCR', KEYS[3]) end
return n
`)

func slotOfSub(sub *presence.Subscription) string {
	return strings.ToLower(sub.Tenant) + "\x00" + strings.ToLower(sub.CreatorID) + "\x00" + strings.ToLower(sub.ApplicationID)
}

func (ss *SubscriptionStore) run(ctx context.Context, what string, sc *script, args []string) (int64, error) {
	cli, err := ss.s.client()
	if err != nil {
		return 0, err
	}
	octx, cancel := ss.s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	n, err := sc.run(octx, cli, ss.keys, args).AsInt64()
	ss.s.metrics.roundTrip("subscriptions", start, err)
	if err != nil {
		return 0, wrap(ctx, what, err)
	}
	return n, nil
}

// Load returns every stored subscription and the store's version.
func (ss *SubscriptionStore) Load(ctx context.Context) ([]presence.Subscription, uint64, error) {
	cli, err := ss.s.client()
	if err != nil {
		return nil, 0, err
	}
	octx, cancel := ss.s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	arr, err := subsLoadScript.run(octx, cli, ss.keys, nil).ToArray()
	ss.s.metrics.roundTrip("subscriptions", start, err)
	if err != nil {
		return nil, 0, wrap(ctx, "load subscriptions", err)
	}
	if len(arr) != 2 {
		return nil, 0, fmt.Errorf("redisstore: load subscriptions: unexpected reply")
	}
	vs, _ := arr[0].ToString()
	ver, err := strconv.ParseUint(vs, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("redisstore: subscription version %q: %w", vs, err)
	}
	vals, err := arr[1].AsStrSlice()
	if err != nil {
		return nil, 0, wrap(ctx, "load subscriptions", err)
	}
	subs := make([]presence.Subscription, 0, len(vals))
	for _, v := range vals {
		var sub presence.Subscription
		if err := json.Unmarshal([]byte(v), &sub); err != nil {
			return nil, 0, fmt.Errorf("redisstore: stored subscription: %w", err)
		}
		subs = append(subs, sub)
	}
	return subs, ver, nil
}

// Version returns a number that changes whenever any node changes a
// subscription.
func (ss *SubscriptionStore) Version(ctx context.Context) (uint64, error) {
	cli, err := ss.s.client()
	if err != nil {
		return 0, err
	}
	octx, cancel := ss.s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	v, err := cli.Do(octx, cli.B().Get().Key(ss.keys[2]).Build()).AsUint64()
	ss.s.metrics.roundTrip("subscriptions", start, err)
	if err != nil {
		if isRedisNil(err) {
			return 0, nil
		}
		return 0, wrap(ctx, "subscription version", err)
	}
	return v, nil
}

// Put stores a new subscription, or fails with
// presence.ErrSubscriptionSlotTaken when its creator's application holds
// another one in the tenant that has not expired by now.
func (ss *SubscriptionStore) Put(ctx context.Context, sub presence.Subscription, now time.Time) error {
	b, err := json.Marshal(sub)
	if err != nil {
		return err
	}
	n, err := ss.run(ctx, "put subscription", subsPutScript, []string{sub.ID, string(b), slotOfSub(&sub),
		strconv.FormatInt(sub.ExpirationDateTime.UnixMilli(), 10), strconv.FormatInt(now.UnixMilli(), 10)})
	if err != nil {
		return err
	}
	if n == 0 {
		return presence.ErrSubscriptionSlotTaken
	}
	return nil
}

// Replace overwrites a stored subscription; it reports false, writing
// nothing, when the subscription is no longer stored.
func (ss *SubscriptionStore) Replace(ctx context.Context, sub presence.Subscription) (bool, error) {
	b, err := json.Marshal(sub)
	if err != nil {
		return false, err
	}
	n, err := ss.run(ctx, "replace subscription", subsReplaceScript, []string{sub.ID, string(b), slotOfSub(&sub),
		strconv.FormatInt(sub.ExpirationDateTime.UnixMilli(), 10)})
	return n == 1, err
}

// Delete removes a subscription; deleting one that is not stored is not an
// error.
func (ss *SubscriptionStore) Delete(ctx context.Context, sub presence.Subscription) error {
	_, err := ss.run(ctx, "delete subscription", subsDeleteScript, []string{sub.ID, slotOfSub(&sub)})
	return err
}

// Close does nothing: the Store owns the connections.
func (ss *SubscriptionStore) Close() error { return nil }
