package presence

import (
	"sync"
	"time"
)

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// TestClock is a clock that moves only when told to, for deterministic tests
// and for emulating hours of presence in milliseconds.
type TestClock struct {
	mu  sync.Mutex
	now time.Time
}

// NewTestClock returns a TestClock stopped at start.
func NewTestClock(start time.Time) *TestClock {
	return &TestClock{now: start.UTC()}
}

// Now returns the clock's current instant.
func (c *TestClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d (a negative d is ignored) and returns
// the new instant.
func (c *TestClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	return c.now
}
