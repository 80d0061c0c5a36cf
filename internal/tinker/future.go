package tinker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	routeRetrieve  = "/api/v1/retrieve_future"
	pollTimeout    = 45 * time.Second
	maxBadRequests = 3
	protoType      = "application/x-protobuf"
)

// untypedFuture is what every mutating route answers.
type untypedFuture struct {
	RequestID string `json:"request_id"`
	ModelID   string `json:"model_id,omitempty"`
	// Newer SDKs (0.26+): one id per requested sample.
	SampleSequenceIDs []string `json:"sample_sequence_ids,omitempty"`
}

// errGone: retrieve_future answered 410; the original request must be
// sent again.
type errGone struct{ *APIError }

func (e errGone) Unwrap() error { return e.APIError }

// submitFunc sends (or re-sends) the original request and returns its
// future's request id.
type submitFunc func(ctx context.Context) (string, error)

// Future is a submitted request whose result is fetched with
// retrieve_future.
type Future[T any] struct {
	c         *Client
	route     string // the submitting route, for errors
	modelID   string
	reqType   string // X-Tinker-Request-Type
	wantProto bool
	requestID string
	submitted time.Time
	roundtrip time.Duration
	resubmit  submitFunc
	decode    func([]byte) (T, error)
}

// RequestID is the server's id of the current submission.
func (f *Future[T]) RequestID() string { return f.requestID }

func newFuture[T any](ctx context.Context, c *Client, route, modelID, reqType string, wantProto bool, submit submitFunc, decode func([]byte) (T, error)) (*Future[T], error) {
	start := c.now()
	id, err := submit(ctx)
	if err != nil {
		return nil, err
	}
	return &Future[T]{c: c, route: route, modelID: modelID, reqType: reqType, wantProto: wantProto,
		requestID: id, submitted: c.now(), roundtrip: c.now().Sub(start), resubmit: submit, decode: decode}, nil
}

// Wait polls until the result is there. Outcomes, as the SDK handles them:
// try_again and 408 poll again at once (reporting the queue state); a
// metadata-only answer re-polls asking for the payload; 429, 5xx and network
// errors wait as the provider's outage policy says (Retry-After honoured;
// the SDK re-polls 5xx at once, we back off to avoid a hot loop) and give
// up past its maximum;
// a bare 400 is retried 3 times; 402 is a billing pause (5 s steps up to
// the server's limit, then ErrBilling); 410 re-sends the original request
// (same seq_id for training requests) up to MaxResubmits times; a result
// with "error" fails at once with the server's message and category
// (ErrPermanent); any other status fails.
func (f *Future[T]) Wait(ctx context.Context) (T, error) {
	var zero T
	for resubmits := 0; ; resubmits++ {
		body, err := f.poll(ctx)
		var gone errGone
		if errors.As(err, &gone) {
			if resubmits >= f.c.opts.MaxResubmits {
				return zero, fmt.Errorf("%w: %s after %d resubmissions: %w", ErrPromiseExpired, f.route, resubmits, gone.APIError)
			}
			f.c.log.Warn("tinker: request promise expired (HTTP 410); resubmitting the original request", "route", f.route, "model", f.modelID, "request", f.requestID)
			start := f.c.now()
			id, err := f.resubmit(ctx)
			if err != nil {
				return zero, fmt.Errorf("resubmitting after 410: %w", err)
			}
			f.requestID, f.submitted, f.roundtrip = id, f.c.now(), f.c.now().Sub(start)
			continue
		}
		if err != nil {
			return zero, err
		}
		v, err := f.decode(body)
		if err != nil {
			return zero, fmt.Errorf("tinker %s: result of request %s (model %s): %w", f.route, f.requestID, f.modelID, err)
		}
		return v, nil
	}
}

// pollAnswer is the union of retrieve_future's JSON answers.
type pollAnswer struct {
	Type                string          `json:"type"`
	QueueState          string          `json:"queue_state"`
	QueueStateReason    string          `json:"queue_state_reason"`
	Status              string          `json:"status"`
	ResponsePayloadSize int64           `json:"response_payload_size"`
	Error               json.RawMessage `json:"error"`
	Category            string          `json:"category"`
}

// errorText is the "error" member as text, whatever JSON it is.
func (a pollAnswer) errorText() (string, bool) {
	if len(a.Error) == 0 || string(a.Error) == "null" {
		return "", false
	}
	var s string
	if json.Unmarshal(a.Error, &s) == nil {
		return s, true
	}
	return string(a.Error), true
}

func (f *Future[T]) queueState(state, reason string) {
	switch state {
	case "active", "paused_capacity", "paused_rate_limit":
	default:
		state = "unknown"
	}
	if f.c.opts.OnQueueState != nil {
		f.c.opts.OnQueueState(f.requestID, state, reason)
	}
	if state != "active" {
		f.c.log.Info("tinker: request queued", "route", f.route, "model", f.modelID, "request", f.requestID, "queue_state", state, "reason", reason)
	}
}

// poll runs retrieve_future until a final answer: the result body, an
// errGone, or a failure.
func (f *Future[T]) poll(ctx context.Context) ([]byte, error) {
	c := f.c
	allowMeta := true
	badRequests := 0
	call := c.opts.Outage.Call()
	var billingSince time.Time
	for iter := 0; ; iter++ {
		ri := reqInfo{modelID: f.modelID, requestID: f.requestID, headers: map[string]string{
			"X-Tinker-Request-Iteration": strconv.Itoa(iter),
			"X-Tinker-Request-Type":      f.reqType,
		}}
		if iter == 0 {
			ri.headers["X-Tinker-Create-Promise-Roundtrip-Time"] = strconv.FormatFloat(f.roundtrip.Seconds(), 'f', -1, 64)
		}
		if f.wantProto {
			ri.accept = protoType
		}
		body, _ := json.Marshal(map[string]any{"request_id": f.requestID, "allow_metadata_only": allowMeta})
		r, err := c.send(ctx, http.MethodPost, routeRetrieve, "application/json", body, "", ri, pollTimeout)
		if err == nil && r.status != http.StatusTooManyRequests && r.status < 500 {
			// It answered: up, whatever it said; this poll's failures
			// count afresh.
			call.OK()
		}
		var delay time.Duration
		switch {
		case err != nil:
			var te *transportError
			if !errors.As(err, &te) {
				return nil, err
			}
			if ctx.Err() != nil {
				return nil, fmt.Errorf("tinker %s: waiting for request %s: %w", f.route, f.requestID, ctx.Err())
			}
			if werr := call.Wait(ctx, 0, err); werr != nil {
				return nil, fmt.Errorf("tinker %s: waiting for request %s: %w", f.route, f.requestID, werr)
			}
			continue
		case r.status == http.StatusOK:
			if strings.Contains(r.header.Get("Content-Type"), protoType) {
				if !f.wantProto {
					return nil, fmt.Errorf("tinker %s: request %s answered protobuf for a JSON result", f.route, f.requestID)
				}
				return r.body, nil
			}
			var a pollAnswer
			if err := json.Unmarshal(r.body, &a); err != nil {
				return nil, fmt.Errorf("tinker %s: request %s: undecodable poll answer: %w", f.route, f.requestID, err)
			}
			switch {
			case a.Type == "try_again":
				f.queueState(a.QueueState, a.QueueStateReason)
				continue
			case a.Status == "complete_metadata":
				if !allowMeta {
					return nil, fmt.Errorf("tinker %s: request %s: metadata-only answer to a payload request", f.route, f.requestID)
				}
				allowMeta = false
				continue
			case a.Error != nil && string(a.Error) != "null":
				msg, _ := a.errorText()
				cat := a.Category
				switch cat {
				case "user", "server", "unknown":
				default:
					cat = "unknown"
				}
				return nil, &RequestFailedError{Route: f.route, ModelID: f.modelID, RequestID: f.requestID, Category: cat, Message: truncate(msg)}
			}
			if f.wantProto {
				// 0.25.0 refuses JSON for these results too.
				return nil, fmt.Errorf("tinker %s: request %s: server answered JSON, not protobuf, for a %s result", f.route, f.requestID, f.reqType)
			}
			return r.body, nil
		case r.status == http.StatusRequestTimeout:
			// A try_again dressed as an HTTP error.
			var a pollAnswer
			if json.Unmarshal(r.body, &a) == nil && a.QueueState != "" {
				f.queueState(a.QueueState, a.QueueStateReason)
			}
			badRequests = 0
			continue
		case r.status == http.StatusGone:
			return nil, errGone{c.apiError(f.route, r, ri)}
		case r.status == http.StatusPaymentRequired:
			now := c.now()
			if billingSince.IsZero() {
				billingSince = now
			}
			limit := time.Duration(c.Config().BillingExceptionMaxPauseSeconds) * time.Second
			if now.Sub(billingSince) >= limit {
				return nil, fmt.Errorf("billing blocked for %s: %w", limit, c.apiError(f.route, r, ri))
			}
			c.log.Warn("tinker: account blocked for billing (HTTP 402); waiting", "route", f.route, "model", f.modelID, "request", f.requestID, "since", billingSince, "gives_up_after", limit)
			delay = billingRetryEvery
		case r.status == http.StatusTooManyRequests || r.status >= 500:
			wait, _ := c.retryDelay(r.header)
			if werr := call.Wait(ctx, wait, c.apiError(f.route, r, ri)); werr != nil {
				return nil, fmt.Errorf("tinker %s: waiting for request %s: %w", f.route, f.requestID, werr)
			}
			continue
		case r.status == http.StatusBadRequest && badRequests < maxBadRequests:
			// Possibly a spurious proxy 400.
			badRequests++
			continue
		default:
			return nil, c.apiError(f.route, r, ri)
		}
		if err := c.sleep(ctx, delay); err != nil {
			return nil, fmt.Errorf("tinker %s: waiting for request %s: %w", f.route, f.requestID, err)
		}
	}
}

// submitJSON posts a JSON request that answers with a future.
func (c *Client) submitJSON(route string, body any, ri reqInfo, onAmbiguous *bool) submitFunc {
	return func(ctx context.Context) (string, error) {
		var fut untypedFuture
		amb, err := c.postJSONAmbiguous(ctx, route, body, &fut, ri)
		if amb && onAmbiguous != nil {
			*onAmbiguous = true
		}
		if err != nil {
			return "", err
		}
		if fut.RequestID == "" {
			return "", fmt.Errorf("tinker %s: answer has no request_id", route)
		}
		return fut.RequestID, nil
	}
}

func decodeJSON[T any](b []byte) (T, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

func jsonBody(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("tinker: encode request: %w", err)
	}
	return b, nil
}
