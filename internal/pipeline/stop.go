package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// A refusal (bad key, no access, quota exhausted) or an invalid request
// fails every call after it the same way: the first one met by any chat or
// training call stops the whole run, so that the provider is not asked
// hundreds of times more and the user reads the reason once.

// stopper is a run's stop on the first permanent error.
type stopper struct {
	mu     sync.Mutex
	first  error // the first permanent error, with its model and task
	cancel context.CancelCauseFunc
}

// stops reports whether err is one that stops the whole run. A model the
// provider lost (ErrNotFound) concerns that model only.
func stops(err error) bool {
	return errors.Is(err, provider.ErrRefused) || errors.Is(err, provider.ErrInvalid)
}

// stoppable returns ctx cancelled by the run's first permanent error, and
// the function that releases it.
func (r *run) stoppable(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	r.stop.mu.Lock()
	r.stop.cancel = cancel
	r.stop.mu.Unlock()
	return ctx, func() { cancel(nil) }
}

// check stops the run if err is permanent; err is returned as it is.
func (r *run) check(err error) error {
	if err == nil || !stops(err) {
		return err
	}
	r.stop.mu.Lock()
	defer r.stop.mu.Unlock()
	if r.stop.first == nil {
		r.stop.first = err
		if r.stop.cancel != nil {
			r.stop.cancel(err)
		}
	}
	return err
}

// stopped is the error that stopped the run, or nil.
func (r *run) stopped() error {
	r.stop.mu.Lock()
	defer r.stop.mu.Unlock()
	return r.stop.first
}

// finish is the error a command returns: once stopped, the permanent error
// once, with the errors that are not its echo (calls it cancelled, the same
// refusal met by other calls); otherwise err as it is.
func (r *run) finish(err error) error {
	first := r.stopped()
	if first == nil {
		return err
	}
	stop := fmt.Errorf("stopped the run at the first refusal, sending nothing more: %w", first)
	var kept []error
	for _, e := range flatten(err) {
		if !errors.Is(e, context.Canceled) && !stops(e) {
			kept = append(kept, e)
		}
	}
	return errors.Join(append([]error{stop}, kept...)...)
}

// flatten lists the errors of nested joins.
func flatten(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, flatten(e)...)
	}
	return out
}
