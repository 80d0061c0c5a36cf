package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // in the error; "" for success
	}{
		{"no key", Config{}, "OPENAI_API_KEY"},
		{"blank key", Config{APIKey: "  "}, "OPENAI_API_KEY"},
		{"bad base URL", Config{APIKey: testKey, BaseURL: "api.openai.com/v1"}, "base URL"},
		{"defaults", Config{APIKey: testKey}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				// Retries are bounded by the outage policy, not by a count.
				if c.baseURL != defaultBaseURL || c.tr.maxRetries != 0 || c.tr.outage.Max() != provider.DefaultMaxOutage {
					t.Fatalf("defaults not applied: %s %d %s", c.baseURL, c.tr.maxRetries, c.tr.outage.Max())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// scripted answers request i with steps[i], and the last step thereafter.
func scripted(steps ...http.HandlerFunc) (http.Handler, *atomic.Int32) {
	var n atomic.Int32
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1)) - 1
		if i >= len(steps) {
			i = len(steps) - 1
		}
		steps[i](w, r)
	}), &n
}

func status(code int, body any, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		if s, ok := body.(string); ok {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(code)
			io.WriteString(w, s)
			return
		}
		writeJSON(w, code, body)
	}
}

// okFor answers an operation's success.
func okFor(op string) http.HandlerFunc {
	if op == "chat" {
		return status(200, map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-2024-08-06",
			"choices": []any{chatChoice(0, "ok", nil)}})
	}
	return status(200, jobObject("ftjob-1", "running", nil))
}

func runOp(c *Client, ctx context.Context, op string) error {
	if op == "chat" {
		_, err := c.Chat(ctx, provider.ChatRequest{Model: "gpt-4o-2024-08-06", Messages: []provider.Message{{Role: "user", Content: "hi"}}})
		return err
	}
	_, err := c.GetJob(ctx, "ftjob-1")
	return err
}

func TestRetries(t *testing.T) {
	// 429 bodies as recorded from the real API when facts.json is present;
	// the behaviour under test hangs on type and code, kept the same here.
	var quota, rateLimit any = apiErrorBody("You exceeded your current quota.", "insufficient_quota", "insufficient_quota", nil),
		apiErrorBody("Rate limit reached.", "requests", "rate_limit_exceeded", nil)
	if f, ok := readFacts(t); ok {
		if err := json.Unmarshal(f.observed(t, "HTTP 429 quota (not retryable)"), &quota); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(f.observed(t, "HTTP 429 on inference (rate limit)"), &rateLimit); err != nil {
			t.Fatal(err)
		}
	}
	server500 := apiErrorBody("The server had an error while processing your request.", "server_error", "", nil)
	tests := []struct {
		name         string
		op           string // "job" (typed client) or "chat" (go-openai)
		first        http.HandlerFunc
		always       bool // the failure repeats
		wantRequests int32
		wantStatus   int   // of the final *APIError, 0 for success
		wantIs       error // sentinel the error must match
		minElapsed   time.Duration
	}{
		{name: "429 with Retry-After seconds", op: "job", first: status(429, rateLimit, "Retry-After", "1"),
			wantRequests: 2, minElapsed: time.Second},
		{name: "429 with retry-after-ms", op: "chat", first: status(429, rateLimit, "retry-after-ms", "60"),
			wantRequests: 2, minElapsed: 60 * time.Millisecond},
		{name: "500 then success", op: "job", first: status(500, server500), wantRequests: 2},
		{name: "502 HTML from a proxy then success", op: "chat", first: status(502, "<html><body>Bad gateway</body></html>"), wantRequests: 2},
		{name: "dropped connection then success (typed)", op: "job", first: dropConnection, wantRequests: 2},
		{name: "dropped connection then success (go-openai)", op: "chat", first: dropConnection, wantRequests: 2},
		{name: "insufficient_quota is not retried", op: "chat", first: status(429, quota),
			wantRequests: 1, wantStatus: 429, wantIs: ErrInsufficientQuota},
		{name: "404 is not retried", op: "job", first: status(404, apiErrorBody("No such job: ftjob-1", "invalid_request_error", "", "id")),
			wantRequests: 1, wantStatus: 404},
		{name: "500 until retries run out", op: "job", first: status(500, server500), always: true,
			wantRequests: 4, wantStatus: 500},
		{name: "Retry-After past the cap is not waited", op: "job", first: status(429, rateLimit, "Retry-After", "86400"),
			wantRequests: 1, wantStatus: 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			steps := []http.HandlerFunc{tt.first, okFor(tt.op)}
			if tt.always {
				steps = steps[:1]
			}
			h, n := scripted(steps...)
			c := newTestClient(t, h)
			start := time.Now()
			err := runOp(c, context.Background(), tt.op)
			elapsed := time.Since(start)
			if got := n.Load(); got != tt.wantRequests {
				t.Errorf("%d requests, want %d", got, tt.wantRequests)
			}
			if elapsed < tt.minElapsed {
				t.Errorf("retried after %s, want at least %s", elapsed, tt.minElapsed)
			}
			if tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("err = %v, want success", err)
				}
				return
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != tt.wantStatus {
				t.Fatalf("err = %v, want *APIError with status %d", err, tt.wantStatus)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Fatalf("err = %v, want it to match %v", err, tt.wantIs)
			}
			if apiErr.Attempts != int(tt.wantRequests) {
				t.Errorf("Attempts = %d, want %d", apiErr.Attempts, tt.wantRequests)
			}
		})
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header map[string]string
		want   time.Duration
	}{
		{"none", nil, 0},
		{"seconds", map[string]string{"Retry-After": "3"}, 3 * time.Second},
		{"fractional seconds", map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond},
		{"HTTP date", map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, 90 * time.Second},
		{"HTTP date in the past", map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)}, 0},
		{"milliseconds win", map[string]string{"Retry-After": "3", "retry-after-ms": "250"}, 250 * time.Millisecond},
		{"bad milliseconds fall back", map[string]string{"Retry-After": "2", "retry-after-ms": "soon"}, 2 * time.Second},
		{"negative", map[string]string{"Retry-After": "-5"}, 0},
		{"garbage", map[string]string{"Retry-After": "tomorrow-ish"}, 0},
		{"absurd is capped", map[string]string{"Retry-After": "1e300"}, 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.header {
				h.Set(k, v)
			}
			if got := retryAfter(h, now); got != tt.want {
				t.Fatalf("retryAfter = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestBackoffHonoursContext(t *testing.T) {
	for _, op := range []string{"job", "chat"} {
		t.Run(op, func(t *testing.T) {
			h, _ := scripted(status(503, apiErrorBody("overloaded", "server_error", "", nil), "Retry-After", "300"))
			c := newTestClient(t, h)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			err := runOp(c, ctx, op)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("returned after %s; the backoff ignored the context", d)
			}
		})
	}
}

func TestSharedConfigHeaders(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]http.Header{}
	files := &fileServer{content: map[string][]byte{}}
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method+" "+r.URL.Path] = r.Header.Clone()
		mu.Unlock()
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/files"):
			files.ServeHTTP(w, r)
		case r.URL.Path == "/v1/chat/completions":
			okFor("chat")(w, r)
		default:
			okFor("job")(w, r)
		}
	}))
	ctx := context.Background()
	if _, err := c.UploadFile(ctx, "train.jsonl", []byte("{}\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateJob(ctx, provider.JobRequest{Model: "gpt-4.1-mini-2025-04-14", TrainingFile: "file-001"}); err != nil {
		t.Fatal(err)
	}
	if err := runOp(c, ctx, "chat"); err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{"GET /v1/files", "POST /v1/files", "POST /v1/fine_tuning/jobs", "POST /v1/chat/completions"} {
		h, ok := seen[route]
		if !ok {
			t.Errorf("%s not called", route)
			continue
		}
		want := map[string]string{"Authorization": "Bearer " + testKey, "OpenAI-Organization": "org-test", "OpenAI-Project": "proj_test"}
		for k, v := range want {
			if got := h.Get(k); got != v {
				t.Errorf("%s: header %s = %q, want %q", route, k, got, v)
			}
		}
	}
}

func TestAPIKeyNeverLeaks(t *testing.T) {
	echo := func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// A hostile or buggy server echoing the credential back.
		writeJSON(w, 401, apiErrorBody("Incorrect API key provided: "+strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "),
			"invalid_request_error", "invalid_api_key", nil))
	}
	for _, op := range []string{"job", "chat"} {
		t.Run(op, func(t *testing.T) {
			c := newTestClient(t, http.HandlerFunc(echo))
			err := runOp(c, context.Background(), op)
			if err == nil {
				t.Fatal("want an error")
			}
			if strings.Contains(err.Error(), testKey) {
				t.Fatalf("error leaks the key: %v", err)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || apiErr.Status != 401 || !strings.Contains(apiErr.Message, "[redacted]") {
				t.Fatalf("err = %#v, want a 401 with the key redacted", err)
			}
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				if s := fmt.Sprintf(verb, c); strings.Contains(s, testKey) {
					t.Fatalf("fmt %s of the client leaks the key", verb)
				}
				if s := fmt.Sprintf(verb, *c.tr); strings.Contains(s, testKey) {
					t.Fatalf("fmt %s of the transport leaks the key", verb)
				}
			}
		})
	}
}
