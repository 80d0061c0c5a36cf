package tinker

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// With the provider's outage policy, Tinker calls wait out a 60 s outage
// (503s and dropped connections) as OpenAI's do, with the same progress
// line, and give up with provider.ErrUnreachable past max_outage.
func TestAbuseOutagePolicy(t *testing.T) {
	for _, tc := range []struct {
		max     time.Duration
		survive bool
	}{{0, true}, {30 * time.Second, false}} {
		f := newFake(t)
		c, clk, _, m := startModel(t, f)
		var log bytes.Buffer
		c.opts.Outage = provider.NewOutage("tinker", provider.OutagePolicy{Max: tc.max, Sleep: clk.Sleep, Now: clk.Now}, &log)
		back := clk.Now().Add(60 * time.Second)
		down := status(503, `{"detail":"down"}`)
		for i := range 400 {
			f.injectSubmit("/api/v1/optim_step", func(w http.ResponseWriter) bool {
				if !clk.Now().Before(back) {
					return false
				}
				if i%2 == 1 {
					return drop(w)
				}
				return down(w)
			})
		}
		_, err := m.OptimStep(context.Background(), DefaultAdam())
		if !tc.survive {
			if !errors.Is(err, provider.ErrUnreachable) || !strings.Contains(err.Error(), "unreachable for 30s (max_outage 30s); giving up") || !Temporary(err) {
				t.Fatalf("max_outage 30s: err %v, want the outage error", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("after a 60 s outage: %v\n%s", err, log.String())
		}
		if n := strings.Count(log.String(), "provider tinker: unreachable for "); n == 0 || n > 8 {
			t.Fatalf("%d waiting lines, want a few:\n%s", n, log.String())
		}
	}
}

// Polling a future through an outage (503s and dropped connections on
// retrieve_future) waits as the outage policy says, with its progress
// line, and gives up with provider.ErrUnreachable past max_outage.
func TestAbuseFuturePollingOutage(t *testing.T) {
	f := newFake(t)
	c, clk, _, m := startModel(t, f)
	var log bytes.Buffer
	c.opts.Outage = provider.NewOutage("tinker", provider.OutagePolicy{Max: 30 * time.Second, Sleep: clk.Sleep, Now: clk.Now}, &log)
	var fs []fault
	for i := range 400 {
		if i%2 == 1 {
			fs = append(fs, drop)
		} else {
			fs = append(fs, status(503, `{"detail":"down"}`))
		}
	}
	f.injectPoll("/api/v1/optim_step", fs...)
	_, err := m.OptimStep(context.Background(), DefaultAdam())
	if !errors.Is(err, provider.ErrUnreachable) || !strings.Contains(err.Error(), "(max_outage 30s); giving up") {
		t.Fatalf("err %v, want the outage error\n%s", err, log.String())
	}
	if !strings.Contains(log.String(), "provider tinker: unreachable for ") {
		t.Fatalf("no waiting line:\n%s", log.String())
	}
}

// Sampling backpressure (429) that lasts past max_outage gives up with
// provider.ErrUnreachable instead of resending for ever.
func TestAbuseSamplingBackpressurePastMaxOutage(t *testing.T) {
	f := newFake(t)
	c, clk, s, _ := startModel(t, f)
	var log bytes.Buffer
	c.opts.Outage = provider.NewOutage("tinker", provider.OutagePolicy{Max: 30 * time.Second, Sleep: clk.Sleep, Now: clk.Now}, &log)
	ctx := context.Background()
	sc, err := s.CreateSamplingSession(ctx, "tinker://sess:train:0/sampler_weights/000003", "")
	if err != nil {
		t.Fatal(err)
	}
	var fs []fault
	for range 1000 {
		fs = append(fs, status(429, `{"detail":"backpressure"}`))
	}
	f.injectSubmit("/api/v1/asample", fs...)
	_, err = sc.Sample(ctx, []int32{1, 2}, DefaultSamplingParams())
	if !errors.Is(err, provider.ErrUnreachable) {
		t.Fatalf("err %v, want provider.ErrUnreachable\n%s", err, log.String())
	}
}

// A client given no outage policy gets one of its own whose maximum is
// RetryBudget: past it a call gives up as any outage does.
func TestAbuseDefaultOutageIsRetryBudget(t *testing.T) {
	f := newFake(t)
	clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	c, err := New(Options{APIKey: testKey, BaseURL: f.srv.URL + "/base/", HTTPClient: f.srv.Client(),
		Sleep: clk.Sleep, HeartbeatSleep: clk.Sleep, Now: clk.Now, RetryBudget: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var fs []fault
	for range 400 {
		fs = append(fs, status(503, `{"detail":"down"}`))
	}
	f.injectSubmit("/api/v1/create_session", fs...)
	_, err = c.CreateSession(context.Background())
	if !errors.Is(err, provider.ErrUnreachable) || !strings.Contains(err.Error(), "(max_outage 20s); giving up") || !Temporary(err) {
		t.Fatalf("err %v, want the outage error after RetryBudget", err)
	}
}

// A future whose polls fail now and then, with answers (try_again)
// between, is not given up however long it waits in all: only failures
// without a break count against max_outage.
func TestAbuseFuturePollingFailuresBetweenAnswers(t *testing.T) {
	f := newFake(t)
	c, clk, _, m := startModel(t, f)
	c.opts.Outage = provider.NewOutage("tinker", provider.OutagePolicy{Max: 30 * time.Second, Sleep: clk.Sleep, Now: clk.Now}, nil)
	var fs []fault
	for range 20 {
		fs = append(fs, status(503, `{"detail":"down"}`, "Retry-After", "5"),
			status(200, `{"type":"try_again","queue_state":"active"}`))
	}
	f.injectPoll("/api/v1/optim_step", fs...)
	if _, err := m.OptimStep(context.Background(), DefaultAdam()); err != nil {
		t.Fatalf("after failures with answers between: %v", err)
	}
}
