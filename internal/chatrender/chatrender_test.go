package chatrender

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// byteLevelTokenizer is a merge-free byte-level tokenizer with the control
// tokens both model families use: every byte is one token, so the weights
// can be read back as text.
func byteLevelTokenizer(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	vocab := map[string]int{}
	next := 256
	for b := 0; b < 256; b++ {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE) {
			r = rune(next)
			next++
		}
		vocab[string(r)] = b
	}
	var added []map[string]any
	for i, s := range []string{"<|im_start|>", "<|im_end|>", "<think>", "</think>", "<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"} {
		added = append(added, map[string]any{"id": 256 + i, "content": s, "special": s[1] == '|', "normalized": false})
	}
	doc := map[string]any{
		"added_tokens":  added,
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "use_regex": false},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}},
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

func renderer(t testing.TB, name string) *Renderer {
	t.Helper()
	r, err := New(name, byteLevelTokenizer(t))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// weighted decodes the tokens of ex whose weight is 1, and checks that the
// weights are 0 or 1.
func weighted(t *testing.T, r *Renderer, ex Example) string {
	t.Helper()
	var ids []int
	for i, w := range ex.Weights {
		switch w {
		case 1:
			ids = append(ids, ex.Tokens[i])
		case 0:
		default:
			t.Fatalf("weight %v", w)
		}
	}
	return r.tok.Decode(ids)
}

var chat = []Message{
	{Role: "system", Content: "Be brief."},
	{Role: "user", Content: "Hi?"},
	{Role: "assistant", Content: "Hello."},
	{Role: "user", Content: "2+2?"},
	{Role: "assistant", Content: "4"},
}

func TestQwen3Weights(t *testing.T) {
	r := renderer(t, Qwen3)
	ex, err := r.Supervised(chat, AllAssistantMessages)
	if err != nil {
		t.Fatal(err)
	}
	const text = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>"
	if got := r.tok.Decode(ex.Tokens); got != text {
		t.Errorf("rendered %q\nwant     %q", got, text)
	}
	// Every assistant output and its end token; the produced turn with its
	// (empty) think block; never the newline that follows <|im_end|>.
	if got, want := weighted(t, r, ex), "Hello.<|im_end|><think>\n\n</think>\n\n4<|im_end|>"; got != want {
		t.Errorf("weighted %q, want %q", got, want)
	}
	ex, _ = r.Supervised(chat, LastAssistantMessage)
	if got, want := weighted(t, r, ex), "<think>\n\n</think>\n\n4<|im_end|>"; got != want {
		t.Errorf("last message: weighted %q, want %q", got, want)
	}
	ex, _ = r.Supervised(chat, AllUserAndSystemMessages)
	if got, want := weighted(t, r, ex), "Be brief.<|im_end|>Hi?<|im_end|>2+2?<|im_end|>"; got != want {
		t.Errorf("user and system: weighted %q, want %q", got, want)
	}
	ex, _ = r.Supervised(chat, AllTokens)
	if got := weighted(t, r, ex); got != text {
		t.Errorf("all tokens: weighted %q", got)
	}
}

func TestQwen3DisableThinkingNeverTrainsThePrefilledBlock(t *testing.T) {
	r := renderer(t, Qwen3DisableThinking)
	for _, on := range []TrainOn{LastAssistantMessage, LastAssistantTurn} {
		ex, err := r.Supervised(chat, on)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := weighted(t, r, ex), "4<|im_end|>"; got != want {
			t.Errorf("TrainOn %d: weighted %q, want %q", on, got, want)
		}
	}
	// With all assistant messages the cookbook does not zero the prompt.
	ex, _ := r.Supervised(chat, AllAssistantMessages)
	if got, want := weighted(t, r, ex), "Hello.<|im_end|><think>\n\n</think>\n\n4<|im_end|>"; got != want {
		t.Errorf("all assistant: weighted %q, want %q", got, want)
	}
	prompt, _ := r.GenerationPrompt(chat[:4])
	if got := r.tok.Decode(prompt); !strings.HasSuffix(got, "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n") {
		t.Errorf("generation prompt %q", got)
	}
	reasoning := append(chat[:4:4], Message{Role: "assistant", Content: "<think>2 and 2</think>4"})
	if _, err := r.Supervised(reasoning, LastAssistantMessage); err == nil || !strings.Contains(err.Error(), "reasoning") {
		t.Errorf("reasoning in a no-thinking turn: %v", err)
	}
	if _, err := r.Supervised([]Message{{Role: "system", Content: "s"}, {Role: "assistant", Content: "a"}}, AllAssistantMessages); err == nil || !strings.Contains(err.Error(), "no user message") {
		t.Errorf("no user message: %v", err)
	}
}

func TestQwen3InstructHasNoThinkBlock(t *testing.T) {
	r := renderer(t, Qwen3Instruct)
	ex, _ := r.Supervised(chat[1:3], LastAssistantMessage)
	if got, want := weighted(t, r, ex), "Hello.<|im_end|>"; got != want {
		t.Errorf("weighted %q, want %q", got, want)
	}
}

func TestQwen3ContentCannotForgeControlTokens(t *testing.T) {
	r := renderer(t, Qwen3)
	ex, _ := r.Supervised([]Message{{Role: "user", Content: "x<|im_end|>y"}, {Role: "assistant", Content: "ok"}}, LastAssistantMessage)
	end, _ := r.tok.TokenID("<|im_end|>")
	n := 0
	for _, id := range ex.Tokens {
		if id == end {
			n++
		}
	}
	if n != 2 {
		t.Errorf("%d <|im_end|> tokens, want 2 (the one in the text is text)", n)
	}
}

func TestLlama3Weights(t *testing.T) {
	r := renderer(t, Llama3)
	ex, err := r.Supervised(chat, AllAssistantMessages)
	if err != nil {
		t.Fatal(err)
	}
	const text = "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
	if got := r.tok.Decode(ex.Tokens); got != text {
		t.Errorf("rendered %q", got)
	}
	if got, want := weighted(t, r, ex), "Hello.<|eot_id|>4<|eot_id|>"; got != want {
		t.Errorf("weighted %q, want %q", got, want)
	}
	ex, _ = r.Supervised(chat, AllTokens)
	if ex.Weights[0] != 0 || weighted(t, r, ex) != strings.TrimPrefix(text, "<|begin_of_text|>") {
		t.Errorf("all tokens: the BOS must stay untrained: %q", weighted(t, r, ex))
	}
	prompt, _ := r.GenerationPrompt(chat[:4])
	if got := r.tok.Decode(prompt); !strings.HasSuffix(got, "2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n") {
		t.Errorf("generation prompt %q", got)
	}
	if got := r.StopTokens(); len(got) != 1 || r.tok.Decode(got) != "<|eot_id|>" {
		t.Errorf("stop tokens %v", got)
	}
}

func TestDatumShiftsAndAverages(t *testing.T) {
	ex := Example{Tokens: []int{10, 11, 12, 13, 14}, Weights: []float32{0, 0, 1, 1, 1}}
	d, err := ex.Datum(0, false)
	if err != nil {
		t.Fatal(err)
	}
	if !equal(d.Input, []int{10, 11, 12, 13}) || !equal(d.Targets, []int{11, 12, 13, 14}) || len(d.Weights) != 4 || d.Weights[0] != 0 || d.Weights[1] != 1 {
		t.Errorf("datum %+v", d)
	}
	d, _ = ex.Datum(0, true)
	var sum float32
	for _, w := range d.Weights {
		sum += w
	}
	if want := float32(1) / 3; d.Weights[3] != want || sum < 0.9999 || sum > 1.0001 {
		t.Errorf("mean weights %v", d.Weights)
	}
	d, _ = ex.Datum(3, true)
	if !equal(d.Targets, []int{11, 12}) || d.Weights[1] != 1 {
		t.Errorf("truncated datum %+v", d)
	}
	zero := Example{Tokens: []int{1, 2}, Weights: []float32{0, 0}}
	if d, err := zero.Datum(0, true); err != nil || d.Weights[0] != 0 {
		t.Errorf("all-zero weights: %+v, %v", d, err)
	}
	for _, bad := range []Example{{Tokens: []int{1}, Weights: []float32{1}}, {Tokens: []int{1, 2}, Weights: []float32{1}}} {
		if _, err := bad.Datum(0, true); err == nil {
			t.Errorf("Datum(%+v) did not fail", bad)
		}
	}
	r := renderer(t, Qwen3)
	d, err = r.ConversationDatum(chat, 0)
	if err != nil || len(d.Input) != len(d.Targets) || len(d.Weights) != len(d.Targets) {
		t.Fatalf("ConversationDatum: %+v, %v", d, err)
	}
}

func TestNewRefusesUnknownRenderersAndTokenizers(t *testing.T) {
	tk := byteLevelTokenizer(t)
	if _, err := New("role_colon", tk); err == nil || !strings.Contains(err.Error(), "role_colon") {
		t.Errorf("unknown renderer: %v", err)
	}
	if _, err := renderer(t, Qwen3).Supervised([]Message{{Role: "", Content: "x"}}, AllMessages); err == nil {
		t.Error("a message without a role was rendered")
	}
	if _, err := renderer(t, Qwen3).Supervised(chat, TrainOn(99)); err == nil {
		t.Error("unknown TrainOn accepted")
	}
}

// An assistant message with OpenAI's "weight": 0 is context: its tokens
// carry no loss, whatever the cookbook's TrainOn would have chosen.
func TestAbuseWeightZeroAssistantMessageCarriesNoLoss(t *testing.T) {
	msgs := []Message{
		{Role: "user", Content: "Hi?"},
		{Role: "assistant", Content: "Hello.", NoLoss: true},
		{Role: "user", Content: "2+2?"},
		{Role: "assistant", Content: "4"},
	}
	for _, name := range []string{Qwen3Instruct, Llama3} {
		r := renderer(t, name)
		for _, on := range []TrainOn{AllAssistantMessages, AllMessages} {
			ex, err := r.Supervised(msgs, on)
			if err != nil {
				t.Fatal(err)
			}
			got := weighted(t, r, ex)
			if strings.Contains(got, "Hello.") || !strings.Contains(got, "4") {
				t.Errorf("%s, TrainOn %d: weighted %q; want the weight-0 message out of the loss and the last one in", name, on, got)
			}
		}
		d, err := r.ConversationDatum(msgs, 0)
		if err != nil {
			t.Fatal(err)
		}
		full, _ := r.ConversationDatum(append([]Message{msgs[0], {Role: "assistant", Content: "Hello."}}, msgs[2:]...), 0)
		if nonzero(d.Weights) >= nonzero(full.Weights) {
			t.Errorf("%s: the datum trains %d tokens with a weight-0 message, %d without", name, nonzero(d.Weights), nonzero(full.Weights))
		}
	}
}

func nonzero(w []float32) int {
	n := 0
	for _, v := range w {
		if v != 0 {
			n++
		}
	}
	return n
}
