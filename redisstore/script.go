package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"

	"github.com/redis/rueidis"
)

// script is a Lua script sent by EVALSHA, falling back to EVAL when the
// server does not know it (after a restart or on a new cluster node). The
// fallback is safe: a NOSCRIPT reply means nothing ran.
type script struct {
	src string
	sha string
}

func newScript(src string) *script {
	sum := sha1.Sum([]byte(src))
	return &script{src: src, sha: hex.EncodeToString(sum[:])}
}

func (sc *script) evalsha(b rueidis.Builder, keys, args []string) rueidis.Completed {
	return b.Evalsha().Sha1(sc.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

func (sc *script) eval(b rueidis.Builder, keys, args []string) rueidis.Completed {
	return b.Eval().Script(sc.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

func isNoScript(err error) bool {
	re, ok := rueidis.IsRedisErr(err)
	return ok && re.IsNoScript()
}

// run runs the script once.
func (sc *script) run(ctx context.Context, c rueidis.CoreClient, keys, args []string) rueidis.RedisResult {
	r := c.Do(ctx, sc.evalsha(c.B(), keys, args))
	if isNoScript(r.Error()) {
		r = c.Do(ctx, sc.eval(c.B(), keys, args))
	}
	return r
}

// scriptCall is one call of a script in runMulti.
type scriptCall struct {
	keys, args []string
}

// runMulti runs many calls of the script in one pipeline (DoMulti routes
// each to its slot's node), resending with EVAL those that got NOSCRIPT.
func (sc *script) runMulti(ctx context.Context, c rueidis.Client, calls []scriptCall) []rueidis.RedisResult {
	if len(calls) == 0 {
		return nil
	}
	cmds := make([]rueidis.Completed, len(calls))
	for i, call := range calls {
		cmds[i] = sc.evalsha(c.B(), call.keys, call.args)
	}
	res := c.DoMulti(ctx, cmds...)
	var again []int
	for i, r := range res {
		if isNoScript(r.Error()) {
			again = append(again, i)
		}
	}
	if len(again) > 0 {
		cmds = cmds[:0]
		for _, i := range again {
			cmds = append(cmds, sc.eval(c.B(), calls[i].keys, calls[i].args))
		}
		for j, r := range c.DoMulti(ctx, cmds...) {
			res[again[j]] = r
		}
	}
	return res
}

// casScript is the compare-and-set of one user. The state machine runs in
// Go; the script only compares the 8-byte revision at the start of the
// stored value and, when it matches, writes the new value, the user's entry
// in the partition's due index, its membership in the partition's set of
// users with undelivered notices, and publishes the change event. On a
// mismatch it writes nothing and returns what is stored, so the retry
// needs no second read. Every argument is validated in Go before, so no
// command can fail after the first write (a script is atomic but not
// all-or-nothing).
//
//	KEYS: 1 state  2 due zset  3 outbox set   (one hash tag: one slot)
//	ARGV: 1 expected revision ('' = must not exist)  2 new value  3 member
//	      4 due: '' unchanged, '-' remove, else the score
//	      5 outbox: '' unchanged, '+' add, '-' remove
//	      6 event payload ('' = none)  7 shard channel
var casScript = newScript(`
local cur = redis.call('GET', KEYS[1])
local rev = ''
if cur then rev = string.sub(cur, 1, 8) end
if rev ~= ARGV[1] then return {0, cur or ''} end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[4] == '-' then redis.call('ZREM', KEYS[2], ARGV[3])
elseif ARGV[4] ~= '' then redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3]) end
if ARGV[5] == '+' then redis.call('SADD', KEYS[3], ARGV[3])
elseif ARGV[5] == '-' then redis.call('SREM', KEYS[3], ARGV[3]) end
if ARGV[6] ~= '' then redis.call('SPUBLISH', ARGV[7], ARGV[6]) end
return {1}
`)

// heartbeatScript records this node as alive at Redis's own clock (not the
// node's) and returns the nodes alive within the window.
//
//	KEYS: 1 nodes zset   ARGV: 1 node id  2 live window ms  3 forget after ms
var heartbeatScript = newScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')
`)

// leaseScript acquires a partition's lease when it is free, or renews it
// when this node holds it. It returns 2 when acquired, 1 when renewed, 0
// when another node holds it.
//
//	KEYS: 1 lease   ARGV: 1 holder (node id and token)  2 TTL ms
var leaseScript = newScript(`
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
`)

// releaseScript deletes a lease if this node holds it.
//
//	KEYS: 1 lease   ARGV: 1 holder
var releaseScript = newScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
`)
