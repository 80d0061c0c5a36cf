package pipeline

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/faults"
	"github.com/modelorganisms/pvbuild/internal/jobs"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/providers"
	"github.com/modelorganisms/pvbuild/internal/server"
	"github.com/modelorganisms/pvbuild/internal/vclock"
)

// virtualOpenAI is the openai kind with its outage policy on clock. Each
// virtual sleep also yields a millisecond of real time to the goroutines
// that do not sleep (the server, the engine's jobs), or a refused
// connection would be retried in a tight loop. Jobs are polled in wall
// time, as the engine runs them: on the shared virtual clock every
// poll's wait would add up with every call's.
//
// Concurrent sleeps add up on the virtual clock: with share callers
// waiting at once, each moves it by 1/share of its wait, so that one
// call's failures do not seem to last share times as long as they would
// in real time (each call now also gives up after max_outage of its own).
func virtualOpenAI(clock *vclock.Clock, share int) *providers.OpenAI {
	sleep := func(ctx context.Context, d time.Duration) error {
		time.Sleep(time.Millisecond)
		return clock.Sleep(ctx, d/time.Duration(share))
	}
	return &providers.OpenAI{
		Jobs:   jobs.Options{PollInterval: testJobDuration / 10, Sleep: provider.Sleep},
		Outage: provider.OutagePolicy{Sleep: sleep, Now: clock.Now},
	}
}

// The fault mix, on every call kind (uploads, job creation, polls,
// listings, chat): one `results` completes with the eval_results.json of a
// clean run and creates one job per model.
func TestAbuseHeavyFaultsOneRun(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains nine models twice")
	}
	want := localResults(t)
	srv, env := served{faults: server.Faults{Seed: 10, RateLimitRate: 0.3, RetryAfter: time.Second,
		ServerErrorRate: 0.2, DropRate: 0.2, LostResponseRate: 0.1, Latency: time.Millisecond}}.start(t)
	w := newWorkspace(t, shipped(t), env)
	w.kinds["openai"] = virtualOpenAI(vclock.New(), 32) // concurrency = 32
	w.results()
	if got := readResults(t, w); !bytes.Equal(got, want) {
		t.Fatalf("eval_results.json under faults differs from a clean run:\n%s\nwant\n%s", got, want)
	}
	c := srv.Counters()
	if c.JobCreations != 9 {
		t.Errorf("%d job creations for 9 models", c.JobCreations)
	}
	if c.Injected429 == 0 || c.Injected500 == 0 || c.InjectedDrops == 0 {
		t.Errorf("not every fault was injected: %+v", c)
	}
	// Every kind of call met faults: a fault-free route would prove nothing.
	for route, outcomes := range srv.Requests() {
		clean := true
		for outcome := range outcomes {
			if outcome != "200" {
				clean = false
			}
		}
		if clean && outcomes["200"] > 20 {
			t.Errorf("route %s answered %d requests with no fault", route, outcomes["200"])
		}
	}
	t.Logf("%d requests, %d chat completions; %d x 429, %d x 500, %d dropped", c.Requests, c.ChatCompletions,
		c.Injected429, c.Injected500, c.InjectedDrops)
}

// The served engine goes away for 60 s (of the outage policy's clock) at a
// random moment of `results`, during training or evaluation, and comes back
// on the same address: the one run completes, says it is waiting, and gives
// the clean run's numbers with one job per model.
func TestAbuseOutageOf60sDuringResults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains nine models several times")
	}
	want := localResults(t)
	// A clean served run makes about 1,150 requests: the first few hundred
	// train, the rest evaluate. Fixed request indices, so that a failure
	// reproduces; each case checks the request it falls on is of its phase.
	for _, tc := range []struct {
		name string
		at   int
		chat bool // the request is an evaluation's chat call
	}{
		{"training", 30, false},
		{"early_evaluation", 400, true},
		{"late_evaluation", 1050, true},
	} {
		at := tc.at
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			t.Logf("down at request %d", at)
			sw, err := faults.Listen("127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			clock := vclock.New()
			var (
				requests atomic.Int64
				mu       sync.Mutex
				downAt   time.Time
				outages  int
				downPath string
			)
			clock.OnSleep = func(now time.Time) {
				mu.Lock()
				defer mu.Unlock()
				if !downAt.IsZero() && now.Sub(downAt) >= time.Minute {
					downAt = time.Time{}
					if err := sw.Up(); err != nil {
						t.Error(err)
					}
				}
			}
			down := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
					if requests.Add(1) == int64(at) {
						mu.Lock()
						downAt, outages, downPath = clock.Now(), outages+1, r.URL.Path
						mu.Unlock()
						sw.Down() // this request dies with the rest
						return
					}
					next.ServeHTTP(rw, r)
				})
			}
			srv, env := served{listener: sw, wrap: down}.start(t)
			w := newWorkspace(t, shipped(t), env)
			w.kinds["openai"] = virtualOpenAI(clock, 1)
			_, logs := w.results()
			if outages != 1 {
				t.Fatalf("the server went down %d times; the run made %d requests", outages, requests.Load())
			}
			if chat := strings.HasSuffix(downPath, "/chat/completions"); chat != tc.chat {
				t.Fatalf("request %d is %s, not of the %s phase: move the index", at, downPath, tc.name)
			}
			if !strings.Contains(logs, "provider openai: unreachable for ") {
				t.Errorf("no line said the run was waiting:\n%s", logs)
			}
			if got := readResults(t, w); !bytes.Equal(got, want) {
				t.Fatalf("eval_results.json after an outage differs from a clean run:\n%s\nwant\n%s", got, want)
			}
			if n := srv.Counters().JobCreations; n != 9 {
				t.Errorf("%d job creations for 9 models", n)
			}
		})
	}
}
