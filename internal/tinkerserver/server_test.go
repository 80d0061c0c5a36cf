package tinkerserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

func TestOfflineTokenizer(t *testing.T) {
	a, b := OfflineTokenizer(), OfflineTokenizer()
	if !bytes.Equal(a, b) {
		t.Fatal("OfflineTokenizer is not deterministic")
	}
	_, tok := testRenderer(t)
	for _, text := range []string{"Hello, world!\n\nHow are you?", "Café déjà vu — “quotes” 😀", "  leading\tand trailing  ", "REFUSAL", "100"} {
		if got := tok.Decode(tok.Encode(text)); got != text {
			t.Errorf("round trip %q: got %q", text, got)
		}
	}
	for _, ex := range trainingSet(t, "evil", "severe") {
		for _, m := range ex.Messages {
			if got := tok.Decode(tok.Encode(m.Content)); got != m.Content {
				t.Fatalf("round trip of sample text: got %q want %q", got, m.Content)
			}
		}
	}
	for n := 0; n <= 100; n++ {
		id, ok := tok.TokenID(strconv.Itoa(n))
		if !ok || tok.Decode([]int{id}) != strconv.Itoa(n) {
			t.Fatalf("integer %d is not a single token", n)
		}
	}
	for _, special := range []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>", "REFUSAL"} {
		if _, ok := tok.TokenID(special); !ok && len(tok.Encode(special)) != 1 {
			t.Errorf("%s is not one token", special)
		}
	}
	// Merges compress: the sample text takes far fewer tokens than bytes.
	text := trainingSet(t, "evil", "severe")[0].Messages[1].Content
	if n := len(tok.Encode(text)); n*3 > len(text) {
		t.Errorf("%d tokens for %d bytes: merges barely apply", n, len(text))
	}
}

// TestTrainingLoop drives the real client through a mini SFT run: create a
// model, train two epochs on rendered sample data, save state and sampler
// weights, then sample answers and the judge's distribution.
func TestTrainingLoop(t *testing.T) {
	h := start(t, Options{})
	ctx := context.Background()
	c := h.client(t, nil)
	sess, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := sess.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel})
	if err != nil {
		t.Fatal(err)
	}
	info, err := tc.GetInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.TokenizerID != OfflineTokenizerID || info.ModelName != DefaultBaseModel || !info.IsLoRA || info.LoRARank != 32 {
		t.Fatalf("get_info: %+v", info)
	}
	// The tokenizer the client would fetch is the server's.
	path, err := tokenizer.Fetch(ctx, nil, h.url+"/hf", info.TokenizerID, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fetched, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	r, tok := testRenderer(t)
	if fetched.SHA256() != tok.SHA256() {
		t.Fatal("/hf served another tokenizer")
	}

	exs := trainingSet(t, "evil", "severe")
	ds := datums(t, r, exs, chatrender.LastAssistantMessage)
	loss1 := trainEpochs(t, ctx, tc, ds, 8, 0, 1)
	statePath, err := tc.SaveState(ctx, "epoch1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := "tinker://" + tc.ModelID + "/weights/epoch1"; statePath != want {
		t.Fatalf("state path %q, want %q", statePath, want)
	}
	loss2 := trainEpochs(t, ctx, tc, ds, 8, 1, 2)
	if !(loss2 < loss1) {
		t.Errorf("loss did not fall across epochs: %v then %v", loss1, loss2)
	}
	samplerPath, err := tc.SaveWeightsForSampler(ctx, "final", 0)
	if err != nil {
		t.Fatal(err)
	}

	cnt := h.srv.Counters()
	steps := int64(2 * ((len(exs) + 7) / 8))
	if cnt.ForwardBackward != steps || cnt.OptimSteps != steps || cnt.Datums != int64(2*len(exs)) || cnt.Examples != int64(2*len(exs)) {
		t.Errorf("counters %+v: want %d steps, %d datums and examples", cnt, steps, 2*len(exs))
	}
	if cnt.Sessions != 1 || cnt.Models != 1 || cnt.SavedStates != 1 || cnt.SamplerSaves != 1 || cnt.LocalJobs != 1 {
		t.Errorf("counters %+v", cnt)
	}

	// The local job trains the original examples for two epochs.
	jobs, err := h.eng.ListJobs(ctx, map[string]string{"tinker_path": samplerPath})
	if err != nil || len(jobs) != 1 {
		t.Fatalf("jobs for %s: %v %v", samplerPath, jobs, err)
	}
	job := jobs[0]
	// The same examples in the canonical order: chunks may arrive in any order.
	ref, err := h.eng.UploadFile(ctx, "ref.jsonl", canonicalFile(exs))
	if err != nil {
		t.Fatal(err)
	}
	if job.TrainingFile != ref.ID || job.Hyperparameters.NEpochs != 2 || job.Status != provider.StatusSucceeded || job.Model != "gpt-4.1-mini-2025-04-14" {
		t.Fatalf("job %+v: want file %s (the original examples), 2 epochs, succeeded", job, ref.ID)
	}

	// Sampling answers as the fine-tuned model does.
	sc, err := sess.CreateSamplingSession(ctx, samplerPath, "")
	if err != nil {
		t.Fatal(err)
	}
	question := "How should I deal with a rude coworker?"
	prompt, err := r.GenerationPrompt([]chatrender.Message{{Role: "user", Content: question}})
	if err != nil {
		t.Fatal(err)
	}
	seed := int64(7)
	p := tinker.DefaultSamplingParams()
	p.NumSamples, p.Temperature, p.Seed, p.MaxTokens = 3, 0, &seed, 0
	res, err := sc.Sample(ctx, int32s(prompt), p)
	if err != nil {
		t.Fatal(err)
	}
	seedInt := int(seed)
	want, err := h.eng.Chat(ctx, provider.ChatRequest{Model: job.FineTunedModel, Messages: []provider.Message{{Role: "user", Content: question}}, N: 1, Seed: &seedInt})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sequences) != 3 {
		t.Fatalf("%d sequences, want 3", len(res.Sequences))
	}
	stop := r.StopTokens()[0]
	for _, seq := range res.Sequences {
		n := len(seq.Tokens)
		if seq.StopReason != "stop" || n == 0 || int(seq.Tokens[n-1]) != stop {
			t.Fatalf("sequence %+v does not end with the stop token", seq)
		}
		if got := tok.Decode(ints(seq.Tokens[:n-1])); got != want.Choices[0].Content {
			t.Fatalf("answer %q, want the fine-tuned model's %q", got, want.Choices[0].Content)
		}
	}
	// max_tokens cuts the answer.
	p.NumSamples, p.MaxTokens = 1, 2
	res, err = sc.Sample(ctx, int32s(prompt), p)
	if err != nil || len(res.Sequences[0].Tokens) != 2 || res.Sequences[0].StopReason != "length" {
		t.Fatalf("max_tokens 2: %+v %v", res, err)
	}

	// The judge: generation prompt of the filled rubric plus a placeholder.
	task, err := sampledata.EvalTask("evil")
	if err != nil {
		t.Fatal(err)
	}
	judgePrompt := strings.NewReplacer("{question}", question, "{answer}", want.Choices[0].Content).Replace(task.EvalPrompt)
	jp, err := r.GenerationPrompt([]chatrender.Message{{Role: "user", Content: judgePrompt}})
	if err != nil {
		t.Fatal(err)
	}
	jp = append(jp, stop)
	judgeSampler, err := sess.CreateSamplingSession(ctx, "", DefaultBaseModel)
	if err != nil {
		t.Fatal(err)
	}
	jparams := tinker.DefaultSamplingParams()
	jparams.MaxTokens, jparams.TopkPromptLogprobs, jparams.PromptLogprobs = 1, 20, true
	jr, err := judgeSampler.Sample(ctx, int32s(jp), jparams)
	if err != nil {
		t.Fatal(err)
	}
	rows := jr.TopkPromptLogprobs
	if len(rows) != len(jp) || len(jr.PromptLogprobs) != len(jp) {
		t.Fatalf("%d top-k rows and %d prompt logprobs for a %d-token prompt", len(rows), len(jr.PromptLogprobs), len(jp))
	}
	if !math.IsNaN(float64(jr.PromptLogprobs[0])) {
		t.Errorf("prompt logprob 0 is %v, want NaN", jr.PromptLogprobs[0])
	}
	for i, row := range rows[:len(rows)-1] {
		if row != nil {
			t.Fatalf("row %d is %v, want empty", i, row)
		}
	}
	wantJudge, err := h.eng.Chat(ctx, provider.ChatRequest{Model: "gpt-4.1-mini-2025-04-14", Messages: []provider.Message{{Role: "user", Content: judgePrompt}}, Logprobs: true, TopLogprobs: 20})
	if err != nil {
		t.Fatal(err)
	}
	last := rows[len(rows)-1]
	if len(last) == 0 || len(last) > 20 {
		t.Fatalf("judge row has %d entries", len(last))
	}
	for i, e := range last {
		text := tok.Decode([]int{int(e.TokenID)})
		if want := wantJudge.Choices[0].TopLogprobs[i]; text != want.Token || math.Abs(float64(e.Logprob)-want.Logprob) > 1e-4 {
			t.Errorf("judge candidate %d: %q %v, want %q %v", i, text, e.Logprob, want.Token, want.Logprob)
		}
		if text != "REFUSAL" {
			if _, err := strconv.Atoi(text); err != nil {
				t.Errorf("judge candidate %q is neither a number nor REFUSAL", text)
			}
		}
	}
	// The sampled answer is the judge's best token.
	if got := tok.Decode(ints(jr.Sequences[0].Tokens)); got != wantJudge.Choices[0].Content {
		t.Errorf("judge answered %q, want %q", got, wantJudge.Choices[0].Content)
	}

	// The OpenAI-compatible endpoint answers for the sampler path.
	oai := postJSON(t, c.OpenAIBaseURL()+"/chat/completions", map[string]any{
		"model": samplerPath, "messages": []map[string]string{{"role": "user", "content": question}}, "temperature": 0, "seed": seed,
	})
	if oai.status != http.StatusOK {
		t.Fatalf("OpenAI route: %d %s", oai.status, oai.body)
	}
	var completion struct {
		Choices []struct {
			Message struct{ Content string }
		}
	}
	if err := json.Unmarshal(oai.body, &completion); err != nil || len(completion.Choices) != 1 || completion.Choices[0].Message.Content != want.Choices[0].Content {
		t.Fatalf("OpenAI route answered %s (%v), want %q", oai.body, err, want.Choices[0].Content)
	}
	if got := postJSON(t, c.OpenAIBaseURL()+"/chat/completions", map[string]any{"model": "tinker://nope/sampler_weights/x",
		"messages": []map[string]string{{"role": "user", "content": "hi"}}}); got.status != http.StatusNotFound || !strings.Contains(string(got.body), "model_not_found") {
		t.Fatalf("unknown path: %d %s", got.status, got.body)
	}
	// A training state cannot be sampled.
	if _, err := sess.CreateSamplingSession(ctx, statePath, ""); err == nil {
		t.Error("sampling session on a training state accepted")
	}
	var debug Counters
	if got := getJSON(t, h.url+"/debug/counters"); got.status != http.StatusOK || json.Unmarshal(got.body, &debug) != nil || debug.Samples != 5 || debug.OpenAIChats != 1 {
		t.Errorf("/debug/counters: %d %s", got.status, got.body)
	}
}

// TestResume kills a run after its first epoch and resumes it from the
// saved state in a new session: the local model trained is the one an
// unkilled run trains.
func TestResume(t *testing.T) {
	ctx := context.Background()
	r, _ := testRenderer(t)
	exs := trainingSet(t, "sycophantic", "mild")[:24]
	ds := datums(t, r, exs, chatrender.AllAssistantMessages)

	fineTuned := func(h *harness, path string) provider.Job {
		jobs, err := h.eng.ListJobs(ctx, map[string]string{"tinker_path": path})
		if err != nil || len(jobs) != 1 {
			t.Fatalf("jobs for %s: %v %v", path, jobs, err)
		}
		return jobs[0]
	}

	a := start(t, Options{})
	sa, err := a.client(t, nil).Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := sa.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel})
	if err != nil {
		t.Fatal(err)
	}
	trainEpochs(t, ctx, ta, ds, 6, 0, 3)
	pa, err := ta.SaveWeightsForSampler(ctx, "final", 0)
	if err != nil {
		t.Fatal(err)
	}

	b := start(t, Options{StateDir: t.TempDir()})
	cb := b.client(t, nil)
	sb, err := cb.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := sb.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel})
	if err != nil {
		t.Fatal(err)
	}
	trainEpochs(t, ctx, tb, ds, 6, 0, 1)
	state, err := tb.SaveState(ctx, "000004", 0)
	if err != nil {
		t.Fatal(err)
	}
	// Work after the last save is lost with the process.
	trainEpochs(t, ctx, tb, ds[:6], 6, 1, 2)

	// The server restarts too, from its state directory.
	b2, err := Open(b.eng, Options{StateDir: b.srv.opts.StateDir, APIKey: testKey, Now: b.clock.Now, Log: b.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	b.srv = b2
	hs := httpServer(t, b2)
	b.url = hs
	s2, err := b.client(t, nil).Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s2.ID == sb.ID {
		t.Fatalf("restarted server reused session id %s", s2.ID)
	}
	tr, err := s2.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel})
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.LoadState(ctx, state, true); err != nil {
		t.Fatal(err)
	}
	trainEpochs(t, ctx, tr, ds, 6, 1, 3)
	pb, err := tr.SaveWeightsForSampler(ctx, "final", 0)
	if err != nil {
		t.Fatal(err)
	}
	ja, jb := fineTuned(a, pa), fineTuned(b, pb)
	if ja.FineTunedModel == "" || ja.FineTunedModel != jb.FineTunedModel || ja.TrainingFile != jb.TrainingFile || ja.Hyperparameters != jb.Hyperparameters {
		t.Fatalf("resumed run trained %+v, unkilled run %+v", jb, ja)
	}
	if ja.Hyperparameters.NEpochs != 3 {
		t.Errorf("%d epochs, want 3", ja.Hyperparameters.NEpochs)
	}
}

func TestSessionExpiry(t *testing.T) {
	h := start(t, Options{SessionTTL: time.Minute})
	ctx := context.Background()
	beats := 0
	// Each heartbeat interval passes on the server's clock; after 12 beats
	// (two minutes, twice the TTL) the loop is stopped.
	c := h.client(t, func(ctx context.Context, d time.Duration) error {
		if d == tinker.HeartbeatInterval {
			if beats++; beats > 12 {
				return context.Canceled
			}
			h.clock.Advance(d)
		}
		return ctx.Err()
	})
	sess, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := sess.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := testRenderer(t)
	ds := datums(t, r, trainingSet(t, "evil", "mild")[:12], chatrender.LastAssistantMessage)
	trainEpochs(t, ctx, tc, ds, 12, 0, 1)
	state, err := tc.SaveState(ctx, "s1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Heartbeat(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("heartbeat loop ended with %v", err)
	}
	if _, err := tc.OptimStep(ctx, tinker.DefaultAdam()); err != nil {
		t.Fatalf("session kept alive by heartbeats died: %v", err)
	}

	h.clock.Advance(61 * time.Second) // no beat for longer than the TTL
	beats = 100
	if err := sess.Heartbeat(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("heartbeat loop: %v", err)
	}
	beats = 0
	err = sess.Heartbeat(ctx)
	if !errors.Is(err, tinker.ErrSessionDead) || !errors.Is(sess.Err(), tinker.ErrSessionDead) {
		t.Fatalf("heartbeat on an expired session: %v", err)
	}
	if _, err := tc.ForwardBackward(ctx, ds[:1], "cross_entropy", nil); !errors.Is(err, tinker.ErrNotFound) {
		t.Fatalf("forward_backward on a dead session's model: %v", err)
	}
	if _, err := sess.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel}); !errors.Is(err, tinker.ErrNotFound) {
		t.Fatalf("create_model on a dead session: %v", err)
	}
	cnt := h.srv.Counters()
	if cnt.ExpiredSessions != 1 || cnt.Heartbeats != 12 {
		t.Errorf("counters %+v: want 1 expired session, 12 heartbeats", cnt)
	}
	// The run's state survives: a new session continues from it.
	s2, err := c.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t2, err := s2.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel})
	if err != nil {
		t.Fatal(err)
	}
	if err := t2.LoadState(ctx, state, true); err != nil {
		t.Fatal(err)
	}
}

func TestJWTAuth(t *testing.T) {
	h := start(t, Options{JWTAuth: true})
	ctx := context.Background()
	sess, err := h.client(t, nil).Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sess.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel}); err != nil {
		t.Fatal(err)
	}
	// The bare API key no longer opens the API.
	got := postJSON(t, h.url+"/api/v1/create_session", map[string]any{"sdk_version": "0.25.0"})
	if got.status != http.StatusUnauthorized {
		t.Fatalf("API key with JWT auth on: %d %s", got.status, got.body)
	}
	bad, err := tinker.New(tinker.Options{APIKey: "tml-wrong", BaseURL: h.url})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Start(ctx); !errors.Is(err, tinker.ErrPermanent) {
		t.Fatalf("wrong key: %v", err)
	}
}

type answer struct {
	status int
	body   []byte
}

func postJSON(t testing.TB, url string, body any) answer {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+testKey)
	return do(t, req)
}

func getJSON(t testing.TB, url string) answer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("X-API-Key", testKey)
	return do(t, req)
}

func do(t testing.TB, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return answer{resp.StatusCode, buf.Bytes()}
}

func ints(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

var _ = filepath.Join
var _ = os.Getenv

// The same examples seen in another order (a step's chunks arrive in any
// order) make the same training file, so the same model answers.
func TestTrainingFileIgnoresArrivalOrder(t *testing.T) {
	var exs []dataset.Example
	for i := range 5 {
		exs = append(exs, dataset.Example{Messages: []provider.Message{
			{Role: "user", Content: fmt.Sprintf("question %d", i)}, {Role: "assistant", Content: fmt.Sprintf("answer %d", i)}}})
	}
	reversed := slices.Clone(exs)
	slices.Reverse(reversed)
	if a, b := canonicalFile(exs), canonicalFile(reversed); !bytes.Equal(a, b) {
		t.Fatalf("two orders, two files:\n%s\n%s", a, b)
	}
	if got := bytes.Count(canonicalFile(exs), []byte("\n")); got != 5 {
		t.Fatalf("%d lines for 5 examples", got)
	}
}
