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
		p.Sleep = sleepCtx
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

// Wait records a transient failure (err) of a call's attempt-th attempt
// (from 1) and waits before the next one: retryAfter if the provider asked
// for a wait, else a jittered backoff, cut short at the end of Max. It
// returns an *OutageError instead once the provider has been failing for
// Max, and ctx's error (naming err) if ctx ends first.
func (o *Outage) Wait(ctx context.Context, attempt int, retryAfter time.Duration, err error) error {
	now := o.p.Now()
	o.mu.Lock()
	if o.since.IsZero() {
		o.since = now
	}
	down := now.Sub(o.since)
	wait := retryAfter
	if wait <= 0 {
		wait = o.backoff(attempt)
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

func sleepCtx(ctx context.Context, d time.Duration) error {
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
