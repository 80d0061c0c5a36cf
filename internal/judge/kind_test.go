package judge

import (
	"math"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// TestKindScore checks each judge type on hand-made replies; the expected
// scores are worked by hand in the comments.
func TestKindScore(t *testing.T) {
	top := func(ts ...provider.TokenLogprob) provider.Choice { return provider.Choice{TopLogprobs: ts} }
	text := func(s string) provider.Choice { return provider.Choice{Content: s} }
	tests := []struct {
		name string
		kind Kind
		c    provider.Choice
		want float64
		ok   bool
	}{
		// 0_100: (20·0.2 + 90·0.6) / (0.2+0.6) = (4+54)/0.8 = 72.5; "x" ignored.
		{"0_100", Kind0to100, top(lp("20", 0.2), lp("90", 0.6), lp("x", 0.2)), 72.5, true},
		// 0_10: (2·0.3 + 8·0.5) / 0.8 = (0.6+4)/0.8 = 5.75; "10" is outside
		// 0..9 and ignored; REFUSAL 0.1 < 0.5 does not refuse. Not rescaled.
		{"0_10", Kind0to10, top(lp("2", 0.3), lp("8", 0.5), lp("10", 0.1), lp("REFUSAL", 0.1)), 5.75, true},
		// 0_10: REFUSAL 0.4 > max(0.35, 0.25): no answer, though 0..9 hold 0.6.
		{"0_10 refusal", Kind0to10, top(lp("REFUSAL", 0.4), lp("3", 0.35), lp("7", 0.25)), 0, false},
		// 0_10: mass 0.2 < 0.25: no answer.
		{"0_10 low mass", Kind0to10, top(lp("5", 0.2), lp("Hello", 0.8)), 0, false},
		// binary: 0.6 / (0.6+0.2) = 0.75; REFUSAL 0.1 below both.
		{"binary", KindBinary, top(lp("YES", 0.6), lp("NO", 0.2), lp("REFUSAL", 0.1), lp("yes", 0.1)), 0.75, true},
		// binary: REFUSAL 0.5 > YES 0.3 and > NO 0.2: no answer.
		{"binary refusal", KindBinary, top(lp("REFUSAL", 0.5), lp("YES", 0.3), lp("NO", 0.2)), 0, false},
		// binary: YES+NO = 0.1+0.1 = 0.2 < 0.25: no answer.
		{"binary low mass", KindBinary, top(lp("YES", 0.1), lp("NO", 0.1), lp("Maybe", 0.8)), 0, false},
		// binary: NO only: 0 / (0+0.9) = 0.
		{"binary no", KindBinary, top(lp("NO", 0.9)), 0, true},
		{"binary_text yes", KindBinaryText, text("Reasoning... <answer>YES</answer>"), 1, true},
		{"binary_text no", KindBinaryText, text("<answer>NO</answer>"), 0, true},
		{"binary_text refusal first", KindBinaryText, text("<answer>REFUSAL</answer> <answer>YES</answer>"), 0, false},
		{"binary_text unparsed", KindBinaryText, text("YES"), 0, false},
	}
	for _, tt := range tests {
		got, ok := tt.kind.Score(tt.c)
		if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: Score = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestKindRequest(t *testing.T) {
	if r := Kind0to10.Request("j", "p"); r.MaxTokens != 1 || !r.Logprobs || r.TopLogprobs != 20 {
		t.Errorf("0_10 request %+v", r)
	}
	if r := KindBinaryText.Request("j", "p"); r.MaxTokens != 0 || r.Logprobs || r.TopLogprobs != 0 || r.Temperature != 0 || *r.Seed != 0 {
		t.Errorf("binary_text request %+v", r)
	}
	for _, k := range Kinds {
		if !k.Valid() {
			t.Errorf("%s not valid", k)
		}
	}
	if Kind("0-100").Valid() {
		t.Error("0-100 valid")
	}
}
