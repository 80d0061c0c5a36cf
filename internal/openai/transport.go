package openai

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

const (
	// maxRetryAfter bounds how long one server-requested wait may be: past
	// it (a daily request cap, say) waiting in-process is the wrong call, so
	// the error goes back to the caller with RetryAfter set.
	maxRetryAfter = 10 * time.Minute
	// maxResponseBytes bounds a buffered response; listing 10,000 files is
	// a few MB.
	maxResponseBytes = 64 << 20
)

// errTooLarge: the response was over maxResponseBytes; sending the request
// again would get the same.
var errTooLarge = errors.New("response too large")

type noReplayKey struct{}

// withNoReplay marks requests that must not be sent twice once they may have
// reached the server (creating a fine-tuning job).
func withNoReplay(ctx context.Context) context.Context {
	return context.WithValue(ctx, noReplayKey{}, true)
}

// transport is the one HTTP path for every call, go-openai's and ours: it
// sets the auth headers, retries, and turns error responses into *APIError.
// It implements go-openai's HTTPDoer.
type transport struct {
	hc           *http.Client
	key          string
	organization string
	project      string
	// maxRetries caps the retries of one request; 0 leaves it to the
	// outage policy alone.
	maxRetries int
	// outage is the provider's one outage policy, shared with its job
	// calls: transient failures are retried while the provider has been
	// failing for less than its maximum.
	outage *provider.Outage
}

// Do sends req, retrying transient failures. A non-2xx final answer comes
// back as a *APIError (go-openai passes Do's error through unchanged).
// Every error it returns has URLs without query or userinfo.
func (t *transport) Do(req *http.Request) (*http.Response, error) {
	resp, err := t.do(req)
	return resp, redactURLs(err)
}

func (t *transport) do(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
		body = b
	}
	noReplay, _ := ctx.Value(noReplayKey{}).(bool)
	// New checks the base URL; this catches any other URL (a redirect is
	// checked by net/http) before it is sent, so no error text is parsed.
	if s := req.URL.Scheme; s != "http" && s != "https" {
		return nil, fmt.Errorf("%w: %s: unsupported URL scheme %q", provider.ErrNoRetry, req.Method, s)
	}

	call := t.outage.Call()
	for attempt := 1; ; attempt++ {
		var sent atomic.Bool
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
			WroteHeaders: func() { sent.Store(true) },
		})
		r := req.Clone(tctx)
		t.setHeaders(r.Header)
		if body != nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			r.ContentLength = int64(len(body))
		}

		resp, err := t.hc.Do(r)
		var data []byte
		if err == nil {
			data, err = readLimited(resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			// Once the request may have been read, only the server knows
			// whether it acted, even if we gave up (ctx) ourselves.
			if noReplay && sent.Load() {
				return nil, fmt.Errorf("%w: %w", ErrMaybeCreated, err)
			}
			if ctx.Err() != nil {
				return nil, err
			}
			if !transient(err) {
				return nil, fmt.Errorf("%w: %w", provider.ErrNoRetry, err)
			}
			if t.exhausted(attempt) {
				return nil, fmt.Errorf("gave up after %d attempts: %w", attempt, err)
			}
			if werr := call.Wait(ctx, 0, err); werr != nil {
				return nil, werr
			}
			continue
		}

		if resp.StatusCode < 400 {
			t.outage.OK()
			resp.Body = io.NopCloser(bytes.NewReader(data))
			resp.ContentLength = int64(len(data))
			return resp, nil
		}

		apiErr := parseAPIError(resp.StatusCode, resp.Header, data, time.Now())
		apiErr.redact(t.key)
		if !retryable(apiErr) {
			// The provider answered: it is up, whatever it thinks of us.
			t.outage.OK()
			apiErr.Attempts = attempt
			return nil, apiErr
		}
		// A 429 is refused before any work; a 5xx may come after the job
		// was created.
		if noReplay && apiErr.Status != http.StatusTooManyRequests {
			return nil, fmt.Errorf("%w: %w", ErrMaybeCreated, apiErr)
		}
		if t.exhausted(attempt) || apiErr.RetryAfter > maxRetryAfter {
			// Said only when giving up: the waiting line quotes apiErr too.
			apiErr.Attempts = attempt
			return nil, apiErr
		}
		if werr := call.Wait(ctx, apiErr.RetryAfter, apiErr); werr != nil {
			return nil, werr
		}
	}
}

// exhausted reports whether attempt used up the retry cap, if there is one.
func (t *transport) exhausted(attempt int) bool {
	return t.maxRetries != 0 && attempt > max(t.maxRetries, 0)
}

// Format prints the transport without its credentials.
func (t transport) Format(f fmt.State, verb rune) {
	fmt.Fprintf(f, "openai.transport{retries: %d}", t.maxRetries)
}

func (t *transport) setHeaders(h http.Header) {
	h.Set("Authorization", "Bearer "+t.key)
	if t.organization != "" {
		h.Set("OpenAI-Organization", t.organization)
	}
	if t.project != "" {
		h.Set("OpenAI-Project", t.project)
	}
}

func readLimited(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxResponseBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, maxResponseBytes)
	}
	return data, nil
}

// transient reports whether a failure to get an answer is worth another
// try. Networks fail in more ways than net/http names (a reset, a GOAWAY, an
// idle connection the server closed as it was reused, a body cut short), so
// every such failure is transient except those no retry can cure: a response
// over the size limit, a certificate the client rejects, a host name that
// does not exist, a server that does not speak TLS on an https URL. (A URL
// the client cannot send to is refused before it is sent.)
func transient(err error) bool {
	var (
		certErr    *tls.CertificateVerificationError
		authErr    x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
		recordErr  tls.RecordHeaderError
		dnsErr     *net.DNSError
	)
	switch {
	case errors.Is(err, errTooLarge), errors.Is(err, http.ErrSchemeMismatch),
		errors.As(err, &certErr), errors.As(err, &authErr), errors.As(err, &hostErr),
		errors.As(err, &invalidErr), errors.As(err, &recordErr):
		return false
	case errors.As(err, &dnsErr):
		return !dnsErr.IsNotFound
	}
	return true
}

// retryable reports whether an error response may succeed if sent again.
// Some 429s are not rate limits but spent budgets; repeating them only burns
// the remaining retries.
func retryable(e *APIError) bool {
	if errors.Is(e, ErrInsufficientQuota) || errors.Is(e, ErrDailyJobLimit) {
		return false
	}
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// retryAfter reads the server's requested wait: OpenAI's retry-after-ms
// first (finer), then Retry-After in seconds or as an HTTP date. Absurd
// values are capped at a day, which is past maxRetryAfter, so not waited.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := strings.TrimSpace(h.Get("retry-after-ms")); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return capWait(ms * float64(time.Millisecond))
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s > 0 {
			return capWait(s * float64(time.Second))
		}
		return 0
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return capWait(float64(at.Sub(now)))
	}
	return 0
}

func capWait(ns float64) time.Duration {
	if ns > float64(24*time.Hour) {
		return 24 * time.Hour
	}
	return time.Duration(ns)
}

// redactURLs strips the query and userinfo from the URL a *url.Error
// prints: a base URL may carry a secret there (?api_key=...), and this is
// the one place errors leave the transport.
func redactURLs(err error) error {
	var ue *url.Error
	if err == nil || !errors.As(err, &ue) {
		return err
	}
	if u, perr := url.Parse(ue.URL); perr == nil {
		clean := *u
		clean.User, clean.RawQuery, clean.ForceQuery, clean.Fragment, clean.RawFragment = nil, "", false, "", ""
		if msg := err.Error(); clean.String() != ue.URL {
			return &redactedError{msg: strings.ReplaceAll(msg, ue.URL, clean.String()), err: err}
		}
		return err
	}
	return &redactedError{msg: strings.ReplaceAll(err.Error(), ue.URL, "[url redacted]"), err: err}
}

// redactedError prints msg in place of err's text and keeps err's chain
// for errors.Is and errors.As.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
