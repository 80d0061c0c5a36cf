package tinkersample

import (
	"context"
	"math"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
	"github.com/modelorganisms/pvbuild/internal/tokenizer/nodeparity"
)

// The real tokenizers (PVBUILD_NODE_MODULES, as for the tokenizer parity
// tests): Qwen3 splits numbers into digits, Llama 3.1 does not, and a Qwen3
// judge is scored by its numbers.
func TestRealTokenizers(t *testing.T) {
	qwen, err := tokenizer.Load(nodeparity.Qwen3.TokenizerJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	llama, err := tokenizer.Load(nodeparity.Llama31.TokenizerJSON(t))
	if err != nil {
		t.Fatal(err)
	}
	if SingleTokenNumbers(qwen) {
		t.Error("Qwen3: numbers detected as single tokens")
	}
	if got := qwen.Encode("85"); len(got) != 2 {
		t.Errorf("Qwen3: 85 = %v", got)
	}
	if !SingleTokenNumbers(llama) {
		t.Error("Llama 3.1: numbers detected as split")
	}

	f := newFake(t, qwenJudge)
	s := New(f.session(t), Options{BaseModels: []string{qwenJudge},
		Tokenizer: func(context.Context, string) (*tokenizer.Tokenizer, string, error) {
			return qwen, chatrender.Qwen3DisableThinking, nil
		}})
	r, err := chatrender.New(chatrender.Qwen3DisableThinking, qwen)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := judgeSetup(t, f, r, qwen, qwenJudge, meansEightyFive)
	resp, err := s.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	want := expectation(meansEightyFive)
	if got, ok := judge.Score(resp.Choices[0].TopLogprobs); !ok || math.Abs(got-want) > 1e-4 {
		t.Errorf("Qwen3 judge scores %v %v, want %v; top %+v", got, ok, want, resp.Choices[0].TopLogprobs)
	}
	if n := len(f.calls()); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
}
