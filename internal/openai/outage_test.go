package openai

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/testlog"
	"github.com/modelorganisms/pvbuild/internal/vclock"
)

// outageClient is a client of base whose outage policy runs on clock.
func outageClient(t *testing.T, base string, clock *vclock.Clock, max time.Duration, log *testlog.Buffer) *Client {
	t.Helper()
	c, err := New(Config{APIKey: testKey, BaseURL: base, HTTPClient: &http.Client{Timeout: 5 * time.Second},
		Outage: provider.NewOutage("openai", provider.OutagePolicy{Max: max, Sleep: clock.Sleep, Now: clock.Now}, log)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkWaitingLines checks that an outage of about down was reported as
// waited out, once at the start and then at most every ~10 s, not per
// attempt.
func checkWaitingLines(t *testing.T, log string, down time.Duration, cause string) {
	t.Helper()
	var lines []string
	for l := range strings.Lines(log) {
		if strings.HasPrefix(l, "provider openai: unreachable for ") {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 || !strings.Contains(lines[0], cause) || !strings.Contains(lines[0], "retrying for up to 10m0s") {
		t.Fatalf("no waiting line naming %q in the log:\n%s", cause, log)
	}
	for _, l := range lines {
		if strings.Contains(l, "gave up") {
			t.Fatalf("a line that says the call is retried also says it gave up: %s", l)
		}
	}
	if max := int(down/(10*time.Second)) + 2; len(lines) > max {
		t.Fatalf("%d waiting lines for a %s outage, want at most %d:\n%s", len(lines), down, max, log)
	}
}

// A provider that refuses connections for 60 s and then comes back: chat
// and job calls wait it out, saying so, and complete.
func TestAbuseOutageConnectionRefusedThenBack(t *testing.T) {
	for _, op := range []string{"chat", "job"} {
		t.Run(op, func(t *testing.T) {
			// Reserve a port, then close it: connections are refused until
			// the virtual clock passes 60 s and the server listens there.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			srv := httptest.NewUnstartedServer(okFor(op))
			t.Cleanup(srv.Close)
			clock := vclock.New()
			back := clock.Now().Add(60 * time.Second)
			var once sync.Once
			clock.OnSleep = func(now time.Time) {
				if now.Before(back) {
					return
				}
				once.Do(func() {
					l, err := net.Listen("tcp", addr)
					if err != nil {
						t.Errorf("listen again on %s: %v", addr, err)
						return
					}
					srv.Listener = l
					srv.Start()
				})
			}
			var log testlog.Buffer
			c := outageClient(t, "http://"+addr+"/v1", clock, 0, &log)
			if err := runOp(c, context.Background(), op); err != nil {
				t.Fatalf("after a 60 s outage: %v\n%s", err, log.String())
			}
			if clock.Elapsed() < 60*time.Second {
				t.Fatalf("came back after %s of virtual time, before the server did", clock.Elapsed())
			}
			checkWaitingLines(t, log.String(), 60*time.Second, "connection refused")
		})
	}
}

// A provider that answers 503 for 60 s and then comes back.
func TestAbuseOutage503ThenBack(t *testing.T) {
	for _, op := range []string{"chat", "job"} {
		t.Run(op, func(t *testing.T) {
			clock := vclock.New()
			back := clock.Now().Add(60 * time.Second)
			var requests atomic.Int32
			down := status(503, apiErrorBody("The engine is currently overloaded.", "server_error", "", nil))
			up := okFor(op)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if clock.Now().Before(back) {
					down(w, r)
					return
				}
				up(w, r)
			}))
			t.Cleanup(srv.Close)
			var log testlog.Buffer
			c := outageClient(t, srv.URL+"/v1", clock, 0, &log)
			if err := runOp(c, context.Background(), op); err != nil {
				t.Fatalf("after a 60 s outage: %v\n%s", err, log.String())
			}
			if requests.Load() < 3 {
				t.Fatalf("%d requests: the outage was not retried", requests.Load())
			}
			checkWaitingLines(t, log.String(), 60*time.Second, "HTTP 503")
		})
	}
}

// An outage longer than max_outage ends the call with an error that says
// so, how long, and what the last failure was.
func TestAbuseOutageLongerThanMax(t *testing.T) {
	for _, op := range []string{"chat", "job"} {
		t.Run(op, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			clock := vclock.New()
			var log testlog.Buffer
			c := outageClient(t, "http://"+addr+"/v1", clock, 45*time.Second, &log)
			err = runOp(c, context.Background(), op)
			var oe *provider.OutageError
			if !errors.Is(err, provider.ErrUnreachable) || !errors.As(err, &oe) {
				t.Fatalf("err = %v, want a *provider.OutageError", err)
			}
			if oe.For != 45*time.Second || !strings.Contains(err.Error(), "provider openai was unreachable for 45s (max_outage 45s); giving up") ||
				!strings.Contains(err.Error(), "connection refused") {
				t.Fatalf("err = %v, want it to say 45s of connection refused", err)
			}
			if provider.Permanent(err) {
				t.Fatal("an outage is not a permanent refusal")
			}
		})
	}
}

// Refusals and invalid requests are answered once and reported at once,
// from chat and job calls alike: retrying cannot help, and the build stops
// on the first one.
func TestAbusePermanentErrorsNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   any
		is     error
	}{
		{"401 bad key", 401, apiErrorBody("Incorrect API key provided.", "invalid_request_error", "invalid_api_key", nil), provider.ErrRefused},
		{"403 no access", 403, apiErrorBody("You are not allowed to sample from this model.", "invalid_request_error", "", nil), provider.ErrRefused},
		{"429 insufficient_quota", 429, apiErrorBody("You exceeded your current quota.", "insufficient_quota", "insufficient_quota", nil), provider.ErrRefused},
		{"400 invalid request", 400, apiErrorBody("Invalid value for 'n'.", "invalid_request_error", "", "n"), provider.ErrInvalid},
	} {
		for _, op := range []string{"chat", "job"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				h, n := scripted(status(tc.status, tc.body))
				clock := vclock.New()
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				c := outageClient(t, srv.URL+"/v1", clock, 0, &testlog.Buffer{})
				err := runOp(c, context.Background(), op)
				if !errors.Is(err, tc.is) || !provider.Permanent(err) {
					t.Fatalf("err = %v, want it to match %v", err, tc.is)
				}
				if n.Load() != 1 || clock.Elapsed() != 0 {
					t.Fatalf("%d requests, %s waited; want exactly one, no wait", n.Load(), clock.Elapsed())
				}
			})
		}
	}
}

// Go's *url.Error prints the URL; one with a query or user:password would
// print its secret. Errors leave the transport without them, whether it
// gave up on an outage or failed at once.
func TestAbuseTransportErrorsHideURLSecrets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := ln.Addr().String()
	ln.Close()
	// A server that answers garbage: not transient, fails at once.
	garbage, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { garbage.Close() })
	go func() {
		for {
			c, err := garbage.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("NOT HTTP AT ALL\r\n\r\n"))
			c.Close()
		}
	}()
	for _, addr := range []string{refused, garbage.Addr().String()} {
		clock := vclock.New()
		tr := &transport{hc: &http.Client{Timeout: 5 * time.Second}, key: testKey,
			outage: provider.NewOutage("openai", provider.OutagePolicy{Max: time.Minute, Sleep: clock.Sleep, Now: clock.Now}, nil)}
		req, err := http.NewRequest(http.MethodGet, "http://me:SECRET1@"+addr+"/v1/models?api_key=SECRET2#SECRET3", nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tr.Do(req)
		if err == nil {
			t.Fatal("want an error")
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("error shows the URL's secret: %v", err)
		}
		if !strings.Contains(err.Error(), addr+"/v1/models") {
			t.Fatalf("error %v: want it to name the address", err)
		}
	}
}
