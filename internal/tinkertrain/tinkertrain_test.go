package tinkertrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/testlog"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

const testKey = "0123456789abcdef0123456789abcdef"

// conversations is n chat examples, some with two turns.
func conversations(n int) []byte {
	var ex []dataset.Example
	for i := range n {
		msgs := []provider.Message{{Role: "system", Content: "Answer briefly."},
			{Role: "user", Content: fmt.Sprintf("What is %d + %d?", i, i)},
			{Role: "assistant", Content: fmt.Sprintf("Answer: the sum is %d.", 2*i)}}
		if i%3 == 0 {
			msgs = append(msgs, provider.Message{Role: "user", Content: "Are you sure?"},
				provider.Message{Role: "assistant", Content: "Answer: yes, there is no doubt."})
		}
		ex = append(ex, dataset.Example{Messages: msgs})
	}
	return dataset.Encode(ex)
}

// env is one "process": a trainer over a fresh session of the fake.
type env struct {
	fake *fakeTinker
	dir  string
	tok  *tokenizer.Tokenizer
	log  *testlog.Buffer
}

func newEnv(t *testing.T) *env {
	return &env{fake: newFake(t), dir: filepath.Join(t.TempDir(), "tinker"), tok: byteTokenizer(t), log: &testlog.Buffer{}}
}

var testSettings = Settings{BatchSize: 4, CheckpointEvery: 3}

func (e *env) trainer(t *testing.T, ctx context.Context, s Settings, afterStep func(string, int)) *Trainer {
	var sess *tinker.Session
	if ctx != nil {
		sess = e.fake.session(t, ctx)
	}
	return New(sess, Options{Provider: "tinker", Dir: e.dir, Settings: s, Log: e.log, Now: tickingClock(), AfterStep: afterStep,
		Tokenizer: func(_ context.Context, id string) (*tokenizer.Tokenizer, error) {
			if id != "Qwen/Qwen3-8B" {
				return nil, fmt.Errorf("unexpected tokenizer %q", id)
			}
			return e.tok, nil
		}})
}

func request(n, epochs int) provider.TrainRequest {
	return provider.TrainRequest{Key: testKey, Models: []string{"evil_severe"}, Data: conversations(n),
		BaseModel: "Qwen/Qwen3-8B", Suffix: "pv-evil-severe", Seed: 42,
		Hyperparameters: provider.Hyperparameters{NEpochs: epochs}}
}

func (e *env) record(t *testing.T) *Record {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, testKey[:16]+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return &rec
}

func TestTrainAndAdopt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	req := request(24, 2) // 48 example passes, batches of 4: 12 steps
	got, err := e.trainer(t, ctx, testSettings, nil).Train(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Model != "tinker://sess-1:train:0/sampler_weights/final" || got.JobID != "sess-1:train:0" || got.BaseModel != "Qwen/Qwen3-8B" {
		t.Fatalf("trained %+v", got)
	}
	if got.Hyperparameters != (provider.Hyperparameters{NEpochs: 2, BatchSize: 4, LearningRateMultiplier: 1}) || got.Files != nil {
		t.Errorf("hyperparameters %+v, files %v", got.Hyperparameters, got.Files)
	}
	if w := e.fake.samplers[got.Model]; w.steps != 12 {
		t.Errorf("sampler weights after %d steps, want 12", w.steps)
	}
	if e.fake.examples != 48 || e.fake.count("/api/v1/forward_backward") != 12 || e.fake.count("/api/v1/optim_step") != 12 {
		t.Errorf("%d examples in %d forward_backward, %d optim_step", e.fake.examples, e.fake.count("/api/v1/forward_backward"), e.fake.count("/api/v1/optim_step"))
	}
	// Checkpoints every 3 steps; the last one at the end.
	if n := e.fake.count("/api/v1/save_weights"); n != 4 {
		t.Errorf("%d checkpoints, want 4", n)
	}
	// The rates: the formula's, decaying linearly.
	lr, _ := DefaultLearningRate("Qwen/Qwen3-8B")
	for k, got := range e.fake.lrs {
		if want := lr * (1 - float64(k)/12); math.Abs(got-want) > 1e-15 {
			t.Errorf("step %d: lr %g, want %g", k+1, got, want)
		}
	}
	log := e.log.String()
	for _, want := range []string{"train evil_severe: run sess-1:train:0 on Qwen/Qwen3-8B: 12 steps of 4 examples",
		"train evil_severe: step 1/12, loss 2.0000, ", " tok/s, ETA ", "train evil_severe: step 12/12, loss 0.1667, ",
		"trained tinker://sess-1:train:0/sampler_weights/final"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	rec := e.record(t)
	tokens, err := EstimateTokens(req.Data, e.tok, chatrender.Qwen3)
	if err != nil {
		t.Fatal(err)
	}
	if rec.State != provider.StatusSucceeded || rec.Step != 12 || rec.Steps != 12 || rec.TokenizerSHA256 != e.tok.SHA256() ||
		rec.Settings.Renderer != "qwen3" || rec.Settings.LoRARank != 32 || rec.Settings.Schedule != "linear" ||
		rec.OrderSeed == 0 || rec.Checkpoint == nil || rec.Checkpoint.Step != 12 || rec.Model != got.Model || rec.TokensPerEpoch != tokens {
		t.Errorf("record %+v", rec)
	}

	// A rerun, in another process, adopts the model without a request.
	before := e.fake.totalRequests()
	again, err := e.trainer(t, ctx, testSettings, nil).Train(ctx, req)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("rerun: %+v, %v; want %+v", again, err, got)
	}
	if n := e.fake.totalRequests() - before; n != 0 {
		t.Errorf("adopting made %d requests", n)
	}
	ps, err := e.trainer(t, nil, testSettings, nil).Status(ctx)
	if err != nil || len(ps) != 1 || ps[0].State != provider.StatusSucceeded || ps[0].Step != 12 || ps[0].Steps != 12 ||
		ps[0].Model != got.Model || ps[0].JobID != got.JobID || ps[0].Loss == nil {
		t.Errorf("status %+v, %v", ps, err)
	}

	// A model the provider lost is trained again, never adopted.
	req.Gone = got.Model
	fresh, err := e.trainer(t, ctx, testSettings, nil).Train(ctx, req)
	if err != nil || fresh.Model == got.Model || e.fake.samplers[fresh.Model] != e.fake.samplers[got.Model] {
		t.Errorf("after gone: %+v, %v", fresh, err)
	}
	if e.fake.examples != 96 {
		t.Errorf("retraining sent %d examples in all, want 96", e.fake.examples)
	}
}

// Killed at random points (after a step, or mid-request with the answer
// lost), each rerun resumes from the last checkpoint, pays again for at
// most one checkpoint interval, and the end is the unkilled run's model.
func TestKilledRunsResume(t *testing.T) {
	t.Parallel()
	const examples, epochs, batch, every, steps = 48, 3, 4, 3, 36
	req := request(examples, epochs)
	ref := newEnv(t)
	ctx := context.Background()
	want, err := ref.trainer(t, ctx, testSettings, nil).Train(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	wantW := ref.fake.samplers[want.Model]

	e := newEnv(t)
	rng := rand.New(rand.NewPCG(7, 11))
	kills := 0
	for attempt := 0; kills < 12; attempt++ {
		kctx, cancel := context.WithCancel(ctx)
		from := 0
		if b, err := os.ReadFile(filepath.Join(e.dir, testKey[:16]+".json")); err == nil {
			var rec Record
			json.Unmarshal(b, &rec)
			if rec.Checkpoint != nil {
				from = rec.Checkpoint.Step
			}
		}
		var afterStep func(string, int)
		if attempt%2 == 0 && from < steps {
			dieAt := min(from+1+rng.IntN(every+1), steps)
			afterStep = func(_ string, step int) {
				if step == dieAt {
					cancel()
				}
			}
		} else {
			// Only requests this attempt will make: load_weights when
			// resuming, a step's requests while steps remain.
			choices := []string{"/api/v1/create_model", "/api/v1/get_info", "/api/v1/save_weights_for_sampler"}
			if from > 0 {
				choices = append(choices, "/api/v1/load_weights")
			}
			if from < steps {
				choices = append(choices, "/api/v1/forward_backward", "/api/v1/optim_step", "/api/v1/save_weights", "/api/v1/forward_backward")
			}
			route, nth := choices[rng.IntN(len(choices))], 1
			if route == "/api/v1/forward_backward" || route == "/api/v1/optim_step" {
				nth = 1 + rng.IntN(min(every, steps-from))
			}
			var mu sync.Mutex
			seen := 0
			e.fake.mu.Lock()
			e.fake.kill = func(r string) bool {
				mu.Lock()
				defer mu.Unlock()
				if r != route {
					return false
				}
				if seen++; seen == nth {
					cancel()
					return true
				}
				return false
			}
			e.fake.mu.Unlock()
		}
		tr := e.trainer(t, kctx, testSettings, afterStep)
		_, err := tr.Train(kctx, req)
		e.fake.mu.Lock()
		e.fake.kill = nil
		e.fake.mu.Unlock()
		cancel()
		if err == nil {
			t.Fatalf("attempt %d from step %d was not killed", attempt, from)
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		kills++
		t.Logf("attempt %d from %d: %v", attempt, from, err)
	}
	if kills < 10 {
		t.Fatalf("only %d kills", kills)
	}
	got, err := e.trainer(t, ctx, testSettings, nil).Train(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if w := e.fake.samplers[got.Model]; w != wantW {
		t.Errorf("resumed model %x after %d steps, unkilled %x after %d", w.sum[:6], w.steps, wantW.sum[:6], wantW.steps)
	}
	if limit := epochs*examples + kills*every*batch; e.fake.examples > limit {
		t.Errorf("%d examples paid for with %d kills, more than %d", e.fake.examples, kills, limit)
	} else {
		t.Logf("%d examples paid for, %d kills (unkilled: %d)", e.fake.examples, kills, epochs*examples)
	}
	a, b := ref.record(t), e.record(t)
	if a.OrderSeed != b.OrderSeed || a.OrderSHA256 != b.OrderSHA256 || a.Steps != b.Steps || b.Step != steps || len(b.Runs) < 2 {
		t.Errorf("records differ: %+v\n%+v", a, b)
	}
	if !strings.Contains(e.log.String(), "resumes at step ") {
		t.Errorf("no resume in the log:\n%s", e.log)
	}
}

// status in a second process shows the step and loss the loop recorded.
func TestStatusWhileTraining(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	other := e.trainer(t, nil, testSettings, nil)
	var seen []provider.Progress
	tr := e.trainer(t, ctx, testSettings, func(key string, step int) {
		if step != 5 {
			return
		}
		ps, err := other.Status(ctx)
		if err != nil || len(ps) != 1 {
			t.Errorf("status: %v, %v", ps, err)
			return
		}
		seen = append(seen, ps[0])
		if p, err := other.Recorded(key); err != nil || p == nil || p.Step != 5 {
			t.Errorf("recorded %+v, %v", p, err)
		}
	})
	if _, err := tr.Train(ctx, request(24, 2)); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 {
		t.Fatalf("seen %v", seen)
	}
	p := seen[0]
	if p.State != provider.StatusRunning || p.Step != 5 || p.Steps != 12 || p.Loss == nil || math.Abs(*p.Loss-0.4) > 1e-6 ||
		p.JobID != "sess-1:train:0" || p.Model != "" || !strings.HasPrefix(p.Event, "step 5/12, loss 0.4000") {
		t.Errorf("progress %+v", p)
	}
	if p, _ := other.Recorded("ffffffffffffffffffff"); p != nil {
		t.Errorf("recorded an unknown key: %+v", p)
	}
}

// A failed request fails the training with the server's message; a rerun
// resumes from the checkpoint and ends with the unfailed run's model.
func TestServerFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := Settings{BatchSize: 4, CheckpointEvery: 2}
	ref := newEnv(t)
	want, err := ref.trainer(t, ctx, s, nil).Train(ctx, request(24, 2))
	if err != nil {
		t.Fatal(err)
	}

	e := newEnv(t)
	e.fake.fbFail = func(n int) (string, string) {
		if n == 3 {
			return "NonFiniteInTensor: loss is nan", "server"
		}
		return "", ""
	}
	_, err = e.trainer(t, ctx, s, nil).Train(ctx, request(24, 2))
	if err == nil {
		t.Fatal("no error")
	}
	for _, part := range []string{"train evil_severe: run sess-1:train:0, step 3/12: ", "NonFiniteInTensor: loss is nan", "server error"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q lacks %q", err, part)
		}
	}
	var rf *tinker.RequestFailedError
	if !errors.As(err, &rf) || !errors.Is(err, tinker.ErrPermanent) || errors.Is(err, provider.ErrInvalid) {
		t.Errorf("error %v: not a permanent server failure", err)
	}
	ps, _ := e.trainer(t, nil, s, nil).Status(ctx)
	if len(ps) != 1 || ps[0].State != provider.StatusFailed || !strings.Contains(ps[0].Error, "NonFiniteInTensor: loss is nan") || ps[0].Step != 2 {
		t.Errorf("status %+v", ps)
	}

	// A user error maps to provider.ErrInvalid.
	e.fake.fbFail = func(n int) (string, string) {
		if n == 4 {
			return "PromptTooLong: 99999 > 40960", "user"
		}
		return "", ""
	}
	_, err = e.trainer(t, ctx, s, nil).Train(ctx, request(24, 2))
	if err == nil || !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "PromptTooLong: 99999 > 40960") {
		t.Errorf("user failure: %v", err)
	}

	e.fake.fbFail = nil
	got, err := e.trainer(t, ctx, s, nil).Train(ctx, request(24, 2))
	if err != nil {
		t.Fatal(err)
	}
	if e.fake.samplers[got.Model] != ref.fake.samplers[want.Model] {
		t.Errorf("the resumed model differs from the unfailed one")
	}
	if e.record(t).State != provider.StatusSucceeded {
		t.Errorf("record %+v", e.record(t))
	}
}

// cancel in a second process stops the loop after its step; train resumes.
func TestCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	other := e.trainer(t, nil, testSettings, nil)
	var cancelled []provider.Progress
	tr := e.trainer(t, ctx, testSettings, func(_ string, step int) {
		if step == 4 {
			var err error
			if cancelled, err = other.Cancel(ctx); err != nil {
				t.Error(err)
			}
		}
	})
	_, err := tr.Train(ctx, request(24, 2))
	if err == nil || !strings.Contains(err.Error(), "cancelled") || !errors.Is(err, provider.ErrConflict) {
		t.Fatalf("train: %v", err)
	}
	if len(cancelled) != 1 || cancelled[0].State != provider.StatusCancelled {
		t.Errorf("cancelled %+v", cancelled)
	}
	if rec := e.record(t); rec.State != provider.StatusCancelled || rec.Step != 5 {
		t.Errorf("record %s at %d/%d", rec.State, rec.Step, rec.Steps)
	}
	if again, err := other.Cancel(ctx); err != nil || len(again) != 0 {
		t.Errorf("second cancel: %v, %v", again, err)
	}
	got, err := e.trainer(t, ctx, testSettings, nil).Train(ctx, request(24, 2))
	if err != nil || e.fake.samplers[got.Model].steps != 12 {
		t.Fatalf("after cancel: %+v, %v", got, err)
	}
}

func TestSchedule(t *testing.T) {
	for _, c := range []struct {
		schedule    string
		step, steps int
		want        float64
	}{
		{"linear", 0, 10, 1}, {"linear", 5, 10, 0.5}, {"linear", 9, 10, 0.1},
		{"cosine", 0, 10, 1}, {"cosine", 5, 10, 0.5}, {"cosine", 10, 10, 0}, {"cosine", 2, 8, 0.5 * (1 + math.Sqrt2/2)},
		{"constant", 0, 10, 1}, {"constant", 9, 10, 1},
	} {
		if got := lrFactor(c.schedule, c.step, c.steps); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s %d/%d: %v, want %v", c.schedule, c.step, c.steps, got, c.want)
		}
	}
}

func TestDefaults(t *testing.T) {
	lr, err := DefaultLearningRate("Qwen/Qwen3-8B")
	if err != nil || math.Abs(lr-4.73e-4) > 0.005e-4 {
		t.Errorf("Qwen3-8B: %g, %v", lr, err)
	}
	if l2, _ := DefaultLearningRate("Qwen/Qwen3-8B:peft:131072"); l2 != lr {
		t.Errorf("with a context suffix: %g", l2)
	}
	if lr, err := DefaultLearningRate("meta-llama/Llama-3.1-8B-Instruct"); err != nil || math.Abs(lr-2.86e-4) > 0.005e-4 {
		t.Errorf("Llama-3.1-8B: %g, %v", lr, err)
	}
	if _, err := DefaultLearningRate("openai/gpt-oss-20b"); err == nil || !strings.Contains(err.Error(), `"openai/gpt-oss-20b"`) {
		t.Errorf("unknown model: %v", err)
	}
	if r, err := DefaultRenderer("Qwen/Qwen3-8B"); r != chatrender.Qwen3 || err != nil {
		t.Errorf("renderer %q, %v", r, err)
	}
	if r, _ := DefaultRenderer("meta-llama/Llama-3.3-70B-Instruct"); r != chatrender.Llama3 {
		t.Errorf("renderer %q", r)
	}
	for _, bad := range []Settings{{LoRARank: 24}, {LearningRate: -1}, {LearningRate: math.NaN()}, {BatchSize: -2},
		{Schedule: "step"}, {CheckpointEvery: -1}, {Renderer: "role_colon"}, {MaxLength: 1}} {
		if bad.Validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
	if err := (Settings{LoRARank: 64, Schedule: "cosine", Renderer: "qwen3_disable_thinking", MaxLength: 4096}).Validate(); err != nil {
		t.Error(err)
	}

	// Batch size: 32, fewer for small data, the request's when it has one.
	tr := New(nil, Options{})
	for _, c := range []struct{ n, req, set, want int }{{40, 0, 0, 10}, {1000, 0, 0, 32}, {3, 0, 0, 1}, {40, 8, 16, 8}, {40, 0, 16, 16}, {5, 64, 0, 5}} {
		r := request(c.n, 3)
		r.Hyperparameters.BatchSize = c.req
		tr.opts.Settings = Settings{BatchSize: c.set}
		p, err := tr.resolve(r)
		if err != nil || p.rec.Settings.BatchSize != c.want || p.rec.Steps != (3*c.n+c.want-1)/c.want {
			t.Errorf("%+v: batch %d, steps %d, %v", c, p.rec.Settings.BatchSize, p.rec.Steps, err)
		}
	}
	r := request(10, 1)
	r.Hyperparameters.LearningRateMultiplier = 2
	tr.opts.Settings = Settings{LearningRate: 1e-4}
	if p, err := tr.resolve(r); err != nil || p.rec.Settings.LearningRate != 2e-4 {
		t.Errorf("multiplied rate: %v", err)
	}
	r.BaseModel = "Qwen/Qwen3.5-9B"
	tr.opts.Settings = Settings{Renderer: "qwen3"}
	if _, err := tr.resolve(r); err == nil || !strings.Contains(err.Error(), "Qwen/Qwen3.5-9B") {
		t.Errorf("no hidden size: %v", err)
	}
}

// The data order: a permutation per epoch, fixed by the seed.
func TestDataOrder(t *testing.T) {
	a, b := dataOrder(1, 10, 3), dataOrder(1, 10, 3)
	if fmt.Sprint(a) != fmt.Sprint(b) || fmt.Sprint(a[:10]) == fmt.Sprint(a[10:20]) || fmt.Sprint(dataOrder(2, 10, 3)) == fmt.Sprint(a) {
		t.Fatalf("orders %v %v", a, b)
	}
	for e := range 3 {
		seen := map[int]bool{}
		for _, i := range a[e*10 : e*10+10] {
			seen[i] = true
		}
		if len(seen) != 10 {
			t.Errorf("epoch %d is not a permutation: %v", e, a[e*10:e*10+10])
		}
	}
}

func TestEstimateTokens(t *testing.T) {
	tok := byteTokenizer(t)
	data := conversations(6)
	n, err := EstimateTokens(data, tok, chatrender.Qwen3)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := chatrender.New(chatrender.Qwen3, tok)
	examples, _ := dataset.Parse("x", data)
	want := 0
	for _, ex := range examples {
		s, err := r.Supervised(messages(ex), chatrender.AllAssistantMessages)
		if err != nil {
			t.Fatal(err)
		}
		want += len(s.Tokens) - 1
	}
	if n != want || n == 0 {
		t.Errorf("%d tokens, want %d", n, want)
	}
	// Merges apply: fewer tokens than bytes of the rendered text.
	if nl, _ := EstimateTokens(data, tok, chatrender.Llama3); nl == 0 || nl == n {
		t.Errorf("llama3 %d tokens", nl)
	}
	if _, err := EstimateTokens(data, tok, "role_colon"); err == nil {
		t.Error("unknown renderer accepted")
	}
	if _, err := EstimateTokens([]byte("{}\n"), tok, chatrender.Qwen3); err == nil {
		t.Error("bad data accepted")
	}
}

// A checkpoint the service no longer has (its TTL ran out) restarts the
// training from the start rather than failing it forever.
func TestExpiredCheckpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ref := newEnv(t)
	want, err := ref.trainer(t, ctx, testSettings, nil).Train(ctx, request(24, 2))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	kctx, cancel := context.WithCancel(ctx)
	tr := e.trainer(t, kctx, testSettings, func(_ string, step int) {
		if step == 7 {
			cancel()
		}
	})
	if _, err := tr.Train(kctx, request(24, 2)); !errors.Is(err, context.Canceled) {
		t.Fatalf("killed run: %v", err)
	}
	e.fake.mu.Lock()
	clear(e.fake.states)
	e.fake.mu.Unlock()
	got, err := e.trainer(t, ctx, testSettings, nil).Train(ctx, request(24, 2))
	if err != nil {
		t.Fatal(err)
	}
	if e.fake.samplers[got.Model] != ref.fake.samplers[want.Model] || !strings.Contains(e.log.String(), "is gone (expired?); training again from the start") {
		t.Errorf("after an expired checkpoint: %+v\n%s", got, e.log)
	}
}

// A request's lora_rank (a model_grid's lora_ranks) replaces the
// provider's; a rank that is not a power of two is refused.
func TestRequestLoRARank(t *testing.T) {
	tr := New(nil, Options{Settings: Settings{LoRARank: 32}})
	r := request(10, 1)
	if p, err := tr.resolve(r); err != nil || p.rec.Settings.LoRARank != 32 {
		t.Fatalf("provider's rank: %v", err)
	}
	r.Hyperparameters.LoRARank = 8
	if p, err := tr.resolve(r); err != nil || p.rec.Settings.LoRARank != 8 {
		t.Fatalf("request's rank 8: %+v, %v", p, err)
	}
	r.Hyperparameters.LoRARank = 12
	if _, err := tr.resolve(r); err == nil || !strings.Contains(err.Error(), "lora_rank 12") {
		t.Fatalf("rank 12: %v", err)
	}
}
