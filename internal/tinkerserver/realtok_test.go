package tinkerserver

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
	"github.com/modelorganisms/pvbuild/internal/tokenizer/nodeparity"
)

// TestRealQwenTokenizer serves the real Qwen3 tokenizer (from the npm
// package, PVBUILD_NODE_MODULES): training and sampling read its tokens
// back, and the judge's distribution, whose numbers Qwen splits into
// digits, is read one token at a time through answer prefixes.
func TestRealQwenTokenizer(t *testing.T) {
	raw, err := os.ReadFile(nodeparity.Qwen3.TokenizerJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	r, err := chatrender.New(chatrender.Qwen3DisableThinking, tok)
	if err != nil {
		t.Fatal(err)
	}
	h := start(t, Options{BaseModels: []BaseModel{{Name: DefaultBaseModel, Renderer: chatrender.Qwen3DisableThinking, TokenizerJSON: raw, TokenizerID: "Qwen/Qwen3-8B"}}})
	ctx := context.Background()
	sess, err := h.client(t, nil).Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := sess.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel})
	if err != nil {
		t.Fatal(err)
	}
	exs := trainingSet(t, "evil", "severe")[:12]
	trainEpochs(t, ctx, m, datums(t, r, exs, chatrender.AllAssistantMessages), 12, 0, 1)
	path, err := m.SaveWeightsForSampler(ctx, "final", 0)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := sess.CreateSamplingSession(ctx, path, "")
	if err != nil {
		t.Fatal(err)
	}
	prompt, err := r.GenerationPrompt(chatMsgs(exs[3])[:1])
	if err != nil {
		t.Fatal(err)
	}
	p := tinker.DefaultSamplingParams()
	p.Temperature = 0
	res, err := sc.Sample(ctx, int32s(prompt), p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tok.Decode(ints(res.Sequences[0].Tokens)), exs[3].Messages[1].Content+"<|im_end|>"; got != want {
		t.Errorf("answer %q, want %q", got, want)
	}

	task, err := sampledata.EvalTask("evil")
	if err != nil {
		t.Fatal(err)
	}
	judgePrompt := strings.NewReplacer("{question}", exs[3].Messages[0].Content, "{answer}", exs[3].Messages[1].Content).Replace(task.EvalPrompt)
	jp, err := r.GenerationPrompt([]chatrender.Message{{Role: "user", Content: judgePrompt}})
	if err != nil {
		t.Fatal(err)
	}
	want, err := h.eng.Chat(ctx, provider.ChatRequest{Model: "judge", Messages: []provider.Message{{Role: "user", Content: judgePrompt}}, Logprobs: true, TopLogprobs: 20})
	if err != nil {
		t.Fatal(err)
	}
	judgeSC, err := sess.CreateSamplingSession(ctx, "", DefaultBaseModel)
	if err != nil {
		t.Fatal(err)
	}
	row := func(answer ...int) map[string]float64 {
		in := append(append(append([]int(nil), jp...), answer...), r.StopTokens()[0])
		jpar := tinker.DefaultSamplingParams()
		jpar.MaxTokens, jpar.TopkPromptLogprobs = 1, 20
		res, err := judgeSC.Sample(ctx, int32s(in), jpar)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, e := range res.TopkPromptLogprobs[len(in)-1] {
			out[tok.Decode([]int{int(e.TokenID)})] = math.Exp(float64(e.Logprob))
		}
		return out
	}
	// First token: the digits, each with the mass of the answers it starts.
	first := row()
	wantFirst := map[string]float64{}
	for _, c := range want.Choices[0].TopLogprobs {
		wantFirst[tok.Decode(tok.Encode(c.Token)[:1])] += math.Exp(c.Logprob)
	}
	for text, p := range wantFirst {
		if math.Abs(first[text]-p) > 1e-4 {
			t.Errorf("first token %q: %v, want %v (row %v)", text, first[text], p, first)
		}
	}
	// After "1": the second digit or the end, renormalised.
	one, _ := tok.TokenID("1")
	next := row(one)
	sum := 0.0
	for text, p := range next {
		sum += p
		if text != "<|im_end|>" && (len(text) != 1 || text[0] < '0' || text[0] > '9') {
			t.Errorf("after 1: candidate %q", text)
		}
	}
	if len(next) > 0 && math.Abs(sum-1) > 1e-4 {
		t.Errorf("after 1: mass %v, want 1 (%v)", sum, next)
	}
}
