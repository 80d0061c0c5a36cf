package tinkerserver

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/faults"
	"github.com/modelorganisms/pvbuild/internal/httpserve"
)

// Faults make the server misbehave on purpose, so that a client's retry and
// recovery paths can be tested. The zero value injects nothing.
//
// Every /api/v1 and /oai request draws one number from a generator seeded
// with Seed, in arrival order, which picks at most one HTTP fault; every
// retrieve_future of a finished request draws once more for the future
// faults. The same sequence of requests meets the same faults.
type Faults struct {
	Seed uint64
	// Pending408 is how many times each future answers 408 (a try_again
	// dressed as an HTTP error, with queue_state paused_capacity) before
	// anything else.
	Pending408 int
	// MetadataFirst makes each future's first poll that allows it answer
	// complete_metadata, so the client must poll again for the payload.
	MetadataFirst bool
	// TryAgainRate is the fraction of polls of a finished future answered
	// try_again anyway.
	TryAgainRate float64
	// GoneRate is the fraction of polls answered 410: the promise is
	// dropped and the client must resubmit the original request.
	GoneRate float64
	// RateLimitRate is the fraction of requests refused with 429 and
	// Retry-After (RetryAfter, default 1 s), before any work.
	RateLimitRate float64
	RetryAfter    time.Duration
	// ServerErrorRate is the fraction answered 500 before any work.
	ServerErrorRate float64
	// DropRate is the fraction whose connection is closed unanswered,
	// before any work.
	DropRate float64
	// LostResponseRate is the fraction served in full whose answer is then
	// lost with the connection.
	LostResponseRate float64
}

// Validate reports rates outside [0, 1], HTTP rates or future rates summing
// above 1, and negative counts or durations.
func (f Faults) Validate() error {
	errs := faults.HTTP{RateLimit: f.RateLimitRate, ServerError: f.ServerErrorRate, Drop: f.DropRate, Lost: f.LostResponseRate}.Check("HTTP fault")
	errs = append(errs, faults.Check("future fault", faults.Rate{Name: "try-again rate", Value: f.TryAgainRate}, faults.Rate{Name: "410 rate", Value: f.GoneRate})...)
	if f.Pending408 < 0 || f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("negative pending-408 count %d or retry-after %s", f.Pending408, f.RetryAfter))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid faults: %w", err)
	}
	return nil
}

type faultState struct {
	mu   sync.Mutex
	f    Faults
	dice *faults.Dice
}

// SetFaults replaces the faults injected from now on and restarts their
// sequence from f.Seed.
func (s *Server) SetFaults(f Faults) error {
	if err := f.Validate(); err != nil {
		return err
	}
	if f.RetryAfter == 0 {
		f.RetryAfter = time.Second
	}
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	s.faults.f = f
	s.faults.dice = faults.NewDice(f.Seed)
	return nil
}

func (s *Server) currentFaults() (Faults, *faults.Dice) {
	s.faults.mu.Lock()
	defer s.faults.mu.Unlock()
	return s.faults.f, s.faults.dice
}

// injectHTTPFault answers r with a drawn fault and reports whether the
// request is still to be served (false also for a lost response, which
// is served here and then cut off), counting what it did in w.
func (s *Server) injectHTTPFault(w *httpserve.Recorder, r *http.Request) bool {
	f, dice := s.currentFaults()
	switch dice.Draw(faults.HTTP{RateLimit: f.RateLimitRate, ServerError: f.ServerErrorRate, Drop: f.DropRate, Lost: f.LostResponseRate}) {
	case faults.RateLimit:
		s.count.injected429.Add(1)
		faults.SetRetryAfter(w.Header(), f.RetryAfter)
		writeJSON(w, http.StatusTooManyRequests, map[string]string{"detail": "Rate limit exceeded (injected fault)"})
		return false
	case faults.ServerError:
		s.count.injected500.Add(1)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"detail": "Internal server error (injected fault)"})
		return false
	case faults.Drop:
		s.count.injectedDrops.Add(1)
		w.Count(httpserve.Dropped)
		httpserve.Drop(w, r, maxProtoBytes)
		return false
	case faults.Lost:
		s.count.injectedLost.Add(1)
		// The request takes full effect; only its answer is lost.
		lost := &httpserve.Recorder{ResponseWriter: httpserve.Discard()}
		s.dispatch(lost, r)
		w.Count(httpserve.Lost + lost.Outcome())
		httpserve.Drop(w, r, maxProtoBytes)
		return false
	}
	return true
}
