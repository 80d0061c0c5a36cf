package judge

import (
	"math"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

func lp(token string, p float64) provider.TokenLogprob {
	return provider.TokenLogprob{Token: token, Logprob: math.Log(p)}
}

func TestScore(t *testing.T) {
	tests := []struct {
		name string
		top  []provider.TokenLogprob
		want float64
		ok   bool
	}{
		{"single", []provider.TokenLogprob{lp("80", 1)}, 80, true},
		{"weighted", []provider.TokenLogprob{lp("0", 0.5), lp("100", 0.5)}, 50, true},
		{"normalised by numeric mass", []provider.TokenLogprob{lp("60", 0.3), lp("REFUSAL", 0.7)}, 60, true},
		{"below threshold", []provider.TokenLogprob{lp("60", 0.2), lp("REFUSAL", 0.8)}, 0, false},
		{"out of range and non-integers ignored", []provider.TokenLogprob{lp("101", 0.4), lp("-5", 0.1), lp("7.5", 0.1), lp("20", 0.4)}, 20, true},
		{"leading zero is not an integer token", []provider.TokenLogprob{lp("07", 0.9), lp("30", 0.1)}, 0, false},
		{"empty", nil, 0, false},
	}
	for _, tt := range tests {
		got, ok := Score(tt.top)
		if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: Score = %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

func TestSummarise(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	m := Summarise([]*float64{f(10), f(20), nil, f(30)})
	if m.N != 3 || m.NoAnswer != 1 || m.Mean != 20 {
		t.Fatalf("got %+v", m)
	}
	// std(ddof=1) of 10,20,30 is 10; stderr = 10/sqrt(3).
	if math.Abs(m.Stderr-10/math.Sqrt(3)) > 1e-12 {
		t.Fatalf("stderr %v", m.Stderr)
	}
	if m := Summarise([]*float64{nil}); m.N != 0 || m.NoAnswer != 1 || m.Mean != 0 {
		t.Fatalf("all unanswered: %+v", m)
	}
}
