package tinker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

const (
	// DefaultBaseURL is the production service (TINKER_BASE_URL overrides
	// it in the SDK; here the caller decides).
	DefaultBaseURL = "https://tinker.thinkingmachines.dev/services/tinker-prod"
	// SDKVersion is the Python SDK whose wire behaviour this client
	// implements; the server resolves feature flags per sdk_version.
	SDKVersion = "0.25.0"

	defaultRetryBudget = 300 * time.Second
	maxBackoff         = 30 * time.Second
	maxRetryAfter      = 60 * time.Second
	billingRetryEvery  = 5 * time.Second
	maxProxy400        = 16
	maxBody            = 1 << 30
)

// Options configure a Client. Only APIKey is required.
type Options struct {
	APIKey  string
	BaseURL string // default DefaultBaseURL; its path is kept
	// HTTPClient defaults to a client without an overall timeout (polls
	// have their own 45 s deadline).
	HTTPClient *http.Client
	// Sleep waits d or until ctx ends; tests inject one that returns at
	// once. Default: a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// HeartbeatSleep is the wait between heartbeats; default a timer. It is
	// apart from Sleep so that a test's instant backoffs do not make the
	// heartbeat spin.
	HeartbeatSleep func(ctx context.Context, d time.Duration) error
	// Now is the clock for retry budgets, billing pauses and heartbeat
	// staleness. Default time.Now.
	Now func() time.Time
	// Jitter returns a number in [0,1) that scales computed backoffs into
	// (0.75, 1]; default math/rand.
	Jitter func() float64
	Logger *slog.Logger // default: discard
	// RetryBudget bounds how long calls are retried (SDK: 300 s) when
	// Outage is unset: it is the Max of the client's own outage policy.
	RetryBudget time.Duration
	// Outage is the provider's one outage policy for network errors and
	// 429/5xx, of submissions and polls alike, shared with every other
	// call to it: it waits while the provider (and the call) has been
	// failing for less than its maximum and says so in the log. Default:
	// one of the client's own, with Max RetryBudget on Sleep and Now.
	Outage *provider.Outage
	// MaxResubmits bounds re-sending a request whose future answered 410.
	MaxResubmits int // default 3
	// OnQueueState is told the queue state of pending futures
	// ("active", "paused_capacity", "paused_rate_limit", "unknown").
	OnQueueState func(requestID, state, reason string)
	// Session creation extras.
	ProjectID string
	Tags      []string
}

// ClientConfig is the server's /client/config answer (feature flags and
// limits); zero fields are replaced by the SDK defaults.
type ClientConfig struct {
	PJWTAuthEnabled                 bool `json:"pjwt_auth_enabled"`
	ProtoCompressFwdbwd             bool `json:"proto_compress_fwdbwd"`
	FwdbwdMaxChunkLen               int  `json:"fwdbwd_max_chunk_len"`
	FwdbwdMaxChunkBytesCount        int  `json:"fwdbwd_max_chunk_bytes_count"`
	BillingExceptionMaxPauseSeconds int  `json:"billing_exception_max_pause_duration_sec"`
	CreateModelViaLoadWeights       bool `json:"create_model_via_load_weights"`
	SampleMaxConcurrentRequests     int  `json:"sample_max_concurrent_requests"`
}

func (c *ClientConfig) fill() {
	if c.FwdbwdMaxChunkLen <= 0 {
		c.FwdbwdMaxChunkLen = 1024
	}
	if c.FwdbwdMaxChunkBytesCount <= 0 {
		c.FwdbwdMaxChunkBytesCount = 5_000_000
	}
	if c.BillingExceptionMaxPauseSeconds <= 0 {
		c.BillingExceptionMaxPauseSeconds = 3600
	}
	if c.SampleMaxConcurrentRequests <= 0 {
		c.SampleMaxConcurrentRequests = 2000
	}
}

// credStore holds the credentials behind a pointer: fmt prints a nested
// pointer as an address, so %v / %+v / %#v of a Client never show them.
type credStore struct {
	apiKey string
	jwt    string
	jwtExp time.Time
}

// Client talks to one Tinker deployment. It is safe for concurrent use.
type Client struct {
	base   string // with trailing slash
	hc     *http.Client
	sleep  func(context.Context, time.Duration) error
	beat   func(context.Context, time.Duration) error // the heartbeat's own wait
	now    func() time.Time
	jitter func() float64
	log    *slog.Logger
	opts   Options

	mu    sync.Mutex // guards cfg and creds' JWT
	cfg   ClientConfig
	creds *credStore
}

// New checks the options and returns a client; it sends nothing.
func New(o Options) (*Client, error) {
	if o.APIKey == "" {
		return nil, errors.New("tinker: no API key")
	}
	if !strings.HasPrefix(o.APIKey, "tml-") && !strings.HasPrefix(o.APIKey, "eyJ") {
		// The SDK refuses other keys before sending them anywhere.
		return nil, errors.New(`tinker: API key must start with "tml-"`)
	}
	c := &Client{
		base:   strings.TrimRight(o.BaseURL, "/") + "/",
		hc:     o.HTTPClient,
		sleep:  o.Sleep,
		beat:   o.HeartbeatSleep,
		now:    o.Now,
		jitter: o.Jitter,
		log:    o.Logger,
		opts:   o,
		creds:  &credStore{apiKey: o.APIKey},
	}
	if o.BaseURL == "" {
		c.base = DefaultBaseURL + "/"
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.beat == nil {
		c.beat = provider.Sleep
	}
	if c.sleep == nil {
		c.sleep = provider.Sleep
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.jitter == nil {
		c.jitter = mrand.Float64
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.opts.RetryBudget <= 0 {
		c.opts.RetryBudget = defaultRetryBudget
	}
	if c.opts.Outage == nil {
		c.opts.Outage = provider.NewOutage("tinker", provider.OutagePolicy{
			Max: c.opts.RetryBudget, MinBackoff: time.Second, MaxBackoff: maxBackoff, Sleep: c.sleep, Now: c.now}, nil)
	}
	if c.opts.MaxResubmits <= 0 {
		c.opts.MaxResubmits = 3
	}
	c.opts.APIKey = "" // the only copy is the redacted field
	c.cfg.fill()
	return c, nil
}

// BaseURL is the deployment's base URL (no trailing slash).
func (c *Client) BaseURL() string { return strings.TrimSuffix(c.base, "/") }

// OpenAIBaseURL is the OpenAI-compatible endpoint (beta) of this
// deployment: /chat/completions and /completions accept a base-model id or
// a tinker://<run>/sampler_weights/<name> path as "model", with the Tinker
// API key as the bearer token.
func (c *Client) OpenAIBaseURL() string { return c.BaseURL() + "/oai/api/v1" }

// Config is the server configuration last fetched by Start (or defaults).
func (c *Client) Config() ClientConfig {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// FetchConfig asks /client/config for the flags of our SDK version and,
// when JWT auth is on, exchanges the API key for a JWT.
func (c *Client) FetchConfig(ctx context.Context) (ClientConfig, error) {
	var cfg ClientConfig
	err := c.postJSON(ctx, "/api/v1/client/config", map[string]any{"sdk_version": SDKVersion}, &cfg, reqInfo{})
	if err != nil {
		return ClientConfig{}, err
	}
	cfg.fill()
	c.mu.Lock()
	c.cfg = cfg
	c.mu.Unlock()
	if cfg.PJWTAuthEnabled {
		if err := c.refreshJWT(ctx); err != nil {
			return ClientConfig{}, err
		}
	}
	return cfg, nil
}

// refreshJWT exchanges the API key for a JWT (POST /api/v1/auth/token).
func (c *Client) refreshJWT(ctx context.Context) error {
	var out struct {
		JWT string `json:"jwt"`
	}
	if err := c.postJSON(ctx, "/api/v1/auth/token", map[string]any{}, &out, reqInfo{useAPIKey: true}); err != nil {
		return err
	}
	if out.JWT == "" {
		return errors.New("tinker /api/v1/auth/token: empty jwt")
	}
	exp := jwtExpiry(out.JWT)
	c.mu.Lock()
	c.creds.jwt, c.creds.jwtExp = out.JWT, exp
	c.mu.Unlock()
	return nil
}

// jwtExpiry reads the unverified exp claim; zero if absent.
func jwtExpiry(tok string) time.Time {
	parts := strings.Split(tok, ".")
	if len(parts) < 2 {
		return time.Time{}
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if json.Unmarshal(raw, &claims) != nil || claims.Exp <= 0 {
		return time.Time{}
	}
	return time.Unix(int64(claims.Exp), 0)
}

// credential is what goes into X-API-Key: the JWT once JWT auth is on
// (refreshed on demand when 60 s or less remain), else the API key.
func (c *Client) credential(ctx context.Context, useAPIKey bool) (string, error) {
	c.mu.Lock()
	key, jwtOn, jwt, exp := c.creds.apiKey, c.cfg.PJWTAuthEnabled, c.creds.jwt, c.creds.jwtExp
	c.mu.Unlock()
	if useAPIKey || !jwtOn {
		return key, nil
	}
	if jwt == "" || (!exp.IsZero() && exp.Sub(c.now()) <= 60*time.Second) {
		if err := c.refreshJWT(ctx); err != nil {
			return "", err
		}
		c.mu.Lock()
		jwt = c.creds.jwt
		c.mu.Unlock()
	}
	return jwt, nil
}

// reqInfo names what a request concerns, for errors and headers.
type reqInfo struct {
	modelID   string
	requestID string
	useAPIKey bool
	headers   map[string]string
	accept    string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// send makes one HTTP attempt. A missing answer is a *transportError.
func (c *Client) send(ctx context.Context, method, route, contentType string, body []byte, idem string, ri reqInfo, timeout time.Duration) (*response, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+strings.TrimPrefix(route, "/"), rd)
	if err != nil {
		return nil, fmt.Errorf("tinker %s: %w", route, err)
	}
	// Retries are ours alone: without GetBody net/http cannot silently
	// replay a POST on a dropped connection, which would hide that the
	// server may already have acted (the ambiguity ErrMaybeCreated reports).
	req.GetBody = nil
	cred, err := c.credential(ctx, ri.useAPIKey)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-Key", cred)
	req.Header.Set("User-Agent", "pvbuild-tinker-go (wire "+SDKVersion+")")
	req.Header.Set("Accept", "application/json")
	if ri.accept != "" {
		req.Header.Set("Accept", ri.accept)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if idem != "" {
		req.Header.Set("X-Idempotency-Key", idem)
	}
	for k, v := range ri.headers {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil && timeout == 0 {
			return nil, fmt.Errorf("tinker %s: %w", route, ctx.Err())
		}
		return nil, &transportError{route: route, err: scrub(err)}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, &transportError{route: route, err: scrub(err)}
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// scrub drops the URL that *url.Error repeats, keeping errors short; the
// caller names the route. (Credentials are never in the URL.)
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

func (c *Client) apiError(route string, r *response, ri reqInfo) *APIError {
	return &APIError{Route: route, Status: r.status, Message: serverMessage(r.body), ModelID: ri.modelID, RequestID: ri.requestID}
}

// serverMessage extracts FastAPI's {"detail": ...} or a short body.
func serverMessage(b []byte) string {
	var d struct {
		Detail any `json:"detail"`
	}
	if json.Unmarshal(b, &d) == nil && d.Detail != nil {
		if s, ok := d.Detail.(string); ok {
			return truncate(s)
		}
		j, _ := json.Marshal(d.Detail)
		return truncate(string(j))
	}
	return truncate(strings.TrimSpace(string(b)))
}

func truncate(s string) string {
	if len(s) > 500 {
		return s[:500] + "…"
	}
	return s
}

// retryDelay is the server's Retry-After-Ms or Retry-After (seconds or an
// HTTP date) when 0 < d <= 60 s, as the SDK honours it.
func (c *Client) retryDelay(h http.Header) (time.Duration, bool) {
	var d time.Duration
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil {
			d = time.Duration(ms * float64(time.Millisecond))
		}
	} else if v := h.Get("Retry-After"); v != "" {
		if s, err := strconv.ParseFloat(v, 64); err == nil {
			d = time.Duration(s * float64(time.Second))
		} else if t, err := http.ParseTime(v); err == nil {
			d = t.Sub(c.now())
		}
	}
	if d > 0 && d <= maxRetryAfter {
		return d, true
	}
	return 0, false
}

// backoff is min(2^n s, 30 s) scaled by a jitter factor in (0.75, 1].
func (c *Client) backoff(n int) time.Duration {
	d := maxBackoff
	if n < 5 {
		d = time.Duration(1<<n) * time.Second
	}
	return time.Duration(float64(d) * (1 - 0.25*c.jitter()))
}

func newIdempotencyKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "tinker-go-" + hex.EncodeToString(b[:])
}

// errConflictAfterRetry is a 409 that answered a repeat of a request whose
// earlier attempt got no definite answer: the earlier attempt most likely
// succeeded.
type errConflictAfterRetry struct{ *APIError }

func (e errConflictAfterRetry) Unwrap() error { return e.APIError }

// do sends a request with the SDK's outer retry rules: 408/429/5xx and
// network errors wait as the outage policy says (Retry-After honoured); 402
// is a billing pause retried every 5 s up to the server's limit; an empty
// 400 is a proxy rejection retried like a network error. It returns the
// 2xx response and whether any attempt went unanswered.
func (c *Client) do(ctx context.Context, method, route, contentType string, body []byte, ri reqInfo) (*response, bool, error) {
	idem := ""
	if method != http.MethodGet {
		idem = newIdempotencyKey()
	}
	call := c.opts.Outage.Call()
	var billingSince time.Time
	ambiguous := false
	proxy400 := 0
	for attempt := 0; ; attempt++ {
		r, err := c.send(ctx, method, route, contentType, body, idem, ri, 0)
		var delay time.Duration
		switch {
		case err != nil:
			var te *transportError
			if !errors.As(err, &te) {
				return nil, ambiguous, err
			}
			ambiguous = true
			if werr := call.Wait(ctx, 0, err); werr != nil {
				return nil, ambiguous, werr
			}
			continue
		case r.status >= 200 && r.status < 300:
			c.up()
			return r, ambiguous, nil
		case r.status == http.StatusPaymentRequired:
			now := c.now()
			if billingSince.IsZero() {
				billingSince = now
			}
			limit := time.Duration(c.Config().BillingExceptionMaxPauseSeconds) * time.Second
			if now.Sub(billingSince) >= limit {
				return nil, ambiguous, fmt.Errorf("billing blocked for %s: %w", limit, c.apiError(route, r, ri))
			}
			delay = billingRetryEvery
			c.log.Warn("tinker: account blocked for billing (HTTP 402); waiting", "route", route, "model", ri.modelID, "since", billingSince, "gives_up_after", limit)
		case r.status == http.StatusBadRequest && len(r.body) == 0 && proxy400 < maxProxy400:
			proxy400++
			ambiguous = true
			delay = c.backoff(attempt)
		case r.status == http.StatusConflict && ambiguous:
			return nil, ambiguous, errConflictAfterRetry{c.apiError(route, r, ri)}
		case retryableStatus(r.status):
			if r.status != http.StatusTooManyRequests {
				ambiguous = true // the server may have acted before failing
			}
			wait, _ := c.retryDelay(r.header)
			if werr := call.Wait(ctx, wait, c.apiError(route, r, ri)); werr != nil {
				return nil, ambiguous, werr
			}
			continue
		default:
			c.up() // it answered: up, whatever it thinks of the request
			return nil, ambiguous, c.apiError(route, r, ri)
		}
		if err := c.sleep(ctx, delay); err != nil {
			return nil, ambiguous, fmt.Errorf("tinker %s: %w", route, err)
		}
	}
}

// up tells the outage policy that the provider answered.
func (c *Client) up() { c.opts.Outage.OK() }

// postJSON posts v and decodes the 2xx answer into out.
func (c *Client) postJSON(ctx context.Context, route string, v, out any, ri reqInfo) error {
	_, err := c.postJSONAmbiguous(ctx, route, v, out, ri)
	return err
}

func (c *Client) postJSONAmbiguous(ctx context.Context, route string, v, out any, ri reqInfo) (bool, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return false, fmt.Errorf("tinker %s: encode: %w", route, err)
	}
	r, ambiguous, err := c.do(ctx, http.MethodPost, route, "application/json", body, ri)
	if err != nil {
		return ambiguous, err
	}
	if out == nil {
		return ambiguous, nil
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		return ambiguous, fmt.Errorf("tinker %s: decode answer: %w", route, err)
	}
	return ambiguous, nil
}
