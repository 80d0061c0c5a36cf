// Package vclock is a virtual clock for tests of code that waits (retries,
// outage policies, polls): Sleep returns at once and moves Now on, so that
// a test lives through a minute-long outage in microseconds.
//
// Sleeps of concurrent callers add up, so virtual time runs ahead of what
// real time would show; tests assert on what happened, not on durations.
package vclock

import (
	"context"
	"sync"
	"time"
)

// Clock is safe for concurrent use. Set OnSleep before the clock is shared.
type Clock struct {
	// OnSleep, if set, is called after each sleep with the new time,
	// outside the clock's lock: a test's server goes down or comes back
	// there.
	OnSleep func(now time.Time)

	mu      sync.Mutex
	now     time.Time
	elapsed time.Duration
}

// New returns a clock at a fixed time, so that logs do not vary by run.
func New() *Clock {
	return &Clock{now: time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)}
}

// Now is the virtual time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Sleep moves the clock d on, unless ctx has ended.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	c.now = c.now.Add(max(d, 0))
	c.elapsed += max(d, 0)
	now := c.now
	c.mu.Unlock()
	if c.OnSleep != nil {
		c.OnSleep(now)
	}
	return ctx.Err()
}

// Elapsed is the sum of every sleep so far.
func (c *Clock) Elapsed() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.elapsed
}
