package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/redis/rueidis"
)

// LimitWindow is the length of one throttling window.
const LimitWindow = 30 * time.Second

// Limiter is one request budget per (app, tenant) and window, shared by
// every node of the keyspace.
type Limiter struct {
	s *Store
}

// Limiter returns the store's shared limiter.
func (s *Store) Limiter() *Limiter { return &Limiter{s: s} }

// limitScript counts one request in a window's counter and says whether
// it is within the limit.
//
//	KEYS: 1 counter   ARGV: 1 limit  2 life of the counter in ms
//	returns {1, 0} allowed, or {0, pttl} refused
var limitScript = newScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if n > tonumber(ARGV[1]) then return {0, redis.call('PTTL', KEYS[1])} end
return {1, 0}
`)

// Allow counts one request of app in tenant at now (the service's clock)
// against limit per LimitWindow. The windows are fixed slices of the
// service clock's time; a window also ends when the real clock has moved a
// window's length past its first request (Redis expires its counter), so
// a test clock that stands still does not throttle forever. When the
// request is over the limit, ok is false and retryAfter says when the
// window ends. Errors match presence.ErrUnavailable when Redis cannot
// answer.
func (l *Limiter) Allow(ctx context.Context, app, tenant string, now time.Time, limit int) (retryAfter time.Duration, ok bool, err error) {
	cli, err := l.s.client()
	if err != nil {
		return 0, false, err
	}
	win := now.UnixNano() / int64(LimitWindow)
	if now.UnixNano() < 0 && now.UnixNano()%int64(LimitWindow) != 0 {
		win--
	}
	end := time.Unix(0, (win+1)*int64(LimitWindow))
	left := end.Sub(now)
	if left <= 0 {
		left = time.Millisecond
	}
	key := l.s.opts.Prefix + ":{rl:" + app + ":" + tenant + "}:" + strconv.FormatInt(win, 10)
	octx, cancel := l.s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	arr, err := limitScript.run(octx, cli, []string{key}, []string{strconv.Itoa(limit), strconv.FormatInt(max(left.Milliseconds(), 1), 10)}).AsIntSlice()
	l.s.metrics.roundTrip("limit", start, err)
	if err != nil {
		return 0, false, wrap(ctx, "limit", err)
	}
	if len(arr) != 2 {
		return 0, false, fmt.Errorf("redisstore: limit: unexpected reply %v", arr)
	}
	if arr[0] == 1 {
		return 0, true, nil
	}
	retry := time.Duration(arr[1]) * time.Millisecond
	if retry <= 0 || retry > left {
		retry = left
	}
	return retry, false, nil
}

// SharedKey returns the bytes stored under name, creating them with create
// when no node has yet: the first node's SET NX wins and every node reads
// the winner's bytes. It is for keys every node must share, such as the
// validationToken signing key and the development issuer's key. Errors of
// create are returned as they are.
func (s *Store) SharedKey(ctx context.Context, name string, create func() ([]byte, error)) ([]byte, error) {
	cli, err := s.client()
	if err != nil {
		return nil, err
	}
	key := s.opts.Prefix + ":{m}:key:" + name
	get := func() ([]byte, bool, error) {
		octx, cancel := s.opCtx(ctx)
		defer cancel()
		b, err := cli.Do(octx, cli.B().Get().Key(key).Build()).AsBytes()
		if rueidis.IsRedisNil(err) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, wrap(ctx, "shared key "+name, err)
		}
		return b, true, nil
	}
	if b, ok, err := get(); err != nil || ok {
		return b, err
	}
	b, err := create()
	if err != nil {
		return nil, err
	}
	octx, cancel := s.opCtx(ctx)
	err = cli.Do(octx, cli.B().Set().Key(key).Value(rueidis.BinaryString(b)).Nx().Build()).Error()
	cancel()
	if err != nil && !rueidis.IsRedisNil(err) {
		return nil, wrap(ctx, "shared key "+name, err)
	}
	// Another node may have won: everyone uses what is stored.
	b, ok, err := get()
	if err == nil && !ok {
		err = fmt.Errorf("redisstore: shared key %s vanished", name)
	}
	return b, err
}

// Clock is a test clock shared by every node of the keyspace: it stands
// still until told to move, and a move made on one node is seen by Now on
// every node at once (each Now reads Redis). It is kept in Redis, so it
// survives restarts of nodes and of Redis. It starts at the real time when
// no node has set it yet. It is for test mode only.
type Clock struct {
	s    *Store
	key  string
	mu   sync.Mutex
	last time.Time
}

var _ presence.Clock = (*Clock)(nil)

// Clock returns the keyspace's shared test clock.
func (s *Store) Clock() *Clock { return &Clock{s: s, key: s.opts.Prefix + ":{m}:clock"} }

// clockScript reads, starts, advances or sets the clock. Instants are
// decimal Unix nanoseconds; INCRBY works on 64-bit integers, exact, and
// the comparison is done on the strings (Lua's numbers are doubles).
//
//	KEYS: 1 clock   ARGV: 1 real now  2 op ('' read, '+' advance, '=' set)  3 operand
var clockScript = newScript(`
local cur = redis.call('GET', KEYS[1])
if not cur then redis.call('SET', KEYS[1], ARGV[1]) cur = ARGV[1] end
if ARGV[2] == '+' then
  redis.call('INCRBY', KEYS[1], ARGV[3])
  return redis.call('GET', KEYS[1])
end
if ARGV[2] == '=' then
  local t = ARGV[3]
  if #t > #cur or (#t == #cur and t > cur) then redis.call('SET', KEYS[1], t) return t end
end
return cur
`)

func (c *Clock) do(ctx context.Context, op string, operand int64) (time.Time, error) {
	cli, err := c.s.client()
	if err != nil {
		return time.Time{}, err
	}
	octx, cancel := c.s.opCtx(ctx)
	defer cancel()
	v, err := clockScript.run(octx, cli, []string{c.key},
		[]string{strconv.FormatInt(time.Now().UnixNano(), 10), op, strconv.FormatInt(operand, 10)}).ToString()
	if err != nil {
		return time.Time{}, wrap(ctx, "clock", err)
	}
	ns, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("redisstore: clock holds %q: %w", v, err)
	}
	t := time.Unix(0, ns).UTC()
	c.mu.Lock()
	c.last = t
	c.mu.Unlock()
	return t, nil
}

// Now returns the shared clock's instant. When Redis cannot be read it
// returns the last instant it read (so it does not move back), or the real
// time if it never read one.
func (c *Clock) Now() time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), c.s.opts.OpTimeout)
	defer cancel()
	t, err := c.do(ctx, "", 0)
	if err != nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.last.IsZero() {
			return time.Now().UTC()
		}
		return c.last
	}
	return t
}

// Advance moves the clock forward by d (a negative d is ignored) and
// returns the new instant.
func (c *Clock) Advance(ctx context.Context, d time.Duration) (time.Time, error) {
	return c.do(ctx, "+", int64(max(d, 0)))
}

// Set moves the clock to t if t is after its instant (it never moves
// back) and returns the clock's instant.
func (c *Clock) Set(ctx context.Context, t time.Time) (time.Time, error) {
	if t.UnixNano() <= 0 {
		return c.do(ctx, "", 0)
	}
	return c.do(ctx, "=", t.UnixNano())
}
