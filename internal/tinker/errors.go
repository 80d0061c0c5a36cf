package tinker

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotFound: the server does not know the model, path, session or
	// future (HTTP 404).
	ErrNotFound = errors.New("tinker: not found")
	// ErrPermanent marks failures that repeating the same request cannot
	// fix: bad input, auth, a future that failed with an error category.
	ErrPermanent = errors.New("tinker: permanent failure")
	// ErrMaybeCreated: a create request was sent but no definite answer
	// came back, so the resource may exist. Check (e.g. GetInfo on the
	// deterministic model id) before creating again.
	ErrMaybeCreated = errors.New("tinker: resource may have been created")
	// ErrBilling: the account is blocked for billing (HTTP 402) for longer
	// than the server's billing pause allows.
	ErrBilling = errors.New("tinker: billing blocked")
	// ErrSessionDead: the server no longer accepts the session's
	// heartbeats. Training runs and checkpoints survive; start a new
	// session and reload from the last tinker:// state path.
	ErrSessionDead = errors.New("tinker: session dead")
	// ErrPromiseExpired: retrieve_future answered 410 more often than the
	// client resubmits.
	ErrPromiseExpired = errors.New("tinker: request promise expired")
)

// APIError is a non-success HTTP answer. It never holds credentials: only
// the route, ids and the server's own message.
type APIError struct {
	Route     string // e.g. "/api/v1/optim_step"
	Status    int
	Message   string // the server's "detail" (or body text), truncated
	ModelID   string // when the request concerned a model
	RequestID string // the future's request id, when polling
}

func (e *APIError) Error() string {
	s := fmt.Sprintf("tinker %s: HTTP %d", e.Route, e.Status)
	if t := http.StatusText(e.Status); t != "" {
		s += " " + t
	}
	if e.ModelID != "" {
		s += " (model " + e.ModelID + ")"
	}
	if e.RequestID != "" {
		s += " (request " + e.RequestID + ")"
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether the status is one the SDK retries.
func (e *APIError) Temporary() bool { return retryableStatus(e.Status) }

// Is maps statuses onto the sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrBilling:
		return e.Status == http.StatusPaymentRequired
	case ErrPermanent:
		return !retryableStatus(e.Status) && e.Status != http.StatusPaymentRequired
	}
	return false
}

// retryableStatus: the statuses worth repeating. The SDK's outer layer also
// repeats 409, but a 409 means "already exists" (a checkpoint name, a
// model) and repeating cannot change that; the callers that care (save,
// create) interpret a 409 that follows an unanswered attempt instead.
func retryableStatus(s int) bool {
	return s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500
}

// RequestFailedError is a future that finished with
// {"error": ..., "category": ...}. It is final: the request is never
// retried.
type RequestFailedError struct {
	Route     string
	ModelID   string
	RequestID string
	Category  string // "user", "server" or "unknown"
	Message   string
}

func (e *RequestFailedError) Error() string {
	s := fmt.Sprintf("tinker %s: request %s failed (%s error)", e.Route, e.RequestID, e.Category)
	if e.ModelID != "" {
		s += " for model " + e.ModelID
	}
	return s + ": " + e.Message
}

// Is makes every failed request permanent.
func (e *RequestFailedError) Is(target error) bool { return target == ErrPermanent }

// transportError is a request that got no HTTP answer.
type transportError struct {
	route string
	err   error
}

func (e *transportError) Error() string   { return fmt.Sprintf("tinker %s: %v", e.route, e.err) }
func (e *transportError) Unwrap() error   { return e.err }
func (e *transportError) Temporary() bool { return true }

// Temporary reports whether err is a transient failure (network error,
// 408, 409, 429, 5xx) after which the same call may succeed later. It is
// false for nil, context errors, ErrPermanent, ErrMaybeCreated (re-creating
// blindly could duplicate) and ErrSessionDead.
func Temporary(err error) bool {
	if err == nil || errors.Is(err, ErrPermanent) || errors.Is(err, ErrMaybeCreated) || errors.Is(err, ErrSessionDead) {
		return false
	}
	var t interface{ Temporary() bool }
	if errors.As(err, &t) {
		return t.Temporary()
	}
	return errors.Is(err, ErrPromiseExpired)
}
