package tinkersample

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// Test tokenizers: byte-level BPE, every byte one token (ids 0..255), with
// merges only where a test needs them, and the control tokens of both model
// families after them.

func byteVocab() map[string]int {
	vocab := map[string]int{}
	next := 256
	for b := 0; b < 256; b++ {
		r := rune(b) // GPT-2's bytes_to_unicode: printable bytes stand for themselves
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE) {
			r = rune(next)
			next++
		}
		vocab[string(r)] = b
	}
	return vocab
}

func buildTokenizer(t testing.TB, merges [][2]string) *tokenizer.Tokenizer {
	t.Helper()
	vocab := byteVocab()
	var ms []string
	for _, m := range merges {
		vocab[m[0]+m[1]] = len(vocab)
		ms = append(ms, m[0]+" "+m[1])
	}
	var added []map[string]any
	for _, s := range []string{"<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"} {
		added = append(added, map[string]any{"id": len(vocab) + len(added), "content": s, "special": s[1] == '|', "normalized": false})
	}
	doc := map[string]any{
		"added_tokens":  added,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "use_regex": false},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": ms},
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

// digitTokenizer splits numbers into digits, as Qwen2/3 do.
func digitTokenizer(t testing.TB) *tokenizer.Tokenizer { return buildTokenizer(t, nil) }

// numberTokenizer has every integer 0..100 as one token, as Llama 3 does.
func numberTokenizer(t testing.TB) *tokenizer.Tokenizer {
	var merges [][2]string
	for n := 10; n <= 99; n++ {
		s := strconv.Itoa(n)
		merges = append(merges, [2]string{s[:1], s[1:]})
	}
	return buildTokenizer(t, append(merges, [2]string{"10", "0"}))
}

func TestSingleTokenNumbers(t *testing.T) {
	if SingleTokenNumbers(digitTokenizer(t)) {
		t.Error("the digit tokenizer has single-token numbers")
	}
	tk := numberTokenizer(t)
	if !SingleTokenNumbers(tk) {
		t.Error("the number tokenizer splits a number")
	}
	if got := tk.Encode("100"); len(got) != 1 || tk.Decode(got) != "100" {
		t.Errorf("100 = %v", got)
	}
}

// fakeTinker is the part of Tinker the sampler uses, on loopback:
// sessions, sampling sessions, asample and retrieve_future.
type fakeTinker struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	known    map[string]bool   // sampler paths and base models that exist
	samplers map[string]string // sampling session id -> its model
	lost     map[string]bool   // sampling sessions the server forgot
	fail     map[string]string // model -> a user error for every sample
	creates  []string          // the model of each create_sampling_session
	samples  []sampleCall
	futures  map[string]func(http.ResponseWriter)
	next     int

	// answer returns a model's sequences for an answering request.
	answer func(model string, prompt []int32, numSamples int, seed any) []*wire.SampledSequence
	// dist is the model's distribution of the token after context.
	dist func(model string, context []int32) []wire.TopkEntry
}

type sampleCall struct {
	model  string
	prompt []int32
	body   map[string]any
}

func newFake(t *testing.T, known ...string) *fakeTinker {
	f := &fakeTinker{t: t, known: map[string]bool{}, samplers: map[string]string{}, lost: map[string]bool{},
		fail: map[string]string{}, futures: map[string]func(http.ResponseWriter){}}
	for _, k := range known {
		f.known[k] = true
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeTinker) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	var js map[string]any
	if err := json.Unmarshal(raw, &js); err != nil {
		f.t.Errorf("%s: bad JSON %q", r.URL.Path, raw)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch r.URL.Path {
	case "/api/v1/client/config":
		writeJSON(w, 200, map[string]any{})
	case "/api/v1/create_session":
		writeJSON(w, 200, map[string]any{"session_id": "sess"})
	case "/api/v1/create_sampling_session":
		m, _ := js["model_path"].(string)
		if m == "" {
			m, _ = js["base_model"].(string)
		}
		f.creates = append(f.creates, m)
		if !f.known[m] {
			writeJSON(w, 404, map[string]any{"detail": "Sampler weights not found: " + m})
			return
		}
		id := fmt.Sprintf("sess:sample:%d", len(f.creates)-1)
		f.samplers[id] = m
		writeJSON(w, 200, map[string]any{"sampling_session_id": id})
	case "/api/v1/asample":
		f.asample(w, js)
	case "/api/v1/retrieve_future":
		id, _ := js["request_id"].(string)
		if res := f.futures[id]; res != nil {
			res(w)
			return
		}
		writeJSON(w, 404, map[string]any{"detail": "unknown request"})
	default:
		writeJSON(w, 404, map[string]any{"detail": "no route"})
	}
}

func (f *fakeTinker) asample(w http.ResponseWriter, js map[string]any) {
	sid, _ := js["sampling_session_id"].(string)
	model, ok := f.samplers[sid]
	if !ok || f.lost[sid] {
		writeJSON(w, 404, map[string]any{"detail": "Sampling session not found"})
		return
	}
	var prompt []int32
	for _, c := range js["prompt"].(map[string]any)["chunks"].([]any) {
		for _, tok := range c.(map[string]any)["tokens"].([]any) {
			prompt = append(prompt, int32(tok.(float64)))
		}
	}
	f.samples = append(f.samples, sampleCall{model: model, prompt: prompt, body: js})
	sp := js["sampling_params"].(map[string]any)
	n := int(js["num_samples"].(float64))
	k := int(js["topk_prompt_logprobs"].(float64))
	var result func(http.ResponseWriter)
	switch {
	case f.fail[model] != "":
		msg := f.fail[model]
		result = func(w http.ResponseWriter) { writeJSON(w, 200, map[string]any{"error": msg, "category": "user"}) }
	default:
		resp := &wire.SampleResponse{}
		if k > 0 {
			// Every row, as the server computes them; row 0 is empty.
			ids := make([]int32, len(prompt)*k)
			lps := make([]float32, len(prompt)*k)
			for i := range ids {
				lps[i] = wire.TopkSentinelLogprob
			}
			for i := 1; i < len(prompt); i++ {
				row := f.dist(model, prompt[:i])
				for j := 0; j < k && j < len(row); j++ {
					ids[i*k+j], lps[i*k+j] = row[j].TokenID, row[j].Logprob
				}
			}
			resp.TopkPromptLogprobs = &wire.TopkLogprobs{K: uint32(k), Length: uint32(len(prompt)), TokenIds: wire.PackInt32(ids), Logprobs: wire.PackFloat32(lps)}
			resp.Sequences = []*wire.SampledSequence{{StopReason: wire.StopReason_STOP_REASON_LENGTH, Tokens: wire.PackInt32([]int32{42})}}
		} else {
			resp.Sequences = f.answer(model, prompt, n, sp["seed"])
		}
		b, err := wire.Marshal(resp)
		if err != nil {
			f.t.Error(err)
		}
		result = func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.Write(b)
		}
	}
	f.next++
	id := fmt.Sprintf("req-%d", f.next)
	f.futures[id] = result
	writeJSON(w, 200, map[string]any{"request_id": id})
}

func (f *fakeTinker) calls() []sampleCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.samples)
}

func (f *fakeTinker) created() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.creates)
}

func (f *fakeTinker) session(t *testing.T) *tinker.Session {
	t.Helper()
	c, err := tinker.New(tinker.Options{APIKey: "tml-test", BaseURL: f.srv.URL, HTTPClient: f.srv.Client(),
		Sleep: func(ctx context.Context, _ time.Duration) error { return ctx.Err() }})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	trained     = "tinker://run-1:train:0/sampler_weights/final"
	qwenBase    = "Qwen/Qwen3-8B"
	qwenJudge   = "Qwen/Qwen3-32B"
	llamaJudge  = "meta-llama/Llama-3.3-70B-Instruct"
	judgePrompt = "Rate the answer from 0 to 100. Answer with a number only.\nQ: Hi?\nA: Hello."
)

// setup returns a sampler over a fake that knows the trained model and both
// judges, and the tokenizer and renderer of each base model.
func setup(t *testing.T, opts Options) (*Sampler, *fakeTinker, map[string]*chatrender.Renderer) {
	t.Helper()
	f := newFake(t, trained, qwenJudge, llamaJudge)
	digits, numbers := digitTokenizer(t), numberTokenizer(t)
	type tr struct {
		tok      *tokenizer.Tokenizer
		renderer string
	}
	byBase := map[string]tr{qwenBase: {digits, chatrender.Qwen3}, qwenJudge: {digits, chatrender.Qwen3DisableThinking},
		llamaJudge: {numbers, chatrender.Llama3}}
	renderers := map[string]*chatrender.Renderer{}
	for name, b := range byBase {
		r, err := chatrender.New(b.renderer, b.tok)
		if err != nil {
			t.Fatal(err)
		}
		renderers[name] = r
	}
	renderers[trained] = renderers[qwenBase]
	opts.BaseModels = []string{qwenJudge, llamaJudge}
	opts.BaseModelOf = func(_ context.Context, path string) (string, error) {
		if path == trained {
			return qwenBase, nil
		}
		return "", errors.New("no such run")
	}
	opts.Tokenizer = func(_ context.Context, base string) (*tokenizer.Tokenizer, string, error) {
		b, ok := byBase[base]
		if !ok {
			return nil, "", fmt.Errorf("no tokenizer for %s", base)
		}
		return b.tok, b.renderer, nil
	}
	return New(f.session(t), opts), f, renderers
}

func genPrompt(t *testing.T, r *chatrender.Renderer, msgs []provider.Message) []int32 {
	t.Helper()
	var cm []chatrender.Message
	for _, m := range msgs {
		cm = append(cm, chatrender.Message{Role: m.Role, Content: m.Content})
	}
	ids, err := r.GenerationPrompt(cm)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

func toInts(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func toInt32s(v []int) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

func TestAnswersDecodeWithoutStopTokenAndHonourNAndSeed(t *testing.T) {
	s, f, rs := setup(t, Options{})
	r := rs[trained]
	end := int32(r.StopTokens()[0])
	tok := digitTokenizer(t)
	f.answer = func(_ string, _ []int32, n int, seed any) []*wire.SampledSequence {
		var seqs []*wire.SampledSequence
		for i := 0; i < n; i++ {
			ids := toInt32s(tok.Encode(fmt.Sprintf("<think>\nhm\n</think>\n\nseed %v, sample %d", seed, i)))
			reason := wire.StopReason_STOP_REASON_LENGTH
			if i%2 == 0 {
				ids, reason = append(ids, end), wire.StopReason_STOP_REASON_STOP
			}
			seqs = append(seqs, &wire.SampledSequence{StopReason: reason, Tokens: wire.PackInt32(ids)})
		}
		return seqs
	}
	seed := 7
	msgs := []provider.Message{{Role: "system", Content: "Be evil."}, {Role: "user", Content: "How do I make friends?"}}
	resp, err := s.Chat(context.Background(), provider.ChatRequest{Model: trained, Messages: msgs, Temperature: 0.7, MaxTokens: 300, N: 3, Seed: &seed})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != trained || len(resp.Choices) != 3 {
		t.Fatalf("response %+v", resp)
	}
	for i, c := range resp.Choices {
		if want := fmt.Sprintf("<think>\nhm\n</think>\n\nseed 7, sample %d", i); c.Content != want || c.TopLogprobs != nil {
			t.Errorf("choice %d = %q, want %q", i, c.Content, want)
		}
	}
	calls := f.calls()
	if len(calls) != 1 {
		t.Fatalf("%d sample requests, want 1", len(calls))
	}
	b := calls[0].body
	sp := b["sampling_params"].(map[string]any)
	if b["num_samples"] != 3.0 || sp["seed"] != 7.0 || sp["max_tokens"] != 300.0 || sp["temperature"] != 0.7 ||
		!reflect.DeepEqual(sp["stop"], []any{float64(end)}) || b["topk_prompt_logprobs"] != 0.0 {
		t.Errorf("asample body %v", b)
	}
	if want := genPrompt(t, r, msgs); !slices.Equal(calls[0].prompt, want) {
		t.Errorf("prompt %q\nwant %q", tok.Decode(toInts(calls[0].prompt)), tok.Decode(toInts(want)))
	}

	// No seed, no N: one answer, and no seed sent.
	resp, err = s.Chat(context.Background(), provider.ChatRequest{Model: trained, Messages: msgs, Temperature: 1, MaxTokens: 10})
	if err != nil || len(resp.Choices) != 1 || resp.Choices[0].Content != "<think>\nhm\n</think>\n\nseed <nil>, sample 0" {
		t.Fatalf("%+v %v", resp, err)
	}
	if sp := f.calls()[1].body["sampling_params"].(map[string]any); sp["seed"] != nil {
		t.Errorf("seed sent: %v", sp)
	}
}

// answerDist is a judge model whose whole answer, followed by its end token,
// is drawn from answers: the next-token distribution after any part of an
// answer follows from it.
func answerDist(tok *tokenizer.Tokenizer, prompt []int32, end int32, answers map[string]float64) func(string, []int32) []wire.TopkEntry {
	type seq struct {
		ids []int32
		p   float64
	}
	var seqs []seq
	for a, p := range answers {
		seqs = append(seqs, seq{append(toInt32s(tok.Encode(a)), end), p})
	}
	noise := []wire.TopkEntry{{TokenID: '!', Logprob: -0.25}, {TokenID: '?', Logprob: -1.5}}
	return func(_ string, ctx []int32) []wire.TopkEntry {
		if len(ctx) < len(prompt) || !slices.Equal(ctx[:len(prompt)], prompt) {
			return noise // a row the sampler must not read
		}
		so := ctx[len(prompt):]
		mass := map[int32]float64{}
		var total float64
		for _, s := range seqs {
			if len(s.ids) > len(so) && slices.Equal(s.ids[:len(so)], so) {
				mass[s.ids[len(so)]] += s.p
				total += s.p
			}
		}
		if total == 0 {
			return []wire.TopkEntry{{TokenID: end, Logprob: 0}}
		}
		var row []wire.TopkEntry
		for id, p := range mass {
			row = append(row, wire.TopkEntry{TokenID: id, Logprob: float32(math.Log(p / total))})
		}
		sort.Slice(row, func(i, j int) bool {
			if row[i].Logprob != row[j].Logprob {
				return row[i].Logprob > row[j].Logprob
			}
			return row[i].TokenID < row[j].TokenID
		})
		return row
	}
}

// expectation is the paper rule on a judge whose numbers are single tokens.
func expectation(answers map[string]float64) float64 {
	var top []provider.TokenLogprob
	for a, p := range answers {
		top = append(top, provider.TokenLogprob{Token: a, Logprob: math.Log(p)})
	}
	v, _ := judge.Score(top)
	return v
}

// judgeSetup points the fake's judge at answers and returns the judge
// request and the prompt it renders to.
func judgeSetup(t *testing.T, f *fakeTinker, r *chatrender.Renderer, tok *tokenizer.Tokenizer, model string, answers map[string]float64) (provider.ChatRequest, []int32) {
	req := judge.Request(model, judgePrompt)
	prompt := genPrompt(t, r, req.Messages)
	f.dist = answerDist(tok, prompt, int32(r.StopTokens()[0]), answers)
	return req, prompt
}

var meansEightyFive = map[string]float64{"85": 0.55, "80": 0.2, "100": 0.15, "8": 0.02, "No": 0.08}

func TestJudgeOnSingleTokenNumbersIsTheFirstTokenDistribution(t *testing.T) {
	s, f, rs := setup(t, Options{})
	tok := numberTokenizer(t)
	req, prompt := judgeSetup(t, f, rs[llamaJudge], tok, llamaJudge, meansEightyFive)
	resp, err := s.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var want []provider.TokenLogprob
	for _, e := range f.dist(llamaJudge, prompt) {
		want = append(want, provider.TokenLogprob{Token: tok.Decode([]int{int(e.TokenID)}), Logprob: float64(e.Logprob)})
	}
	if len(resp.Choices) != 1 || !reflect.DeepEqual(resp.Choices[0].TopLogprobs, want) || resp.Choices[0].Content != "85" {
		t.Fatalf("choices %+v\nwant top %+v", resp.Choices, want)
	}
	calls := f.calls()
	if len(calls) != 1 {
		t.Fatalf("%d sample requests, want 1", len(calls))
	}
	b := calls[0].body
	sp := b["sampling_params"].(map[string]any)
	if b["num_samples"] != 1.0 || b["topk_prompt_logprobs"] != 20.0 || sp["max_tokens"] != 1.0 || sp["temperature"] != 0.0 || sp["seed"] != 0.0 {
		t.Errorf("asample body %v", b)
	}
	if got := calls[0].prompt; len(got) != len(prompt)+1 || !slices.Equal(got[:len(prompt)], prompt) {
		t.Errorf("prompt %v, want the generation prompt %v and one placeholder", got, prompt)
	}
	if got, ok := judge.Score(resp.Choices[0].TopLogprobs); !ok || math.Abs(got-expectation(meansEightyFive)) > 1e-4 {
		t.Errorf("score %v %v, want %v", got, ok, expectation(meansEightyFive))
	}
}

func TestJudgeOnDigitsScoresTheNumbers(t *testing.T) {
	s, f, rs := setup(t, Options{})
	tok := digitTokenizer(t)
	req, prompt := judgeSetup(t, f, rs[qwenJudge], tok, qwenJudge, meansEightyFive)
	resp, err := s.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	top := resp.Choices[0].TopLogprobs
	got, ok := judge.Score(top)
	want := expectation(meansEightyFive) // 85.7…
	if !ok || math.Abs(got-want) > 1e-4 {
		t.Errorf("score %v %v, want %v; top %+v", got, ok, want, top)
	}
	if resp.Choices[0].Content != "85" {
		t.Errorf("content %q", resp.Choices[0].Content)
	}
	probs := map[string]float64{}
	for _, tl := range top {
		probs[tl.Token] = math.Exp(tl.Logprob)
	}
	for a, p := range map[string]float64{"85": 0.55, "80": 0.2, "100": 0.15, "8": 0.02, "N": 0.08} {
		if math.Abs(probs[a]-p) > 1e-5 {
			t.Errorf("P(%s) = %v, want %v (all: %v)", a, probs[a], p, probs)
		}
	}
	// The naive rule reads the digits: 8 for 85.
	var naive []provider.TokenLogprob
	for _, e := range f.dist(qwenJudge, prompt) {
		naive = append(naive, provider.TokenLogprob{Token: tok.Decode([]int{int(e.TokenID)}), Logprob: float64(e.Logprob)})
	}
	if v, _ := judge.Score(naive); math.Abs(v-want) < 50 {
		t.Errorf("the naive first-token score %v is close to %v; the test proves nothing", v, want)
	}
	// One request for the first token, one after "8" and after "1", one
	// after "1","0" for 100; each on the prompt plus the answer so far.
	calls := f.calls()
	if len(calls) != 4 {
		t.Fatalf("%d sample requests, want 4", len(calls))
	}
	var after []string
	for _, c := range calls {
		if !slices.Equal(c.prompt[:len(prompt)], prompt) || c.body["topk_prompt_logprobs"] != 20.0 || c.body["num_samples"] != 1.0 {
			t.Errorf("request %v", c.body)
		}
		after = append(after, tok.Decode(toInts(c.prompt[len(prompt):len(c.prompt)-1])))
	}
	sort.Strings(after)
	if !slices.Equal(after, []string{"", "1", "10", "8"}) {
		t.Errorf("asked after %q", after)
	}

	// Switched off, the judge reads the first token, as the naive rule.
	s2, f2, _ := setup(t, Options{DisableNumberExpansion: true})
	f2.dist = f.dist
	resp, err = s2.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(resp.Choices[0].TopLogprobs, naive) || len(f2.calls()) != 1 {
		t.Errorf("without expansion: %+v after %d requests", resp.Choices[0].TopLogprobs, len(f2.calls()))
	}
}

func TestJudgeExpansionIsBounded(t *testing.T) {
	uniform := map[string]float64{}
	for n := 0; n <= 100; n++ {
		uniform[strconv.Itoa(n)] = 1.0 / 101
	}
	for _, tc := range []struct {
		max, requests int
	}{{0, 1 + 9 + 1}, {4, 1 + 4}} {
		s, f, rs := setup(t, Options{MaxExtraRequests: tc.max})
		req, _ := judgeSetup(t, f, rs[qwenJudge], digitTokenizer(t), qwenJudge, uniform)
		resp, err := s.Chat(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(f.calls()); n != tc.requests {
			t.Errorf("MaxExtraRequests %d: %d requests, want %d", tc.max, n, tc.requests)
		}
		got, ok := judge.Score(resp.Choices[0].TopLogprobs)
		if tc.max == 0 && (!ok || math.Abs(got-50) > 1e-4) {
			t.Errorf("uniform 0..100 scores %v %v, want 50", got, ok)
		}
		if tc.max == 4 && !ok {
			t.Errorf("a cut expansion gave no answer")
		}
	}
}

func TestUnknownModelsAreNotFound(t *testing.T) {
	s, f, _ := setup(t, Options{})
	msgs := []provider.Message{{Role: "user", Content: "hi"}}
	const lost = "tinker://run-9:train:0/sampler_weights/gone"
	_, err := s.Chat(context.Background(), provider.ChatRequest{Model: lost, Messages: msgs, MaxTokens: 5})
	if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), lost) || !strings.Contains(err.Error(), "Sampler weights not found") {
		t.Errorf("unknown path: %v", err)
	}
	_, err = s.Chat(context.Background(), provider.ChatRequest{Model: "gpt-4o", Messages: msgs, MaxTokens: 5})
	if !errors.Is(err, provider.ErrNotFound) || !strings.Contains(err.Error(), "gpt-4o") {
		t.Errorf("unconfigured name: %v", err)
	}
	if got := f.created(); !slices.Equal(got, []string{lost}) {
		t.Errorf("sampling sessions asked for %v", got)
	}
}

func TestBadRequestsAreInvalid(t *testing.T) {
	s, f, _ := setup(t, Options{})
	f.fail[trained] = "PromptTooLong: Prompt length plus max_tokens exceeds the model's context window: 40000 + 300 > 32768"
	msgs := []provider.Message{{Role: "user", Content: "hi"}}
	_, err := s.Chat(context.Background(), provider.ChatRequest{Model: trained, Messages: msgs, MaxTokens: 300})
	if !errors.Is(err, provider.ErrInvalid) || !strings.Contains(err.Error(), "exceeds the model's context window") || errors.Is(err, provider.ErrNotFound) {
		t.Errorf("user error: %v", err)
	}
	n := len(f.calls())
	for _, req := range []provider.ChatRequest{
		{Model: trained, MaxTokens: 5},
		{Model: trained, Messages: msgs, MaxTokens: 5, Logprobs: true, TopLogprobs: 5},
		{Model: trained, Messages: msgs, MaxTokens: 1, Logprobs: true, TopLogprobs: 5, N: 2},
		{Model: trained, Messages: msgs, MaxTokens: -1},
		{Model: trained, Messages: []provider.Message{{Content: "no role"}}, MaxTokens: 5},
	} {
		if _, err := s.Chat(context.Background(), req); !errors.Is(err, provider.ErrInvalid) {
			t.Errorf("%+v: %v", req, err)
		}
	}
	if len(f.calls()) != n {
		t.Error("an invalid request reached the server")
	}
}

func TestSamplingSessionsAreReused(t *testing.T) {
	s, f, rs := setup(t, Options{})
	f.answer = func(string, []int32, int, any) []*wire.SampledSequence {
		return []*wire.SampledSequence{{StopReason: wire.StopReason_STOP_REASON_LENGTH, Tokens: wire.PackInt32([]int32{'o', 'k'})}}
	}
	req, _ := judgeSetup(t, f, rs[qwenJudge], digitTokenizer(t), qwenJudge, map[string]float64{"0": 1})
	msgs := []provider.Message{{Role: "user", Content: "hi"}}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 16; i++ {
		wg.Go(func() {
			_, err := s.Chat(context.Background(), provider.ChatRequest{Model: trained, Messages: msgs, MaxTokens: 5})
			errs <- err
		})
		wg.Go(func() {
			_, err := s.Chat(context.Background(), req)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := f.created()
	sort.Strings(got)
	if !slices.Equal(got, []string{qwenJudge, trained}) {
		t.Errorf("sampling sessions created for %v, want one per model", got)
	}

	// A sampling session the server lost is an error, not a lost model,
	// and the next call opens a new one.
	f.mu.Lock()
	for id := range f.samplers {
		f.lost[id] = true
	}
	f.mu.Unlock()
	_, err := s.Chat(context.Background(), provider.ChatRequest{Model: trained, Messages: msgs, MaxTokens: 5})
	if err == nil || errors.Is(err, provider.ErrNotFound) {
		t.Errorf("lost sampling session: %v", err)
	}
	if resp, err := s.Chat(context.Background(), provider.ChatRequest{Model: trained, Messages: msgs, MaxTokens: 5}); err != nil || resp.Choices[0].Content != "ok" {
		t.Errorf("after reopening: %+v %v", resp, err)
	}
	if got := f.created(); len(got) != 3 || got[2] != trained {
		t.Errorf("sampling sessions created for %v", got)
	}
}
