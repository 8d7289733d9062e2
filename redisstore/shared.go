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

// LimitWindow is the length of Graph's throttling window, Allow's.
const LimitWindow = 30 * time.Second

// limitSlots is how many slots a window is cut into: the admissions of one
// slot leave the window together.
const limitSlots = 30

// Limiter is one request budget per (app, tenant) shared by every node of
// the keyspace: a sliding window of limitSlots counters (one second each
// for a 30 s window) in one small Redis hash per pair, on its own hash tag
// so that pairs spread over a Cluster.
type Limiter struct {
	s *Store
}

// Limiter returns the store's shared limiter.
func (s *Store) Limiter() *Limiter { return &Limiter{s: s} }

// limitScript admits one request when the slots still in the window hold
// fewer than the limit, dropping the slots that left it. Slot numbers are
// computed in Go (about 1.8e9 for 1 s slots: exact in Lua's doubles).
//
//	KEYS: 1 hash slot → count   ARGV: 1 current slot  2 slots per window
//	      3 limit  4 idle life in ms
//	returns {1, 0} admitted, or {0, oldest slot still counted}
var limitScript = newScript(`
local cur = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local h = redis.call('HGETALL', KEYS[1])
local total = 0
local oldest = cur
for i = 1, #h, 2 do
  local s = tonumber(h[i])
  if s <= cur - n then
    redis.call('HDEL', KEYS[1], h[i])
  else
    total = total + tonumber(h[i + 1])
    if s < oldest then oldest = s end
  end
end
if total < tonumber(ARGV[3]) then
  redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {1, 0}
end
return {0, oldest}
`)

// Allow is AllowWindow with Graph's window, LimitWindow.
func (l *Limiter) Allow(ctx context.Context, app, tenant string, now time.Time, limit int) (retryAfter time.Duration, ok bool, err error) {
	return l.AllowWindow(ctx, app, tenant, now, limit, LimitWindow)
}

// AllowWindow counts one request of app in tenant at now (the service's
// clock) against at most limit per window, on every node together. A
// request over the limit is not counted; ok is then false and retryAfter
// says when the oldest counted requests leave the window. The slots are
// fixed slices of the service clock's time, so an admission leaves the
// window up to one slot early (the client's gain). The window also ends
// when the real clock has moved a window past the pair's last admission
// (Redis expires its hash), so a test clock that stands still does not
// throttle forever. A limit of 0 or less admits everything. Errors match
// presence.ErrUnavailable when Redis cannot answer.
func (l *Limiter) AllowWindow(ctx context.Context, app, tenant string, now time.Time, limit int, window time.Duration) (retryAfter time.Duration, ok bool, err error) {
	if limit <= 0 {
		return 0, true, nil
	}
	cli, err := l.s.client()
	if err != nil {
		return 0, false, err
	}
	if window <= 0 {
		window = LimitWindow
	}
	slot := window / limitSlots
	if slot <= 0 {
		slot = 1
	}
	cur := now.UnixNano() / int64(slot)
	if now.UnixNano() < 0 && now.UnixNano()%int64(slot) != 0 {
		cur--
	}
	key := l.s.opts.Prefix + ":{rl:" + app + ":" + tenant + "}"
	octx, cancel := l.s.opCtx(ctx)
	defer cancel()
	start := time.Now()
	arr, err := limitScript.run(octx, cli, []string{key}, []string{strconv.FormatInt(cur, 10), strconv.Itoa(limitSlots),
		strconv.Itoa(limit), strconv.FormatInt(max(window.Milliseconds(), 1), 10)}).AsIntSlice()
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
	leaves := time.Unix(0, (arr[1]+limitSlots)*int64(slot))
	retry := leaves.Sub(now)
	if retry < time.Millisecond {
		retry = time.Millisecond
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

// SetSetting records a setting every node reads with Settings, such as the
// request budget a test hook sets on one node for all of them.
func (s *Store) SetSetting(ctx context.Context, name, value string) error {
	cli, err := s.client()
	if err != nil {
		return err
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	err = cli.Do(octx, cli.B().Hset().Key(s.settingsKey()).FieldValue().FieldValue(name, value).Build()).Error()
	return wrap(ctx, "set setting "+name, err)
}

// Settings returns every setting recorded with SetSetting.
func (s *Store) Settings(ctx context.Context) (map[string]string, error) {
	cli, err := s.client()
	if err != nil {
		return nil, err
	}
	octx, cancel := s.opCtx(ctx)
	defer cancel()
	m, err := cli.Do(octx, cli.B().Hgetall().Key(s.settingsKey()).Build()).AsStrMap()
	if err != nil {
		return nil, wrap(ctx, "settings", err)
	}
	return m, nil
}

func (s *Store) settingsKey() string { return s.opts.Prefix + ":{m}:settings" }
