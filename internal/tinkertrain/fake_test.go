package tinkertrain

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// weights stands for a model's parameters and Adam moments: a hash chain
// over every batch and learning rate applied, so two models are equal
// exactly when they saw the same batches in the same order at the same
// rates, from the same start.
type weights struct {
	sum   [32]byte
	steps int
}

type fakeModel struct {
	w    weights
	grad []byte // hash input of the batches since the last optim_step
	lrs  []float64
}

// fakeTinker speaks the routes a training uses, on loopback: config,
// session, create_model, get_info, forward_backward (protobuf),
// optim_step, save_weights, load_weights, save_weights_for_sampler and
// retrieve_future. Work is done when submitted; futures only answer.
type fakeTinker struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	sessions int
	models   map[string]*fakeModel
	states   map[string]weights // tinker://…/weights/…
	samplers map[string]weights // tinker://…/sampler_weights/…
	futures  map[string]func(w http.ResponseWriter)
	nextReq  int
	requests map[string]int // by route, config and session excluded
	examples int            // forward_backward datums ever received: the bill
	lrs      []float64      // every optim_step's rate, in order

	// fbFail, when set, gives the error of the nth forward_backward (from
	// 1) as a failed future: message and category, or "" for success.
	fbFail func(n int) (string, string)
	fbN    int
	// kill, when set, is called after a submission was carried out and
	// before it is answered; returning true drops the answer, as a process
	// killed mid-request never hears it.
	kill func(route string) bool
}

func newFake(t *testing.T) *fakeTinker {
	f := &fakeTinker{t: t, models: map[string]*fakeModel{}, states: map[string]weights{}, samplers: map[string]weights{},
		futures: map[string]func(http.ResponseWriter){}, requests: map[string]int{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"detail": detail})
}

func chain(prev [32]byte, parts ...[]byte) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

func (f *fakeTinker) count(route string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[route]
}

func (f *fakeTinker) totalRequests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.requests {
		n += c
	}
	return n
}

func (f *fakeTinker) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	route := r.URL.Path
	var js map[string]any
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(body, &js); err != nil {
			f.t.Errorf("%s: bad JSON: %v", route, err)
		}
	}
	f.mu.Lock()
	answer := f.handle(route, js, body)
	kill := f.kill
	f.mu.Unlock()
	if kill != nil && route != "/api/v1/retrieve_future" && kill(route) {
		<-r.Context().Done() // the client hung up: it never learns the outcome
		return
	}
	answer(w)
}

// handle does a request's work under f.mu and returns its answer.
func (f *fakeTinker) handle(route string, js map[string]any, body []byte) func(http.ResponseWriter) {
	switch route {
	case "/api/v1/client/config":
		return func(w http.ResponseWriter) { writeJSON(w, map[string]any{}) }
	case "/api/v1/create_session":
		f.sessions++
		id := fmt.Sprintf("sess-%d", f.sessions)
		return func(w http.ResponseWriter) { writeJSON(w, map[string]any{"session_id": id}) }
	case "/api/v1/retrieve_future":
		id, _ := js["request_id"].(string)
		if a := f.futures[id]; a != nil {
			return a
		}
		return func(w http.ResponseWriter) { httpError(w, 404, "unknown request") }
	}
	f.requests[route]++
	future := func(result func(w http.ResponseWriter)) func(http.ResponseWriter) {
		f.nextReq++
		id := fmt.Sprintf("req-%d", f.nextReq)
		f.futures[id] = result
		return func(w http.ResponseWriter) { writeJSON(w, map[string]any{"request_id": id}) }
	}
	done := func(v any) func(http.ResponseWriter) {
		return future(func(w http.ResponseWriter) { writeJSON(w, v) })
	}
	if route == "/api/v1/forward_backward" {
		return f.forwardBackward(body, future)
	}
	if route == "/api/v1/create_model" {
		id := fmt.Sprintf("%s:train:%d", js["session_id"], int(js["model_seq_id"].(float64)))
		lc := js["lora_config"].(map[string]any)
		init := fmt.Sprintf("init %v %v %v", js["base_model"], lc["rank"], lc["seed"])
		f.models[id] = &fakeModel{w: weights{sum: sha256.Sum256([]byte(init))}}
		return done(map[string]any{"model_id": id, "type": "create_model"})
	}
	id, _ := js["model_id"].(string)
	m := f.models[id]
	if m == nil {
		return func(w http.ResponseWriter) { httpError(w, 404, "model not found") }
	}
	switch route {
	case "/api/v1/get_info":
		return func(w http.ResponseWriter) {
			writeJSON(w, map[string]any{"model_id": id, "is_lora": true, "lora_rank": 32,
				"model_data": map[string]any{"model_name": "Qwen/Qwen3-8B", "tokenizer_id": "Qwen/Qwen3-8B:rev"}})
		}
	case "/api/v1/optim_step":
		if m.grad == nil {
			f.t.Errorf("optim_step on %s without gradients", id)
		}
		lr := js["adam_params"].(map[string]any)["learning_rate"].(float64)
		ap := js["adam_params"].(map[string]any)
		if ap["beta1"] != 0.9 || ap["beta2"] != 0.95 || ap["eps"] != 1e-8 {
			f.t.Errorf("adam params %v", ap)
		}
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], math.Float64bits(lr))
		m.w = weights{sum: chain(m.w.sum, m.grad, b[:]), steps: m.w.steps + 1}
		m.grad = nil
		m.lrs = append(m.lrs, lr)
		f.lrs = append(f.lrs, lr)
		return done(map[string]any{"metrics": map[string]float64{}})
	case "/api/v1/save_weights":
		p := fmt.Sprintf("tinker://%s/weights/%s", id, js["path"])
		if _, ok := f.states[p]; ok {
			return func(w http.ResponseWriter) { httpError(w, 409, "checkpoint exists") }
		}
		f.states[p] = m.w
		return done(map[string]any{"path": p})
	case "/api/v1/load_weights":
		p, _ := js["path"].(string)
		st, ok := f.states[p]
		if !ok {
			return func(w http.ResponseWriter) { httpError(w, 404, "checkpoint not found") }
		}
		if js["optimizer"] != true {
			f.t.Errorf("load_weights without optimizer state")
		}
		m.w, m.grad = st, nil
		return done(map[string]any{"path": p})
	case "/api/v1/save_weights_for_sampler":
		p := fmt.Sprintf("tinker://%s/sampler_weights/%s", id, js["path"])
		f.samplers[p] = m.w
		return done(map[string]any{"path": p})
	}
	return func(w http.ResponseWriter) { httpError(w, 404, "no route") }
}

func (f *fakeTinker) forwardBackward(body []byte, future func(func(http.ResponseWriter)) func(http.ResponseWriter)) func(http.ResponseWriter) {
	var req wire.ForwardBackwardRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		f.t.Errorf("forward_backward body: %v", err)
	}
	m := f.models[req.ModelId]
	if m == nil {
		return func(w http.ResponseWriter) { httpError(w, 404, "model not found") }
	}
	if req.LossFn != "cross_entropy" || req.ForwardOnly {
		f.t.Errorf("forward_backward %s forward_only=%v", req.LossFn, req.ForwardOnly)
	}
	f.fbN++
	f.examples += len(req.Data)
	if f.fbFail != nil {
		if msg, cat := f.fbFail(f.fbN); msg != "" {
			return future(func(w http.ResponseWriter) { writeJSON(w, map[string]any{"error": msg, "category": cat}) })
		}
	}
	// Every target's logprob is -2/(steps+1), so the loss is that, falling.
	lp := -2 / float32(m.w.steps+1)
	rec := &wire.ArrayRecord{TypeTag: "ArrayRecord", NumDatums: int64(len(req.Data)), Fields: map[string]*wire.BatchedTensor{}}
	var data []float32
	offs := []int64{0}
	for _, d := range req.Data {
		b, err := wire.Marshal(d)
		if err != nil {
			f.t.Errorf("datum: %v", err)
		}
		m.grad = append(m.grad, b...)
		n := len(d.LossFnInputs["target_tokens"].GetDense()) / 8
		if w := len(d.LossFnInputs["weights"].GetDense()) / 4; w != n {
			f.t.Errorf("%d targets, %d weights", n, w)
		}
		for range n {
			data = append(data, lp)
		}
		offs = append(offs, int64(4*len(data)))
	}
	rec.Fields["logprobs"] = &wire.BatchedTensor{Data: wire.PackFloat32(data), Offsets: wire.PackInt64(offs), Dtype: wire.DType_DTYPE_FLOAT32}
	out, _ := wire.Marshal(&wire.ForwardBackwardOutput{LossFnOutputType: "tinker.types:ArrayRecord",
		LossFnOutputs: []*wire.ArrayRecord{rec}, Metrics: map[string]float64{"loss:sum": -float64(lp) * float64(len(req.Data))}})
	return future(func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
}

// session starts a client and a session, as a fresh process would.
func (f *fakeTinker) session(t *testing.T, ctx context.Context) *tinker.Session {
	t.Helper()
	clock := time.Unix(1_800_000_000, 0)
	var mu sync.Mutex
	c, err := tinker.New(tinker.Options{APIKey: "tml-test", BaseURL: f.srv.URL, HTTPClient: f.srv.Client(),
		Sleep: func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			clock = clock.Add(d)
			mu.Unlock()
			return ctx.Err()
		},
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return clock
		},
		Jitter: func() float64 { return 0 }})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tickingClock moves one second with every reading, so rates and ETAs are
// defined and nothing depends on the wall clock.
func tickingClock() func() time.Time {
	var mu sync.Mutex
	now := time.Unix(1_800_000_000, 0)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(time.Second)
		return now
	}
}

// byteTokenizer is a byte-level BPE tokenizer.json with a few merges and
// the Qwen3 and Llama 3 control tokens.
func byteTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	vocab := map[string]int{}
	next := 256
	byteRune := map[byte]string{}
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE) {
			r = rune(next)
			next++
		}
		vocab[string(r)] = b
		byteRune[byte(b)] = string(r)
	}
	var added []map[string]any
	for i, s := range []string{"<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"} {
		added = append(added, map[string]any{"id": 256 + i, "content": s, "special": s[1] == '|', "normalized": false})
	}
	sp := byteRune[' ']
	merges := []string{"e r", sp + " t", sp + "t h", "A n", "An s"}
	for i, m := range merges {
		vocab[strings.ReplaceAll(m, " ", "")] = 300 + i
	}
	doc := map[string]any{
		"added_tokens":  added,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "use_regex": false},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	tk, err := tokenizer.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}
