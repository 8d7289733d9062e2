// Package testclock is the service clock of --test-hooks: a clock that moves
// only when told to, forward only, and that can be durable. A durable clock
// keeps its instant in a file, written and fsynced before a move is
// answered, so a restart on the same data resumes from the last instant the
// clock reached and never earlier: the stored state, written at the clock's
// instants, never lies in the future of a restarted clock.
//
// The hooks use it through testhooks.Clock, so another implementation (one
// shared by several nodes through Redis, say) can take its place.
package testclock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
)

// FileName is the name of the durable clock's file in a data directory.
const FileName = "test-clock.json"

// Clock is a test clock. It is safe for concurrent use.
type Clock struct {
	mu   sync.Mutex
	now  time.Time
	path string // empty: not durable
}

// New returns a clock stopped at start that lives in memory only.
func New(start time.Time) *Clock {
	return &Clock{now: start.UTC()}
}

// Open returns a durable clock whose instant is kept in dir/FileName. When
// the file exists, the clock resumes from the instant it holds, and resumed
// reports true; otherwise the clock starts at start and writes it.
func Open(dir string, start time.Time) (c *Clock, resumed bool, err error) {
	c = &Clock{now: start.UTC(), path: filepath.Join(dir, FileName)}
	data, err := os.ReadFile(c.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, false, fmt.Errorf("test clock: %w", err)
		}
		if err := c.persist(c.now); err != nil {
			return nil, false, err
		}
		return c, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("test clock: %w", err)
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil || rec.Now.IsZero() {
		return nil, false, fmt.Errorf("test clock: %s does not hold {\"now\":\"<RFC 3339>\"}; delete it to start from the real time", c.path)
	}
	c.now = rec.Now.UTC()
	return c, true, nil
}

type record struct {
	Now time.Time `json:"now"`
}

// Now returns the clock's instant.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d, which must not be negative, and
// returns the new instant once it is durable.
func (c *Clock) Advance(ctx context.Context, d time.Duration) (time.Time, error) {
	if d < 0 {
		return c.Now(), presence.Errorf(presence.CodeBadRequest, "The clock moves forward only: %s is negative.", d)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.moveLocked(ctx, c.now.Add(d))
}

// Set moves the clock forward to t and returns the new instant once it is
// durable. An instant before the clock's now is refused with a
// CodeBadRequest error; t equal to now changes nothing.
func (c *Clock) Set(ctx context.Context, t time.Time) (time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.Before(c.now) {
		return c.now, presence.Errorf(presence.CodeBadRequest,
			"The clock moves forward only: %s is before the clock's now, %s.",
			t.UTC().Format(time.RFC3339Nano), c.now.Format(time.RFC3339Nano))
	}
	return c.moveLocked(ctx, t.UTC())
}

// moveLocked makes t durable, then the clock's now; c.mu held.
func (c *Clock) moveLocked(ctx context.Context, t time.Time) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return c.now, fmt.Errorf("test clock: %w", err)
	}
	if t.Equal(c.now) {
		return c.now, nil
	}
	if c.path != "" {
		if err := c.persist(t); err != nil {
			return c.now, err
		}
	}
	c.now = t
	return t, nil
}

// persist writes t to the clock's file whole: a temporary file, fsynced,
// renamed over the old one, and the directory fsynced.
func (c *Clock) persist(t time.Time) error {
	data, err := json.Marshal(record{Now: t})
	if err != nil {
		return fmt.Errorf("test clock: %w", err)
	}
	tmp := c.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("test clock: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err = errors.Join(err, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("test clock: write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return fmt.Errorf("test clock: %w", err)
	}
	if d, err := os.Open(filepath.Dir(c.path)); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("test clock: sync %s: %w", filepath.Dir(c.path), err)
		}
	}
	return nil
}
