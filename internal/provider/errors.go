package provider

import (
	"errors"
	"time"
)

// Sentinels a provider's errors wrap, so that callers can decide what to do
// without knowing which provider answered. Test them with errors.Is.
var (
	// ErrNotFound: the provider does not know the model, job, file or run
	// (never existed, deleted, or its base model was shut down).
	ErrNotFound = errors.New("not found")
	// ErrInvalid: the request itself is wrong; sending it again cannot help.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the request contradicts the object's state, such as
	// cancelling a job that has finished.
	ErrConflict = errors.New("conflict")
	// ErrRefused: the provider will not do it for this account: bad key, no
	// access, quota exhausted, fine-tuning closed. Not retried.
	ErrRefused = errors.New("refused")
	// ErrMaybeCreated: creating something failed after the request may have
	// reached the provider (dropped connection, timeout, 5xx). It may exist:
	// look it up by its key before creating it again.
	ErrMaybeCreated = errors.New("may have been created")
	// ErrNoRetry: the call got no answer, in a way that sending it again
	// cannot cure: a certificate the client rejects, a host name that does
	// not exist, a URL it cannot send to, a response over its size limit.
	// The transport that says so has not retried it; neither should its
	// callers.
	ErrNoRetry = errors.New("not retryable")
)

// Permanent reports whether an error is one that calling again cannot cure.
// Anything else (an outage, a timeout, a rate limit that outlasted the
// retries) may pass, and a long wait on a job rides it out.
func Permanent(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) ||
		errors.Is(err, ErrConflict) || errors.Is(err, ErrRefused) || errors.Is(err, ErrNoRetry)
}

// RetryAfter is the wait the provider asked for before err's call is sent
// again, if an error in err's chain says one (has a RetryDelay method);
// else 0.
func RetryAfter(err error) time.Duration {
	var ra interface{ RetryDelay() time.Duration }
	if errors.As(err, &ra) {
		return ra.RetryDelay()
	}
	return 0
}

// ParamError says which field of a request is at fault ("model",
// "training_file"), so that a server in front of a provider can answer as
// the API it speaks would. Err says what is wrong with it.
type ParamError struct {
	Param string
	Err   error
}

func (e *ParamError) Error() string { return e.Err.Error() }
func (e *ParamError) Unwrap() error { return e.Err }
