package jobs_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/jobs"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/openai"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/server"
	"github.com/modelorganisms/pvbuild/internal/testlog"
	"github.com/modelorganisms/pvbuild/internal/vclock"
)

// newRigWith is newRig with jobs lasting jobDuration, the base URL's
// scheme, the client's config and the outage policy (on the returned
// virtual clock) as given.
func newRigWith(t *testing.T, jobDuration time.Duration, scheme string, mod func(*openai.Config, *provider.OutagePolicy), rules ...*rule) (*rig, *vclock.Clock) {
	t.Helper()
	opts, err := local.DefaultOptions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.JobDuration = jobDuration
	// The engine's jobs run on the policy's clock too: a job ends only
	// once the trainer has slept through it, however busy the machine.
	clock := vclock.New()
	opts.Now = clock.Now
	eng, err := local.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(eng, server.Options{Log: log.New(io.Discard, "", 0)})
	sc := &scripted{h: srv, rules: rules}
	ts := httptest.NewServer(sc)
	t.Cleanup(ts.Close)
	r := &rig{srv: srv, script: sc, dir: t.TempDir(), log: &testlog.Buffer{}}
	cfg := openai.Config{APIKey: "sk-test-jobs", BaseURL: scheme + "://" + ts.Listener.Addr().String() + "/v1",
		HTTPClient: &http.Client{Timeout: 10 * time.Second}}
	policy := provider.OutagePolicy{Sleep: clock.Sleep, Now: clock.Now}
	mod(&cfg, &policy)
	o := provider.NewOutage("openai", policy, r.log)
	cfg.Outage = o
	client, err := openai.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.trainer = jobs.New(client, jobs.Options{Provider: "openai", Dir: r.dir, PollInterval: time.Millisecond,
		MaxPollInterval: 5 * time.Millisecond, Log: r.log, Outage: o})
	return r, clock
}

// A create that keeps failing (5xx before any work) while the lookups
// between its attempts succeed gives up after max_outage of its own
// failures, though each lookup ends the provider's outage.
func TestAbuseCreateFailingWhileLookupsSucceed(t *testing.T) {
	create := &rule{method: "POST", path: "/v1/fine_tuning/jobs", how: "500", n: 1 << 30}
	r, clock := newRigWith(t, 20*time.Millisecond, "http", func(*openai.Config, *provider.OutagePolicy) {}, create)
	_, err := r.trainer.Train(context.Background(), request("evil_mild"))
	var oe *provider.OutageError
	if !errors.As(err, &oe) || !errors.Is(err, provider.ErrUnreachable) {
		t.Fatalf("err = %v, want an *OutageError\n%s", err, r.log.String())
	}
	if clock.Elapsed() < provider.DefaultMaxOutage {
		t.Fatalf("gave up after %s of waiting, want max_outage", clock.Elapsed())
	}
	if c := r.srv.Counters(); c.JobCreations != 0 {
		t.Fatalf("%d job creations", c.JobCreations)
	}
}

// What the transport will not retry (here: an https URL to a plain-HTTP
// server) the trainer does not retry either: it fails at once, without
// waiting out an outage that is not one.
func TestAbuseJobCallsNotRetriedWhenTransportWillNot(t *testing.T) {
	r, clock := newRigWith(t, 20*time.Millisecond, "https", func(*openai.Config, *provider.OutagePolicy) {})
	_, err := r.trainer.Train(context.Background(), request("evil_mild"))
	if !errors.Is(err, provider.ErrNoRetry) || errors.Is(err, provider.ErrUnreachable) {
		t.Fatalf("err = %v, want provider.ErrNoRetry and no outage\n%s", err, r.log.String())
	}
	if clock.Elapsed() != 0 || strings.Contains(r.log.String(), "unreachable for") {
		t.Fatalf("waited %s for an error no retry can cure:\n%s", clock.Elapsed(), r.log.String())
	}
}

// A rate limit asking for a longer wait than the transport makes in
// process comes back to the trainer, which waits as long as the server
// asked (within max_outage), not a short backoff.
func TestAbuseJobCallsHonourLongRetryAfter(t *testing.T) {
	list := &rule{method: "GET", path: "/v1/fine_tuning/jobs", how: "429long", n: 1}
	r, clock := newRigWith(t, 20*time.Millisecond, "http", func(_ *openai.Config, p *provider.OutagePolicy) { p.Max = time.Hour }, list)
	tr, err := r.trainer.Train(context.Background(), request("evil_mild"))
	if err != nil || tr.Model == "" {
		t.Fatalf("train: %v\n%s", err, r.log.String())
	}
	if clock.Elapsed() < 20*time.Minute {
		t.Fatalf("waited %s after a 429 asking for 20 minutes", clock.Elapsed())
	}
	if c := r.srv.Counters(); c.JobCreations != 1 {
		t.Fatalf("%d job creations", c.JobCreations)
	}
}

// Cancelling during a blip longer than the transport's own retries (capped
// here) still cancels: the job lookup is retried as any job call is.
func TestAbuseCancelDuringBlip(t *testing.T) {
	r, _ := newRigWith(t, time.Hour, "http", func(c *openai.Config, _ *provider.OutagePolicy) { c.MaxRetries = 1 })
	p, err := r.trainer.Submit(context.Background(), request("evil_mild"))
	if err != nil {
		t.Fatal(err)
	}
	r.script.mu.Lock()
	r.script.rules = append(r.script.rules, &rule{method: "GET", path: "/v1/fine_tuning/jobs/" + p.JobID, how: "500", n: 5})
	r.script.mu.Unlock()
	cancelled, err := r.trainer.Cancel(context.Background())
	if err != nil || len(cancelled) != 1 || cancelled[0].State != provider.StatusCancelled {
		t.Fatalf("cancel = %+v, %v; want the job cancelled\n%s", cancelled, err, r.log.String())
	}
}

// Polls wait on the outage policy's clock, so that a test on a virtual
// clock lives through them without waiting in wall time.
func TestAbusePollsSleepOnPolicyClock(t *testing.T) {
	r, clock := newRigWith(t, 20*time.Millisecond, "http", func(*openai.Config, *provider.OutagePolicy) {})
	// The job ends on the virtual clock: polls sleeping in wall time would
	// never see it end, and the deadline says so.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.trainer.Train(ctx, request("evil_mild")); err != nil {
		t.Fatalf("train: %v\n%s", err, r.log.String())
	}
	if clock.Elapsed() == 0 {
		t.Fatal("the polls between submitting and the job's end did not sleep on the policy's clock")
	}
}
