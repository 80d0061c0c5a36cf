package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"time"
)

// ErrUnreachable: the provider kept failing (refused connections, 5xx,
// timeouts) for longer than its outage policy waits. An *OutageError wraps it.
var ErrUnreachable = errors.New("provider unreachable")

// DefaultMaxOutage is how long a provider may fail without a break before
// calls give up: long enough to ride out a restart or a network blip, short
// enough that a dead endpoint ends an overnight run the same night.
const DefaultMaxOutage = 10 * time.Minute

// OutagePolicy is how calls to one provider ride out transient failures.
// Zero values take the defaults shown.
type OutagePolicy struct {
	// Max is how long the provider may fail continuously before calls give
	// up with an *OutageError; default DefaultMaxOutage.
	Max time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential wait between
	// attempts of one call; defaults 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration
	// ReportEvery is the gap between progress lines during an outage;
	// default 10s.
	ReportEvery time.Duration
	// Sleep waits d or until ctx ends; Now is the clock. Tests inject both
	// to live through a long outage in virtual time. Defaults: a timer and
	// time.Now.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
}

// Outage tracks one provider's failures across all its calls, chat and
// jobs alike, so that they share one notion of "down since" and one log.
// It is safe for concurrent use.
type Outage struct {
	name string
	p    OutagePolicy
	log  io.Writer

	mu       sync.Mutex
	since    time.Time // start of the current outage; zero when healthy
	lastSaid time.Time // when the last progress line was written
}

// NewOutage returns the tracker for provider name, logging to log (nil:
// nowhere).
func NewOutage(name string, p OutagePolicy, log io.Writer) *Outage {
	if p.Max <= 0 {
		p.Max = DefaultMaxOutage
	}
	if p.MinBackoff <= 0 {
		p.MinBackoff = 500 * time.Millisecond
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = 30 * time.Second
	}
	p.MinBackoff = min(p.MinBackoff, p.MaxBackoff)
	if p.ReportEvery <= 0 {
		p.ReportEvery = 10 * time.Second
	}
	if p.Sleep == nil {
		p.Sleep = Sleep
	}
	if p.Now == nil {
		p.Now = time.Now
	}
	if log == nil {
		log = io.Discard
	}
	return &Outage{name: name, p: p, log: log}
}

// Max is how long the provider may fail before calls give up.
func (o *Outage) Max() time.Duration { return o.p.Max }

// Now is the policy's clock.
func (o *Outage) Now() time.Time { return o.p.Now() }

// OK records that the provider answered: any outage is over.
func (o *Outage) OK() {
	o.mu.Lock()
	o.since = time.Time{}
	o.mu.Unlock()
}

// Call is one call's share of its provider's outage: the attempts of one
// request (or one loop of requests that must succeed together), counted
// from 1. Get one with Outage.Call before the first attempt. A Call is not
// safe for concurrent use; the Outage behind it is.
type Call struct {
	o       *Outage
	first   time.Time // this call's first failure; zero before it
	attempt int
}

// Call starts tracking one call's failures.
func (o *Outage) Call() *Call { return &Call{o: o} }

// Wait records a transient failure (err) of the call's latest attempt and
// waits before the next one: retryAfter if the provider asked for a wait,
// else a jittered backoff, cut short at the end of Max. It returns an
// *OutageError instead once either the provider (whatever other calls
// did meanwhile) or this call has been failing for Max: other calls'
// successes end the provider's outage but not this call's, so one request
// that keeps failing still gives up. It returns ctx's error (naming err)
// if ctx ends first.
func (c *Call) Wait(ctx context.Context, retryAfter time.Duration, err error) error {
	o := c.o
	now := o.p.Now()
	c.attempt++
	if c.first.IsZero() {
		c.first = now
	}
	o.mu.Lock()
	if o.since.IsZero() {
		o.since = now
	}
	down := max(now.Sub(o.since), now.Sub(c.first))
	wait := retryAfter
	if wait <= 0 {
		wait = o.backoff(c.attempt)
	}
	if down >= o.p.Max {
		o.mu.Unlock()
		return &OutageError{Provider: o.name, For: down, Max: o.p.Max, Err: err}
	}
	// The last wait is cut to the budget's end, for one last attempt.
	wait = min(wait, o.p.Max-down)
	// One line once the outage has lasted a second (a lone 429 is not
	// news), then one every ReportEvery, however many calls are waiting.
	if down >= min(time.Second, o.p.ReportEvery) && now.Sub(o.lastSaid) >= o.p.ReportEvery {
		o.lastSaid = now
		fmt.Fprintf(o.log, "provider %s: unreachable for %s (%s); retrying for up to %s\n",
			o.name, down.Round(time.Second), short(err), o.p.Max)
	}
	o.mu.Unlock()
	if serr := o.p.Sleep(ctx, wait); serr != nil {
		return fmt.Errorf("%w while waiting to retry after: %v", serr, err)
	}
	return nil
}

// OK records that the call's latest attempt got an answer: the provider's
// outage and this call's are over. A call that loops past answers (polling
// a result that is not ready) counts its failures afresh from here.
func (c *Call) OK() {
	c.first, c.attempt = time.Time{}, 0
	c.o.OK()
}

// Sleep waits d or until ctx ends, on the policy's clock.
func (o *Outage) Sleep(ctx context.Context, d time.Duration) error { return o.p.Sleep(ctx, d) }

// backoff is exponential with full jitter: uniform in
// [0, min(MaxBackoff, MinBackoff*2^(attempt-1))], so that many calls failing
// together do not retry in step.
func (o *Outage) backoff(attempt int) time.Duration {
	ceil := o.p.MaxBackoff
	if shift := attempt - 1; shift >= 0 && shift < 31 {
		if c := o.p.MinBackoff << shift; c > 0 && c < ceil {
			ceil = c
		}
	}
	if ceil <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}

// short is the innermost cause of err, which says what is wrong ("connection
// refused", "HTTP 503 ...") without the layers of context above it.
func short(err error) string {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			break
		}
		err = next
	}
	return err.Error()
}

// OutageError says that a provider failed without a break for longer than
// its policy's maximum; Err is the last failure.
type OutageError struct {
	Provider string
	For, Max time.Duration
	Err      error
}

func (e *OutageError) Error() string {
	return fmt.Sprintf("provider %s was unreachable for %s (max_outage %s); giving up: %v",
		e.Provider, e.For.Round(time.Second), e.Max, e.Err)
}

// Unwrap exposes ErrUnreachable and the last failure.
func (e *OutageError) Unwrap() []error { return []error{ErrUnreachable, e.Err} }

// Sleep waits d or until ctx ends, in wall time, and returns ctx's error
// if it ended first (or had ended already).
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
