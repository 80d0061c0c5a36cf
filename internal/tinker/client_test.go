package tinker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
)

const testKey = "tml-test-secret-key-0123456789"

// fault is one injected answer; it returns false to fall through to the
// normal handler.
type fault func(w http.ResponseWriter) bool

func status(code int, body string, hdr ...string) fault {
	return func(w http.ResponseWriter) bool {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(code)
		io.WriteString(w, body)
		return true
	}
}

// drop closes the connection without an answer.
func drop(w http.ResponseWriter) bool {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		conn.Close()
	}
	return true
}

var tryAgain = status(200, `{"type":"try_again","request_id":"x","queue_state":"paused_capacity","queue_state_reason":"busy"}`)

type submission struct {
	route string
	seq   int
	body  map[string]any               // JSON routes
	fb    *wire.ForwardBackwardRequest // forward_backward
}

type fakeFuture struct {
	route  string
	faults []fault
	result func(w http.ResponseWriter)
	polls  int
	iters  []string
	accept string
}

// fakeTinker speaks the routes the client uses, on loopback.
type fakeTinker struct {
	t   *testing.T
	mu  sync.Mutex
	cfg map[string]any

	submitFaults map[string][]fault   // route -> next answers before normal handling
	pollFaults   map[string][][]fault // route -> per future, its poll faults
	futures      map[string]*fakeFuture
	subs         []submission
	keys         []string // X-API-Key of every request
	heartbeatOK  int      // beats answered 200 before 404
	beats        int
	nextID       int
	srv          *httptest.Server
}

func newFake(t *testing.T) *fakeTinker {
	f := &fakeTinker{t: t, cfg: map[string]any{}, submitFaults: map[string][]fault{}, pollFaults: map[string][][]fault{},
		futures: map[string]*fakeFuture{}, heartbeatOK: 1 << 30}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeTinker) injectSubmit(route string, fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.submitFaults[route] = append(f.submitFaults[route], fs...)
}

func (f *fakeTinker) injectPoll(route string, fs ...fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pollFaults[route] = append(f.pollFaults[route], fs)
}

func (f *fakeTinker) submissions(route string) []submission {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []submission
	for _, s := range f.subs {
		if s.route == route {
			out = append(out, s)
		}
	}
	return out
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (f *fakeTinker) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	route := strings.TrimPrefix(r.URL.Path, "/base")
	f.mu.Lock()
	f.keys = append(f.keys, r.Header.Get("X-API-Key"))
	if q := f.submitFaults[route]; len(q) > 0 {
		f.submitFaults[route] = q[1:]
		f.mu.Unlock()
		if q[0](w) {
			return
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	var js map[string]any
	if r.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(body, &js); err != nil {
			f.t.Errorf("%s: bad JSON: %v", route, err)
		}
	}
	newFuture := func(result func(w http.ResponseWriter)) {
		f.nextID++
		id := fmt.Sprintf("req-%d", f.nextID)
		ff := &fakeFuture{route: route, result: result}
		if q := f.pollFaults[route]; len(q) > 0 {
			ff.faults, f.pollFaults[route] = q[0], q[1:]
		}
		f.futures[id] = ff
		writeJSON(w, map[string]any{"request_id": id})
	}
	record := func(seq float64) {
		f.subs = append(f.subs, submission{route: route, seq: int(seq), body: js})
	}
	switch route {
	case "/api/v1/client/config":
		writeJSON(w, f.cfg)
	case "/api/v1/auth/token":
		writeJSON(w, map[string]any{"jwt": testJWT})
	case "/api/v1/create_session":
		if js["type"] != "create_session" || js["sdk_version"] != SDKVersion {
			f.t.Errorf("create_session body %v", js)
		}
		writeJSON(w, map[string]any{"session_id": "sess", "warning_message": "be nice"})
	case "/api/v1/session_heartbeat":
		f.beats++
		if f.beats > f.heartbeatOK {
			status(404, `{"detail":"Session not found"}`)(w)
			return
		}
		writeJSON(w, map[string]any{"type": "session_heartbeat"})
	case "/api/v1/create_model":
		record(js["model_seq_id"].(float64))
		id := fmt.Sprintf("sess:train:%d", int(js["model_seq_id"].(float64)))
		newFuture(func(w http.ResponseWriter) { writeJSON(w, map[string]any{"model_id": id, "type": "create_model"}) })
	case "/api/v1/forward_backward":
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			f.t.Errorf("forward_backward content type %q", ct)
		}
		var m wire.ForwardBackwardRequest
		if err := proto.Unmarshal(body, &m); err != nil {
			f.t.Errorf("forward_backward body: %v", err)
		}
		f.subs = append(f.subs, submission{route: route, seq: int(m.SeqId), fb: &m})
		n := len(m.Data)
		newFuture(func(w http.ResponseWriter) {
			rec := &wire.ArrayRecord{TypeTag: "ArrayRecord", NumDatums: int64(n), Fields: map[string]*wire.BatchedTensor{}}
			var data []float32
			offs := []int64{0}
			for i := 0; i < n; i++ {
				data = append(data, -float32(i+1))
				offs = append(offs, int64(4*(i+1)))
			}
			rec.Fields["logprobs"] = &wire.BatchedTensor{Data: wire.PackFloat32(data), Offsets: wire.PackInt64(offs), Dtype: wire.DType_DTYPE_FLOAT32}
			b, _ := wire.Marshal(&wire.ForwardBackwardOutput{LossFnOutputType: "tinker.types:ArrayRecord", LossFnOutputs: []*wire.ArrayRecord{rec},
				Metrics: map[string]float64{"loss:sum": float64(n), "tokens:mean": float64(n)}})
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(b)
		})
	case "/api/v1/optim_step", "/api/v1/load_weights":
		record(js["seq_id"].(float64))
		newFuture(func(w http.ResponseWriter) {
			writeJSON(w, map[string]any{"metrics": map[string]float64{"grad_norm:mean": 0.5}})
		})
	case "/api/v1/save_weights":
		record(js["seq_id"].(float64))
		p := fmt.Sprintf("tinker://%s/weights/%s", js["model_id"], js["path"])
		newFuture(func(w http.ResponseWriter) { writeJSON(w, map[string]any{"path": p}) })
	case "/api/v1/save_weights_for_sampler":
		record(js["seq_id"].(float64))
		p := fmt.Sprintf("tinker://%s/sampler_weights/%s", js["model_id"], js["path"])
		newFuture(func(w http.ResponseWriter) { writeJSON(w, map[string]any{"path": p}) })
	case "/api/v1/get_info":
		if js["model_id"] != "sess:train:0" {
			status(404, `{"detail":"model not found"}`)(w)
			return
		}
		writeJSON(w, map[string]any{"model_id": js["model_id"], "is_lora": true, "lora_rank": 8,
			"model_data": map[string]any{"model_name": "Qwen/Qwen3-8B", "tokenizer_id": "Qwen/Qwen3-8B:rev"}})
	case "/api/v1/create_sampling_session":
		writeJSON(w, map[string]any{"sampling_session_id": "sess:sample:0"})
	case "/api/v1/asample":
		if r.Header.Get("X-Tinker-Sampling-Backpressure") != "1" {
			f.t.Error("asample without backpressure header")
		}
		record(js["seq_id"].(float64))
		newFuture(func(w http.ResponseWriter) {
			b, _ := wire.Marshal(&wire.SampleResponse{
				Sequences:      []*wire.SampledSequence{{StopReason: wire.StopReason_STOP_REASON_LENGTH, Tokens: wire.PackInt32([]int32{5, 6}), Logprobs: wire.PackFloat32([]float32{-1, -2})}},
				PromptLogprobs: wire.PackFloat32([]float32{float32(math.NaN()), -0.5}),
				TopkPromptLogprobs: &wire.TopkLogprobs{K: 2, Length: 2,
					TokenIds: wire.PackInt32([]int32{0, 0, 7, 8}), Logprobs: wire.PackFloat32([]float32{wire.TopkSentinelLogprob, wire.TopkSentinelLogprob, -0.5, -1.5})},
			})
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(b)
		})
	case "/api/v1/retrieve_future":
		id, _ := js["request_id"].(string)
		ff := f.futures[id]
		if ff == nil {
			status(404, `{"detail":"unknown request"}`)(w)
			return
		}
		ff.polls++
		ff.iters = append(ff.iters, r.Header.Get("X-Tinker-Request-Iteration"))
		ff.accept = r.Header.Get("Accept")
		if len(ff.faults) > 0 {
			fl := ff.faults[0]
			ff.faults = ff.faults[1:]
			f.mu.Unlock()
			handled := fl(w)
			f.mu.Lock()
			if handled {
				return
			}
		}
		ff.result(w)
	default:
		status(404, `{"detail":"no route"}`)(w)
	}
}

// fakeClock makes Sleep instantaneous and records what was asked.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

func (c *fakeClock) slept() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

func newTestClient(t *testing.T, f *fakeTinker) (*Client, *fakeClock) {
	clk := &fakeClock{now: time.Unix(1_800_000_000, 0)}
	c, err := New(Options{APIKey: testKey, BaseURL: f.srv.URL + "/base/", HTTPClient: f.srv.Client(),
		Sleep: clk.Sleep, HeartbeatSleep: clk.Sleep, Now: clk.Now, Jitter: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	return c, clk
}

func startModel(t *testing.T, f *fakeTinker) (*Client, *fakeClock, *Session, *TrainingClient) {
	t.Helper()
	c, clk := newTestClient(t, f)
	ctx := context.Background()
	s, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.CreateLoRAModel(ctx, LoRAConfig{BaseModel: "Qwen/Qwen3-8B", Rank: 8})
	if err != nil {
		t.Fatal(err)
	}
	return c, clk, s, m
}

func datum(n int) Datum {
	toks := make([]int32, n)
	tgt := make([]int64, n)
	w := make([]float32, n)
	for i := range toks {
		toks[i], tgt[i], w[i] = int32(i+1), int64(i+2), 1
	}
	return Datum{Tokens: toks, LossFnInputs: map[string]TensorData{"target_tokens": wire.Int64s(tgt), "weights": wire.Float32s(w)}}
}

func noKeyIn(t *testing.T, err error) {
	t.Helper()
	if err != nil && strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), testKey) {
		t.Fatalf("error leaks the API key: %v", err)
	}
}

func TestTrainingLoopEndToEnd(t *testing.T) {
	f := newFake(t)
	// create_model: pending twice (try_again, 408), then done.
	f.injectPoll("/api/v1/create_model", tryAgain, status(408, `{"queue_state":"active"}`))
	// the first forward_backward: metadata-only, then the protobuf payload.
	f.injectPoll("/api/v1/forward_backward", status(200, `{"status":"complete_metadata","response_payload_size":64}`))
	var states []string
	c, _, _, m := func() (*Client, *fakeClock, *Session, *TrainingClient) {
		c, clk := newTestClient(t, f)
		c.opts.OnQueueState = func(_, s, _ string) { states = append(states, s) }
		s, err := c.Start(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.CreateLoRAModel(context.Background(), LoRAConfig{BaseModel: "Qwen/Qwen3-8B", Rank: 8})
		if err != nil {
			t.Fatal(err)
		}
		return c, clk, s, m
	}()
	ctx := context.Background()
	if m.ModelID != "sess:train:0" {
		t.Fatalf("model id %q", m.ModelID)
	}
	if !reflect.DeepEqual(states, []string{"paused_capacity", "active"}) {
		t.Errorf("queue states %v", states)
	}
	cm := f.submissions("/api/v1/create_model")[0].body
	if lc := cm["lora_config"].(map[string]any); lc["rank"] != 8.0 || lc["train_mlp"] != true || cm["base_model"] != "Qwen/Qwen3-8B" {
		t.Errorf("create_model body %v", cm)
	}

	res, err := m.ForwardBackward(ctx, []Datum{datum(3), datum(4)}, "cross_entropy", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.LossFnOutputType != "ArrayRecord" || len(res.LossFnOutputs) != 2 || res.Metrics["loss:sum"] != 2 {
		t.Errorf("fwdbwd result %+v", res)
	}
	fb := f.submissions("/api/v1/forward_backward")[0].fb
	if fb.SeqId != 1 || fb.ModelId != "sess:train:0" || fb.LossFn != "cross_entropy" || len(fb.Data) != 2 || fb.ForwardOnly {
		t.Errorf("fwdbwd request %v", fb)
	}
	for _, ff := range f.futures {
		if ff.route == "/api/v1/forward_backward" && (ff.accept != "application/x-protobuf" || ff.polls != 2 || !reflect.DeepEqual(ff.iters, []string{"0", "1"})) {
			t.Errorf("fwdbwd polls: accept %q polls %d iters %v", ff.accept, ff.polls, ff.iters)
		}
	}

	if _, err := m.Forward(ctx, []Datum{datum(2)}, "cross_entropy", nil); err != nil {
		t.Fatal(err)
	}
	adam := DefaultAdam()
	adam.LearningRate, adam.WeightDecay = 2e-4, 0.01
	metrics, err := m.OptimStep(ctx, adam)
	if err != nil || metrics["grad_norm:mean"] != 0.5 {
		t.Fatalf("optim: %v %v", metrics, err)
	}
	os := f.submissions("/api/v1/optim_step")[0]
	ap := os.body["adam_params"].(map[string]any)
	if os.seq != 3 || ap["learning_rate"] != 2e-4 || ap["beta1"] != 0.9 || ap["beta2"] != 0.95 || ap["eps"] != 1e-12 || ap["weight_decay"] != 0.01 || os.body["type"] != "optim_step" {
		t.Errorf("optim_step body %v", os.body)
	}
	state, err := m.SaveState(ctx, "000003", 0)
	if err != nil || state != "tinker://sess:train:0/weights/000003" {
		t.Fatalf("save: %q %v", state, err)
	}
	if sv := f.submissions("/api/v1/save_weights")[0]; sv.seq != 4 || sv.body["overwrite"] != false || sv.body["ttl_seconds"] != nil {
		t.Errorf("save body %v", sv.body)
	}
	sp, err := m.SaveWeightsForSampler(ctx, "000003", 3600)
	if err != nil || sp != "tinker://sess:train:0/sampler_weights/000003" {
		t.Fatalf("sampler save: %q %v", sp, err)
	}
	if err := m.LoadState(ctx, state, true); err != nil {
		t.Fatal(err)
	}
	if ld := f.submissions("/api/v1/load_weights")[0]; ld.seq != 6 || ld.body["optimizer"] != true || ld.body["path"] != state {
		t.Errorf("load body %v", ld.body)
	}
	if m.LastSeqID() != 6 {
		t.Errorf("last seq %d", m.LastSeqID())
	}
	info, err := m.GetInfo(ctx)
	if err != nil || info.TokenizerID != "Qwen/Qwen3-8B" || info.LoRARank != 8 || !info.IsLoRA {
		t.Fatalf("info %+v %v", info, err)
	}
	if got := c.OpenAIBaseURL(); got != f.srv.URL+"/base/oai/api/v1" {
		t.Errorf("openai url %q", got)
	}
	for _, k := range f.keys {
		if k != testKey {
			t.Fatalf("X-API-Key %q", k)
		}
	}
}

func TestSampling(t *testing.T) {
	f := newFake(t)
	f.injectPoll("/api/v1/asample", status(410, `{"detail":"promise expired"}`))
	_, _, s, _ := startModel(t, f)
	ctx := context.Background()
	sc, err := s.CreateSamplingSession(ctx, "tinker://sess:train:0/sampler_weights/000003", "")
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultSamplingParams()
	p.NumSamples, p.MaxTokens, p.Temperature, p.Stop, p.TopkPromptLogprobs, p.PromptLogprobs = 2, 16, 0.7, []string{"\n\nUser:"}, 2, true
	seed := int64(42)
	p.Seed = &seed
	res, err := sc.Sample(ctx, []int32{1, 2}, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sequences) != 1 || res.Sequences[0].StopReason != "length" || !reflect.DeepEqual(res.Sequences[0].Tokens, []int32{5, 6}) {
		t.Errorf("sequences %+v", res.Sequences)
	}
	if _, ok := res.PromptLogprob(0); ok || res.TopkPromptLogprobs[0] != nil || len(res.TopkPromptLogprobs[1]) != 2 {
		t.Errorf("prompt logprobs %v / %v", res.PromptLogprobs, res.TopkPromptLogprobs)
	}
	subs := f.submissions("/api/v1/asample")
	// 410 resent the sample; sampling takes a fresh seq_id as the SDK does.
	if len(subs) != 2 || subs[0].seq != 0 || subs[1].seq != 1 {
		t.Fatalf("asample submissions %+v", subs)
	}
	b := subs[0].body
	spj := b["sampling_params"].(map[string]any)
	if b["num_samples"] != 2.0 || b["topk_prompt_logprobs"] != 2.0 || b["prompt_logprobs"] != true || spj["max_tokens"] != 16.0 ||
		spj["temperature"] != 0.7 || spj["seed"] != 42.0 || !reflect.DeepEqual(spj["stop"], []any{"\n\nUser:"}) || spj["top_k"] != -1.0 {
		t.Errorf("asample body %v", b)
	}
}

func TestResubmitAfter410KeepsSeqID(t *testing.T) {
	f := newFake(t)
	_, _, _, m := startModel(t, f)
	f.injectPoll("/api/v1/optim_step", status(410, `{"detail":"gone"}`))
	if _, err := m.OptimStep(context.Background(), DefaultAdam()); err != nil {
		t.Fatal(err)
	}
	subs := f.submissions("/api/v1/optim_step")
	if len(subs) != 2 || subs[0].seq != 1 || subs[1].seq != 1 {
		t.Fatalf("optim_step submissions %+v, want seq_id 1 twice", subs)
	}
	// The next request continues the sequence.
	if _, err := m.OptimStep(context.Background(), DefaultAdam()); err != nil {
		t.Fatal(err)
	}
	if subs := f.submissions("/api/v1/optim_step"); subs[2].seq != 2 {
		t.Fatalf("seq after resubmit %d", subs[2].seq)
	}

	// Endless 410s end with ErrPromiseExpired.
	gone := status(410, `{}`)
	for i := 0; i < 4; i++ {
		f.injectPoll("/api/v1/optim_step", gone)
	}
	_, err := m.OptimStep(context.Background(), DefaultAdam())
	if !errors.Is(err, ErrPromiseExpired) {
		t.Fatalf("err %v", err)
	}
}

func TestBackoffHonoursRetryAfter(t *testing.T) {
	f := newFake(t)
	_, clk, _, m := startModel(t, f)
	before := len(clk.slept())
	f.injectPoll("/api/v1/optim_step",
		status(429, `{"detail":"slow down"}`, "Retry-After", "7"),
		status(503, ``),
		drop,
		status(429, ``, "Retry-After-Ms", "1500"),
		status(500, `boom`))
	if _, err := m.OptimStep(context.Background(), DefaultAdam()); err != nil {
		t.Fatal(err)
	}
	got := clk.slept()[before:]
	// Retry-After 7 s; 503 without a hint: the outage policy's jittered
	// backoff, at most 2^1 s; dropped connection at most 2^2 s;
	// Retry-After-Ms 1.5 s; 500: at most 2^4 s.
	want := []time.Duration{7 * time.Second, 2 * time.Second, 4 * time.Second, 1500 * time.Millisecond, 16 * time.Second}
	exact := []bool{true, false, false, true, false}
	if len(got) != len(want) {
		t.Fatalf("sleeps %v, want %v", got, want)
	}
	for i := range want {
		if (exact[i] && got[i] != want[i]) || got[i] > want[i] || got[i] < 0 {
			t.Fatalf("sleeps %v, want %v (those without Retry-After at most)", got, want)
		}
	}
	if subs := f.submissions("/api/v1/optim_step"); len(subs) != 1 {
		t.Fatalf("poll errors must not resubmit: %d submissions", len(subs))
	}
}

func TestJitterScalesBackoff(t *testing.T) {
	c := &Client{jitter: func() float64 { return 0.999 }}
	if d := c.backoff(0); d <= 750*time.Millisecond || d > time.Second {
		t.Fatalf("backoff %v outside (0.75 s, 1 s]", d)
	}
	c.jitter = func() float64 { return 0 }
	if d := c.backoff(10); d != 30*time.Second {
		t.Fatalf("cap %v", d)
	}
}

func TestCategorizedErrorIsFinal(t *testing.T) {
	f := newFake(t)
	_, clk, _, m := startModel(t, f)
	before := len(clk.slept())
	f.injectPoll("/api/v1/forward_backward", status(200, `{"error":"NonFiniteInTensor: weights contain NaN","category":"user"}`))
	_, err := m.ForwardBackward(context.Background(), []Datum{datum(2)}, "cross_entropy", nil)
	var rf *RequestFailedError
	if !errors.As(err, &rf) || rf.Category != "user" || !strings.Contains(err.Error(), "NonFiniteInTensor") || !strings.Contains(err.Error(), "sess:train:0") {
		t.Fatalf("err %v", err)
	}
	if !errors.Is(err, ErrPermanent) || Temporary(err) {
		t.Fatal("a categorized failure must be permanent")
	}
	if n := len(f.submissions("/api/v1/forward_backward")); n != 1 {
		t.Fatalf("%d submissions", n)
	}
	for id, ff := range f.futures {
		if ff.route == "/api/v1/forward_backward" && ff.polls != 1 {
			t.Fatalf("%s polled %d times", id, ff.polls)
		}
	}
	if len(clk.slept()) != before {
		t.Fatal("slept before failing")
	}
	noKeyIn(t, err)
}

func TestSubmissionRetries(t *testing.T) {
	f := newFake(t)
	_, clk, _, m := startModel(t, f)
	before := len(clk.slept())
	f.injectSubmit("/api/v1/optim_step", drop, status(502, `bad gateway`), status(400, ``))
	if _, err := m.OptimStep(context.Background(), DefaultAdam()); err != nil {
		t.Fatal(err)
	}
	if subs := f.submissions("/api/v1/optim_step"); len(subs) != 1 || subs[0].seq != 1 {
		t.Fatalf("submissions %+v", subs)
	}
	if got := clk.slept()[before:]; len(got) != 3 {
		t.Fatalf("sleeps %v", got)
	}
	// A real 400 is final and permanent.
	f.injectSubmit("/api/v1/optim_step", status(400, `{"detail":"bad adam params"}`))
	_, err := m.OptimStep(context.Background(), DefaultAdam())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Message != "bad adam params" || ae.ModelID != "sess:train:0" || !errors.Is(err, ErrPermanent) || Temporary(err) {
		t.Fatalf("err %v", err)
	}
	noKeyIn(t, err)
}

func TestRetryBudgetEnds(t *testing.T) {
	f := newFake(t)
	_, _, _, m := startModel(t, f)
	for i := 0; i < 40; i++ {
		f.injectSubmit("/api/v1/optim_step", status(503, `{"detail":"down"}`))
	}
	_, err := m.OptimStep(context.Background(), DefaultAdam())
	if err == nil || !Temporary(err) || errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v", err)
	}
}

func TestCreateModelMaybeCreated(t *testing.T) {
	f := newFake(t)
	c, _ := newTestClient(t, f)
	s, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The first attempt's connection drops (the server may have acted),
	// the retry finds the model already there.
	f.injectSubmit("/api/v1/create_model", drop, status(409, `{"detail":"model exists"}`))
	_, err = s.CreateLoRAModel(context.Background(), LoRAConfig{BaseModel: "Qwen/Qwen3-8B"})
	if !errors.Is(err, ErrMaybeCreated) || !strings.Contains(err.Error(), "sess:train:0") || Temporary(err) {
		t.Fatalf("err %v", err)
	}
	// A clean refusal is not ambiguous.
	f.injectSubmit("/api/v1/create_model", status(400, `{"detail":"base_model is required"}`))
	_, err = s.CreateLoRAModel(context.Background(), LoRAConfig{BaseModel: "x"})
	if errors.Is(err, ErrMaybeCreated) || !errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v", err)
	}
	if _, err := s.CreateLoRAModel(context.Background(), LoRAConfig{BaseModel: "x", Rank: 12}); err == nil {
		t.Fatal("rank 12 accepted")
	}
}

func TestSaveConflictAfterRetryIsSaved(t *testing.T) {
	f := newFake(t)
	_, _, _, m := startModel(t, f)
	f.injectSubmit("/api/v1/save_weights", status(504, `{"detail":"Timeout while publishing request"}`), status(409, `{"detail":"exists"}`))
	p, err := m.SaveState(context.Background(), "final", 0)
	if err != nil || p != "tinker://sess:train:0/weights/final" {
		t.Fatalf("%q %v", p, err)
	}
	// A first-attempt 409 is a real conflict.
	f.injectSubmit("/api/v1/save_weights", status(409, `{"detail":"exists"}`))
	if _, err := m.SaveState(context.Background(), "final", 0); err == nil || !errors.Is(err, ErrPermanent) {
		t.Fatalf("err %v", err)
	}
}

func TestBillingPause(t *testing.T) {
	f := newFake(t)
	_, clk, _, m := startModel(t, f)
	// Blocked for three polls, then paid: the request completes.
	f.injectPoll("/api/v1/optim_step", status(402, `{"detail":"billing"}`), status(402, ``), status(402, ``))
	before := len(clk.slept())
	if _, err := m.OptimStep(context.Background(), DefaultAdam()); err != nil {
		t.Fatal(err)
	}
	if got := clk.slept()[before:]; !reflect.DeepEqual(got, []time.Duration{5 * time.Second, 5 * time.Second, 5 * time.Second}) {
		t.Fatalf("sleeps %v", got)
	}
	// Blocked beyond the server's pause limit (here 12 s): ErrBilling.
	f.mu.Lock()
	f.cfg["billing_exception_max_pause_duration_sec"] = 12
	f.mu.Unlock()
	if _, err := m.c.FetchConfig(context.Background()); err != nil {
		t.Fatal(err)
	}
	var fs []fault
	for i := 0; i < 10; i++ {
		fs = append(fs, status(402, `{"detail":"payment required"}`))
	}
	f.injectPoll("/api/v1/optim_step", fs...)
	_, err := m.OptimStep(context.Background(), DefaultAdam())
	if !errors.Is(err, ErrBilling) || !strings.Contains(err.Error(), "payment required") {
		t.Fatalf("err %v", err)
	}
	// Submissions honour the pause too.
	f.injectSubmit("/api/v1/optim_step", fs...)
	if _, err := m.OptimStep(context.Background(), DefaultAdam()); !errors.Is(err, ErrBilling) {
		t.Fatalf("submit err %v", err)
	}
}

func TestNotFound(t *testing.T) {
	f := newFake(t)
	c, _, _, _ := startModel(t, f)
	_, err := c.Model("sess:train:9", 0).GetInfo(context.Background())
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrPermanent) || !strings.Contains(err.Error(), "sess:train:9") {
		t.Fatalf("err %v", err)
	}
	noKeyIn(t, err)
}

func TestChunkingAndMetricMerge(t *testing.T) {
	f := newFake(t)
	f.cfg["fwdbwd_max_chunk_len"] = 2
	_, _, _, m := startModel(t, f)
	data := []Datum{datum(1), datum(1), datum(1), datum(1), datum(1)}
	res, err := m.ForwardBackward(context.Background(), data, "cross_entropy", map[string]float64{"x": 1})
	if err != nil {
		t.Fatal(err)
	}
	subs := f.submissions("/api/v1/forward_backward")
	var seqs, sizes []int
	for _, s := range subs {
		seqs, sizes = append(seqs, s.seq), append(sizes, len(s.fb.Data))
	}
	if !reflect.DeepEqual(seqs, []int{1, 2, 3}) || !reflect.DeepEqual(sizes, []int{2, 2, 1}) {
		t.Fatalf("seqs %v sizes %v", seqs, sizes)
	}
	if len(res.LossFnOutputs) != 5 {
		t.Fatalf("%d outputs", len(res.LossFnOutputs))
	}
	// loss:sum adds up (2+2+1); tokens:mean is weighted by datums: (2*2+2*2+1*1)/5.
	if res.Metrics["loss:sum"] != 5 || res.Metrics["tokens:mean"] != 9.0/5 {
		t.Fatalf("metrics %v", res.Metrics)
	}
	// Byte limit: each datum is 4+8+4 = 16 bytes; 40 bytes fit two.
	if got := chunkData(data, 100, 40); len(got) != 3 {
		t.Fatalf("byte chunking %d", len(got))
	}
}

func TestHeartbeat(t *testing.T) {
	f := newFake(t)
	f.heartbeatOK = 3
	c, clk := newTestClient(t, f)
	s, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	err = s.Heartbeat(context.Background())
	if !errors.Is(err, ErrSessionDead) || !errors.Is(err, ErrNotFound) || !errors.Is(s.Err(), ErrSessionDead) {
		t.Fatalf("err %v", err)
	}
	for _, d := range clk.slept() {
		if d != HeartbeatInterval {
			t.Fatalf("slept %v", d)
		}
	}
	if f.beats != 4 {
		t.Fatalf("%d beats", f.beats)
	}
	// A cancelled context ends the loop with its error.
	f.heartbeatOK = 1 << 30
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Heartbeat(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

func TestHeartbeatToleratesFailures(t *testing.T) {
	f := newFake(t)
	f.heartbeatOK = 1 << 30
	c, _ := newTestClient(t, f)
	s, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f.injectSubmit("/api/v1/session_heartbeat", drop, status(500, ``), status(503, ``))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Three failed beats (dropped, 500, 503) are tolerated; the fourth
	// beat succeeds and the fifth gets a 404.
	f.mu.Lock()
	f.heartbeatOK = 1
	f.mu.Unlock()
	err = s.Heartbeat(ctx)
	if !errors.Is(err, ErrSessionDead) {
		t.Fatalf("err %v", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.beats != 2 {
		t.Fatalf("beats %d reached the handler", f.beats)
	}
}

var testJWT = "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"u","exp":4102444800}`)) + ".sig"

func TestJWTExchange(t *testing.T) {
	f := newFake(t)
	f.cfg["pjwt_auth_enabled"] = true
	_, _, _, _ = startModel(t, f)
	f.mu.Lock()
	defer f.mu.Unlock()
	// config and auth/token with the API key, everything after with the JWT.
	if f.keys[0] != testKey || f.keys[1] != testKey {
		t.Fatalf("first keys %q %q", f.keys[0], f.keys[1])
	}
	for _, k := range f.keys[2:] {
		if k != testJWT {
			t.Fatalf("key %q, want the JWT", k)
		}
	}
}

func TestKeyNeverPrinted(t *testing.T) {
	c, err := New(Options{APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%v %+v %#v", c, c, c); strings.Contains(s, testKey) {
		t.Fatal("client formatting leaks the key")
	}
	if _, err := New(Options{APIKey: "sk-wrong"}); err == nil || strings.Contains(err.Error(), "sk-wrong") {
		t.Fatalf("err %v", err)
	}
	// A network failure names the route, not the key.
	c2, _ := New(Options{APIKey: testKey, BaseURL: "http://127.0.0.1:1", Sleep: func(context.Context, time.Duration) error { return errors.New("stop") }})
	_, err = c2.CreateSession(context.Background())
	if err == nil || !strings.Contains(err.Error(), "/api/v1/create_session") {
		t.Fatalf("err %v", err)
	}
	noKeyIn(t, err)
}

func TestTemporary(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{&APIError{Status: 503}, true},
		{&APIError{Status: 429}, true},
		{&APIError{Status: 404}, false},
		{&transportError{route: "/x", err: io.EOF}, true},
		{&RequestFailedError{Category: "server"}, false},
		{fmt.Errorf("%w: x", ErrMaybeCreated), false},
		{context.Canceled, false},
	} {
		if got := Temporary(tc.err); got != tc.want {
			t.Errorf("Temporary(%v) = %v", tc.err, got)
		}
	}
}
