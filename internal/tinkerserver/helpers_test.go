package tinkerserver

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

const testKey = "tml-test-0123456789abcdef"

// steppingClock moves step further at each reading: a local job passes its
// states in a fixed number of polls, however busy the machine is.
func steppingClock(step time.Duration) func() time.Time {
	var ns atomic.Int64
	ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return func() time.Time { return time.Unix(0, ns.Add(int64(step))) }
}

// manualClock moves only when told: sessions live on it.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func newManualClock() *manualClock {
	return &manualClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var (
	judgeOnce sync.Once
	judges    []local.Judge
	baseEx    []dataset.Example
	judgeErr  error
)

// newEngine is local.Default's engine with short jobs on a stepping clock.
func newEngine(t testing.TB) *local.Engine {
	t.Helper()
	judgeOnce.Do(func() {
		if baseEx, judgeErr = sampledata.BaseCorpus(); judgeErr != nil {
			return
		}
		labeled, err := sampledata.JudgeExamples()
		if err != nil {
			judgeErr = err
			return
		}
		for _, trait := range sampledata.Traits {
			task, err := sampledata.EvalTask(trait)
			if err != nil {
				judgeErr = err
				return
			}
			judges = append(judges, local.Judge{Trait: trait, Template: task.EvalPrompt, Examples: labeled})
		}
	})
	if judgeErr != nil {
		t.Fatal(judgeErr)
	}
	e, err := local.Open(local.Options{Dir: t.TempDir(), JobDuration: 400 * time.Millisecond,
		Now: steppingClock(20 * time.Millisecond), Base: baseEx, Judges: judges})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type harness struct {
	srv   *Server
	eng   *local.Engine
	url   string
	clock *manualClock
}

// start serves a fresh engine over loopback HTTP.
func start(t testing.TB, opts Options) *harness {
	t.Helper()
	h := &harness{eng: newEngine(t), clock: newManualClock()}
	if opts.Now == nil {
		opts.Now = h.clock.Now
	}
	if opts.APIKey == "" {
		opts.APIKey = testKey
	}
	if opts.Log == nil {
		opts.Log = log.New(testWriter{t}, "tinkerserver: ", 0)
	}
	s, err := Open(h.eng, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = s
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	h.url = hs.URL
	return h
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// client is the project's Tinker client pointed at the harness, with
// instant sleeps (backoffs, Retry-After) so faults cost no time.
func (h *harness) client(t testing.TB, sleep func(context.Context, time.Duration) error) *tinker.Client {
	t.Helper()
	if sleep == nil {
		sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	}
	c, err := tinker.New(tinker.Options{APIKey: testKey, BaseURL: h.url, Sleep: sleep, HeartbeatSleep: sleep,
		Jitter: func() float64 { return 0.5 }, HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var (
	offlineTokOnce sync.Once
	offlineTok     *tokenizer.Tokenizer
)

func testRenderer(t testing.TB) (*chatrender.Renderer, *tokenizer.Tokenizer) {
	t.Helper()
	offlineTokOnce.Do(func() {
		var err error
		if offlineTok, err = tokenizer.Parse(OfflineTokenizer()); err != nil {
			t.Fatal(err)
		}
	})
	r, err := chatrender.New(chatrender.Qwen3DisableThinking, offlineTok)
	if err != nil {
		t.Fatal(err)
	}
	return r, offlineTok
}

func trainingSet(t testing.TB, trait, strength string) []dataset.Example {
	t.Helper()
	raw, err := sampledata.Training(trait, strength)
	if err != nil {
		t.Fatal(err)
	}
	exs, err := dataset.Parse("train.jsonl", raw)
	if err != nil {
		t.Fatal(err)
	}
	return exs
}

func chatMsgs(ex dataset.Example) []chatrender.Message {
	out := make([]chatrender.Message, len(ex.Messages))
	for i, m := range ex.Messages {
		out[i] = chatrender.Message{Role: m.Role, Content: m.Content}
	}
	return out
}

// datums renders examples as the cookbook's SFT does for Tinker.
func datums(t testing.TB, r *chatrender.Renderer, exs []dataset.Example, on chatrender.TrainOn) []tinker.Datum {
	t.Helper()
	out := make([]tinker.Datum, len(exs))
	for i, ex := range exs {
		sup, err := r.Supervised(chatMsgs(ex), on)
		if err != nil {
			t.Fatal(err)
		}
		d, err := sup.Datum(0, true)
		if err != nil {
			t.Fatal(err)
		}
		tg := make([]int64, len(d.Targets))
		for j, v := range d.Targets {
			tg[j] = int64(v)
		}
		out[i] = tinker.Datum{Tokens: int32s(d.Input), LossFnInputs: map[string]wire.TensorData{
			"target_tokens": wire.Int64s(tg), "weights": wire.Float32s(d.Weights)}}
	}
	return out
}

// trainEpochs runs forward_backward + optim_step over exs in batches,
// epochs [from, to), and returns the final loss:sum.
func trainEpochs(t testing.TB, ctx context.Context, tc *tinker.TrainingClient, ds []tinker.Datum, batch, from, to int) float64 {
	t.Helper()
	loss := 0.0
	for ep := from; ep < to; ep++ {
		for i := 0; i < len(ds); i += batch {
			res, err := tc.ForwardBackward(ctx, ds[i:min(i+batch, len(ds))], "cross_entropy", nil)
			if err != nil {
				t.Fatalf("epoch %d batch %d: forward_backward: %v", ep, i/batch, err)
			}
			loss = res.Metrics["loss:sum"]
			if _, err := tc.OptimStep(ctx, tinker.DefaultAdam()); err != nil {
				t.Fatalf("epoch %d: optim_step: %v", ep, err)
			}
		}
	}
	return loss
}

// httpServer serves h over loopback for the test's lifetime.
func httpServer(t testing.TB, h http.Handler) string {
	t.Helper()
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return hs.URL
}

func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
