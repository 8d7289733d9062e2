package main

import (
	"context"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/redis/rueidis"
)

// redisBaseline is the Redis baseline: this tool doing, with rueidis and
// the client settings redisstore uses, the Redis work presenced does for
// one request, on copies of the users presenced stored, with no HTTP, no
// authentication and no state machine. Per operation (see redisstore's
// Store.read and Store.Update):
//
//   - getPresence: one MGET of the user's key;
//   - getPresencesByUserId: one MGET of 650 keys;
//   - setPresence and setUserPreferredPresence: one GET of the user's key,
//     then one EVALSHA of a compare-and-set script of the same shape as
//     redisstore's (compare the 8-byte revision; SET the value, ZADD the
//     user's due instant, SPUBLISH an event), retried on a lost race.
//
// What it leaves out: presenced's events have subscribers (every node
// subscribes to the partitions' shard channels), the baseline's none; and
// presenced's background calls (heartbeats, leases, due polling).
type redisBaseline struct {
	redis     *redisServer
	cli       rueidis.Client
	keys      []string // copies of presenced's user keys
	due       []string // the due set of each key's partition
	channel   []string // the shard channel of each key's partition
	event     string   // the event payload, of a realistic size
	meanValue int
}

// baselinePrefix is the prefix of the baseline's keys, which copy
// presenced's ("pd:").
const baselinePrefix = "bl:"

// baselineEventBytes is the size of the event the baseline publishes on
// every write: about what redisstore's appendEvent makes of one change
// (two GUIDs as text, a node id, one change of sequence and pair).
const baselineEventBytes = 128

// baselineCASSrc is the baseline's compare-and-set: redisstore's script
// without the outbox branch, which the load never takes (no
// subscriptions).
//
//	KEYS: 1 state  2 due zset   ARGV: 1 expected revision  2 new value
//	3 member  4 due score  5 event payload  6 shard channel
const baselineCASSrc = `
local cur = redis.call('GET', KEYS[1])
local rev = ''
if cur then rev = string.sub(cur, 1, 8) end
if rev ~= ARGV[1] then return {0, cur or ''} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
if ARGV[5] ~= '' then redis.call('SPUBLISH', ARGV[6], ARGV[5]) end
return {1}
`

var baselineCASSha = func() string {
	sum := sha1.Sum([]byte(baselineCASSrc))
	return hex.EncodeToString(sum[:])
}()

// newRedisBaseline connects to r and copies presenced's user keys (those
// matching pd:*:u:*) under the baseline's prefix.
func newRedisBaseline(ctx context.Context, r *redisServer, seed uint64) (*redisBaseline, error) {
	opt, err := rueidis.ParseURL(r.URL())
	if err != nil {
		return nil, fmt.Errorf("redis baseline: %w", err)
	}
	// redisstore's settings.
	opt.DisableRetry = true
	opt.DisableCache = true
	opt.Dialer.Timeout = 5 * time.Second
	opt.ConnWriteTimeout = 10 * time.Second
	opt.Dialer.KeepAlive = time.Second
	opt.ClientName = "presence-bench"
	cli, err := rueidis.NewClient(opt)
	if err != nil {
		return nil, fmt.Errorf("redis baseline: connect: %w", err)
	}
	d := &redisBaseline{redis: r, cli: cli}
	if err := d.copyUsers(ctx); err != nil {
		cli.Close()
		return nil, err
	}
	if err := cli.Do(ctx, cli.B().ScriptLoad().Script(baselineCASSrc).Build()).Error(); err != nil {
		cli.Close()
		return nil, fmt.Errorf("redis baseline: SCRIPT LOAD: %w", err)
	}
	ev := make([]byte, baselineEventBytes)
	rng := newRand(seed, 7)
	for i := range ev {
		ev[i] = byte(rng.IntN(256))
	}
	d.event = string(ev)
	return d, nil
}

// copyUsers copies every user key of presenced, as they are now, to the
// baseline's prefix (again when called again), and records each copy's due set and channel in the same hash tag.
func (d *redisBaseline) copyUsers(ctx context.Context) error {
	var cursor uint64
	var total int
	d.keys, d.due, d.channel = d.keys[:0], d.due[:0], d.channel[:0]
	for {
		res, err := d.cli.Do(ctx, d.cli.B().Scan().Cursor(cursor).Match("pd:*:u:*").Count(1000).Build()).AsScanEntry()
		if err != nil {
			return fmt.Errorf("redis baseline: SCAN: %w", err)
		}
		if len(res.Elements) > 0 {
			vals, err := d.cli.Do(ctx, d.cli.B().Mget().Key(res.Elements...).Build()).ToArray()
			if err != nil {
				return fmt.Errorf("redis baseline: MGET: %w", err)
			}
			cmds := make(rueidis.Commands, 0, len(vals))
			for i, k := range res.Elements {
				v, err := vals[i].ToString()
				if err != nil {
					continue // deleted meanwhile
				}
				tag, ok := hashTag(k)
				if !ok {
					return fmt.Errorf("redis baseline: key %q has no hash tag", k)
				}
				nk := baselinePrefix + strings.TrimPrefix(k, "pd:")
				cmds = append(cmds, d.cli.B().Set().Key(nk).Value(v).Build())
				d.keys = append(d.keys, nk)
				d.due = append(d.due, baselinePrefix+"{"+tag+"}:due")
				d.channel = append(d.channel, baselinePrefix+"{"+tag+"}:ev")
				total += len(v)
			}
			for _, r := range d.cli.DoMulti(ctx, cmds...) {
				if err := r.Error(); err != nil {
					return fmt.Errorf("redis baseline: SET: %w", err)
				}
			}
		}
		cursor = res.Cursor
		if cursor == 0 {
			break
		}
	}
	if len(d.keys) < bulkIDs {
		return fmt.Errorf("redis baseline: found %d of presenced's users in Redis, want at least %d", len(d.keys), bulkIDs)
	}
	d.meanValue = total / len(d.keys)
	return nil
}

// hashTag returns what is between the first { and the next } of k.
func hashTag(k string) (string, bool) {
	i := strings.IndexByte(k, '{')
	if i < 0 {
		return "", false
	}
	j := strings.IndexByte(k[i+1:], '}')
	if j < 0 {
		return "", false
	}
	return k[i+1 : i+1+j], true
}

// opTimeout is the deadline of one call: redisstore's default OpTimeout.
const opTimeout = 5 * time.Second

// do performs op once, choosing the user with rng.
func (d *redisBaseline) do(ctx context.Context, op string, rng *rand.Rand) error {
	i := rng.IntN(len(d.keys))
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	switch op {
	case opGet:
		_, err := d.cli.Do(octx, d.cli.B().Mget().Key(d.keys[i]).Build()).ToArray()
		return err
	case opBulk:
		keys := make([]string, bulkIDs)
		for j := range keys {
			keys[j] = d.keys[(i+j)%len(d.keys)]
		}
		arr, err := d.cli.Do(octx, d.cli.B().Mget().Key(keys...).Build()).ToArray()
		if err == nil && len(arr) != bulkIDs {
			err = fmt.Errorf("MGET of %d keys returned %d", bulkIDs, len(arr))
		}
		return err
	case opSet, opPreferred:
		return d.update(ctx, i)
	}
	return fmt.Errorf("redis baseline: unknown operation %q", op)
}

// update reads key i and writes it back with its revision incremented and
// the rest of the value unchanged, by compare-and-set, as redisstore's
// Update does (one GET, then one EVALSHA; again on a lost race).
func (d *redisBaseline) update(ctx context.Context, i int) error {
	octx, cancel := context.WithTimeout(ctx, opTimeout)
	cur, err := d.cli.Do(octx, d.cli.B().Get().Key(d.keys[i]).Build()).ToString()
	cancel()
	if err != nil {
		return fmt.Errorf("GET: %w", err)
	}
	member := d.keys[i][strings.Index(d.keys[i], "}:u:")+4:]
	for range 100 {
		if len(cur) < 8 {
			return fmt.Errorf("value of %d bytes", len(cur))
		}
		rev := cur[:8]
		next := binary.BigEndian.AppendUint64(make([]byte, 0, len(cur)), binary.BigEndian.Uint64([]byte(rev))+1)
		next = append(next, cur[8:]...)
		due := strconv.FormatInt(time.Now().Add(4*time.Hour).UnixMicro(), 10)
		octx, cancel := context.WithTimeout(ctx, opTimeout)
		arr, err := d.cli.Do(octx, d.cli.B().Evalsha().Sha1(baselineCASSha).Numkeys(2).Key(d.keys[i], d.due[i]).
			Arg(rev, string(next), member, due, d.event, d.channel[i]).Build()).ToArray()
		cancel()
		if err != nil {
			return fmt.Errorf("EVALSHA: %w", err)
		}
		if len(arr) == 0 {
			return errors.New("EVALSHA: empty reply")
		}
		if won, _ := arr[0].AsInt64(); won == 1 {
			return nil
		}
		if len(arr) > 1 {
			cur, _ = arr[1].ToString()
		}
	}
	return errors.New("compare-and-set lost 100 times")
}

// close closes the client.
func (d *redisBaseline) close() { d.cli.Close() }
