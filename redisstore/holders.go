package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/rueidis"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/statemap"
)

// Holders is the registry of the processes holding client connections'
// sessions (presence.Holders), shared by every node: one record per holder
// with its expiry on the service clock (a sorted set), the holders found
// dead and being swept (a set), and per holder the set of the sessions it
// holds. Every key shares the hash tag {h}, so the scripts touching
// several of them run on one cluster slot.
//
// A node renews its one record every few seconds instead of a lease per
// connection; when a node dies, another one finds its record expired,
// claims it (Claim), ends the sessions listed under it and forgets it.
type Holders struct{ s *Store }

// Holders returns the store's registry of session holders.
func (s *Store) Holders() Holders { return Holders{s} }

var _ presence.Holders = Holders{}

func (h Holders) recordsKey() string { return h.s.opts.Prefix + ":{h}:holders" }
func (h Holders) deadKey() string    { return h.s.opts.Prefix + ":{h}:dead" }
func (h Holders) heldKey(holder string) string {
	return h.s.opts.Prefix + ":{h}:held:" + holder
}

// heldMember is a session's member of its holder's set: the key as
// statemap.AppendKey writes it, then the device.
func heldMember(hs presence.HeldSession) string {
	return string(append(statemap.AppendKey(make([]byte, 0, 48), hs.Key), hs.Device...))
}

func parseHeld(m string) (presence.HeldSession, error) {
	key, rest, err := statemap.DecodeKey([]byte(m))
	if err != nil {
		return presence.HeldSession{}, err
	}
	if !presence.ValidDeviceID(string(rest)) {
		return presence.HeldSession{}, fmt.Errorf("redisstore: a held session's device %q is not valid", rest)
	}
	return presence.HeldSession{Key: key, Device: string(rest)}, nil
}

func millis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// Register implements presence.Holders.
func (h Holders) Register(ctx context.Context, holder string, until time.Time) error {
	return h.s.call(ctx, "holder_register", func(ctx context.Context, cli rueidis.Client) error {
		return cli.Do(ctx, cli.B().Zadd().Key(h.recordsKey()).ScoreMember().ScoreMember(float64(until.UnixMilli()), holder).Build()).Error()
	})
}

// renewHolderScript extends a holder's record unless it is gone or claimed
// (never shortening it: a renewal computed before a test clock's advance
// may arrive after the advance's extension), and keeps the holder's set
// from outliving it by more than a day of real time (a set a late Add
// recreated after Forget).
//
//	KEYS: 1 records zset  2 dead set  3 held set
//	ARGV: 1 holder  2 until ms  3 the set's time to live, ms
var renewHolderScript = newScript(`
local cur = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not cur then return 0 end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
if tonumber(ARGV[2]) > tonumber(cur) then redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1]) end
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
`)

// heldTTL bounds how long a holder's set outlives its last renewal.
const heldTTL = 24 * time.Hour

// Renew implements presence.Holders.
func (h Holders) Renew(ctx context.Context, holder string, until time.Time) (alive bool, err error) {
	err = h.s.call(ctx, "holder_renew", func(ctx context.Context, cli rueidis.Client) error {
		n, err := renewHolderScript.run(ctx, cli, []string{h.recordsKey(), h.deadKey(), h.heldKey(holder)},
			[]string{holder, millis(until), strconv.FormatInt(heldTTL.Milliseconds(), 10)}).AsInt64()
		alive = n == 1
		return err
	})
	return alive, err
}

// Add implements presence.Holders. With Options.WaitReplicas it waits for
// the replicas as a state write does: a session must not outlive a
// failover listed nowhere.
func (h Holders) Add(ctx context.Context, holder string, held ...presence.HeldSession) error {
	if len(held) == 0 {
		return nil
	}
	return h.s.call(ctx, "holder_add", func(ctx context.Context, cli rueidis.Client) error {
		add := cli.B().Sadd().Key(h.heldKey(holder)).Member(members(held)...).Build()
		if h.s.opts.WaitReplicas <= 0 {
			return cli.Do(ctx, add).Error()
		}
		return cli.Dedicated(func(c rueidis.DedicatedClient) error {
			res := c.DoMulti(ctx, add, h.s.waitCmd(c))
			if err := res[0].Error(); err != nil {
				return err
			}
			return h.s.reachedReplicas(res[1], "a holder's list")
		})
	})
}

// Remove implements presence.Holders.
func (h Holders) Remove(ctx context.Context, holder string, held ...presence.HeldSession) error {
	if len(held) == 0 {
		return nil
	}
	return h.s.call(ctx, "holder_remove", func(ctx context.Context, cli rueidis.Client) error {
		return cli.Do(ctx, cli.B().Srem().Key(h.heldKey(holder)).Member(members(held)...).Build()).Error()
	})
}

func members(held []presence.HeldSession) []string {
	ms := make([]string, len(held))
	for i, hs := range held {
		ms[i] = heldMember(hs)
	}
	return ms
}

// claimScript marks up to a limit of expired holders dead, moves their
// records' expiry to the claim's end (so that no other node sweeps them
// meanwhile; one that dies sweeping leaves them to the next), and returns
// them.
//
//	KEYS: 1 records zset  2 dead set   ARGV: 1 now ms  2 claim until ms  3 limit
var claimScript = newScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
for _, holder in ipairs(due) do
  redis.call('SADD', KEYS[2], holder)
  redis.call('ZADD', KEYS[1], ARGV[2], holder)
end
return due
`)

// Claim implements presence.Holders.
func (h Holders) Claim(ctx context.Context, now, until time.Time, limit int) ([]presence.ClaimedHolder, error) {
	var claimed []presence.ClaimedHolder
	err := h.s.call(ctx, "holder_claim", func(ctx context.Context, cli rueidis.Client) error {
		due, err := claimScript.run(ctx, cli, []string{h.recordsKey(), h.deadKey()},
			[]string{millis(now), millis(until), strconv.Itoa(max(limit, 1))}).AsStrSlice()
		if err != nil || len(due) == 0 {
			return err
		}
		cmds := make(rueidis.Commands, len(due))
		for i, holder := range due {
			cmds[i] = cli.B().Smembers().Key(h.heldKey(holder)).Build()
		}
		for i, r := range cli.DoMulti(ctx, cmds...) {
			ms, err := r.AsStrSlice()
			if err != nil {
				return err
			}
			c := presence.ClaimedHolder{Holder: due[i], Held: make([]presence.HeldSession, 0, len(ms))}
			for _, m := range ms {
				hs, err := parseHeld(m)
				if err != nil {
					h.s.logger().Warn("redis: skipping a held session that does not parse", "holder", due[i], "err", err)
					continue
				}
				c.Held = append(c.Held, hs)
			}
			claimed = append(claimed, c)
		}
		return nil
	})
	return claimed, err
}

// Forget implements presence.Holders.
func (h Holders) Forget(ctx context.Context, holder string) error {
	return h.s.call(ctx, "holder_forget", func(ctx context.Context, cli rueidis.Client) error {
		for _, r := range cli.DoMulti(ctx,
			cli.B().Zrem().Key(h.recordsKey()).Member(holder).Build(),
			cli.B().Del().Key(h.heldKey(holder)).Build(),
			cli.B().Srem().Key(h.deadKey()).Member(holder).Build()) {
			if err := r.Error(); err != nil {
				return err
			}
		}
		return nil
	})
}
