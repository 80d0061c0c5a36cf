package server

import (
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/faults"
)

// Faults make the server misbehave on purpose, so that clients' retry and
// recovery paths can be tested against it. The zero value injects nothing.
//
// Each /v1 request draws one number from a generator seeded with Seed, in
// order of arrival, and that number picks at most one of the rate faults:
// the same sequence of requests meets the same faults.
type Faults struct {
	Seed uint64
	// RateLimitRate is the fraction of requests refused with 429
	// rate_limit_exceeded, asking to retry after RetryAfter (default 1s).
	RateLimitRate float64
	RetryAfter    time.Duration
	// ServerErrorRate is the fraction answered 500 server_error, before any
	// work is done.
	ServerErrorRate float64
	// DropRate is the fraction whose connection is closed without an answer,
	// before any work is done.
	DropRate float64
	// LostResponseRate is the fraction served in full whose answer is then
	// lost with the connection: a job is created, say, but the client cannot
	// know. This is what a client's "list before creating again" is for.
	LostResponseRate float64
	// Latency is the least time every answer takes. A chat completion
	// is computed within it, as a provider's is; any other request waits
	// it out before it takes effect, so that a client that gives up
	// first leaves nothing done.
	Latency time.Duration
	// FailJobs makes jobs fail: a job created while a rule matches runs as
	// usual, then ends failed with the rule's error instead of succeeding.
	// The first matching rule applies.
	FailJobs []JobFailure
}

// JobFailure is a rule for Faults.FailJobs.
type JobFailure struct {
	Suffix  *regexp.Regexp // matches the job's suffix; nil matches every job
	Code    string         // job.error.code, e.g. "server_error"
	Message string         // job.error.message
	Param   string         // job.error.param; may be empty
}

// Validate reports rates outside [0, 1] or summing above 1, negative
// durations, and failure rules without a message.
func (f Faults) Validate() error {
	errs := f.rates().Check("fault")
	if f.RetryAfter < 0 || f.Latency < 0 {
		errs = append(errs, fmt.Errorf("negative retry-after %s or latency %s", f.RetryAfter, f.Latency))
	}
	for i, j := range f.FailJobs {
		if j.Message == "" {
			errs = append(errs, fmt.Errorf("job failure rule %d has no message", i))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid faults: %w", err)
	}
	return nil
}

func (f Faults) rates() faults.HTTP {
	return faults.HTTP{RateLimit: f.RateLimitRate, ServerError: f.ServerErrorRate, Drop: f.DropRate, Lost: f.LostResponseRate}
}

// SetFaults replaces the faults injected from now on and restarts their
// sequence from f.Seed. Jobs already created keep their fate.
func (s *Server) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if f.RetryAfter == 0 {
		f.RetryAfter = time.Second
	}
	f.FailJobs = append([]JobFailure(nil), f.FailJobs...)
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.f = f
	s.faults.dice = faults.NewDice(f.Seed)
	return nil
}

type faultState struct {
	mu   sync.Mutex
	f    Faults
	dice *faults.Dice
}

type fault struct {
	kind       faults.Kind
	latency    time.Duration
	retryAfter time.Duration
}

// drawFault decides the fate of one request. Latency alone draws nothing,
// so enabling it does not shift the sequence.
func (s *Server) drawFault() fault {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	f := s.faults.f
	return fault{kind: s.faults.dice.Draw(f.rates()), latency: f.Latency, retryAfter: f.RetryAfter}
}

// jobFailure returns the injected failure for a new job with this suffix.
func (s *Server) jobFailure(suffix string) (JobFailure, bool) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	for _, j := range s.faults.f.FailJobs {
		if j.Suffix == nil || j.Suffix.MatchString(suffix) {
			return j, true
		}
	}
	return JobFailure{}, false
}
