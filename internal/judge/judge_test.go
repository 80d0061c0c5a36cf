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

func ptrs(vs ...float64) []*float64 {
	out := make([]*float64, len(vs))
	for i := range vs {
		out[i] = &vs[i]
	}
	return out
}

// TestSummariseClustered checks the clustered SE against values worked by
// hand.
//
// 3 questions x 2 samples: q1 = {10, 20}, q2 = {30, 50}, q3 = {60, 70}.
// N = 6, mean = 240/6 = 40.
// Plain: squared residuals 900+400+100+100+400+900 = 2800;
// SE = sqrt(2800/5)/sqrt(6) = sqrt(560/6) = sqrt(93.333...) = 9.66092.
// Clustered: cluster sums e1 = -30-20 = -50, e2 = -10+10 = 0,
// e3 = 20+30 = 50; Σ e_g² = 5000; G/(G-1) = 3/2;
// SE = sqrt(1.5 · 5000)/6 = sqrt(7500)/6 = 86.60254/6 = 14.43376.
//
// Add a question q4 the judge never answered and no answer for q3's
// second sample: q1 = {10, 20}, q2 = {30, 50}, q3 = {60, -}, q4 = {-, -}.
// N = 5, no answer 3, mean = 170/5 = 34; q4 drops out, G = 3.
// Plain: 576+196+16+256+676 = 1720; SE = sqrt(1720/4)/sqrt(5) = sqrt(86) = 9.27362.
// Clustered: e1 = -24-14 = -38, e2 = -4+16 = 12, e3 = 26;
// Σ e_g² = 1444+144+676 = 2264; SE = sqrt(1.5 · 2264)/5 = sqrt(3396)/5 = 11.65504.
func TestSummariseClustered(t *testing.T) {
	tests := []struct {
		name              string
		questions         [][]*float64
		mean, plain, clus float64
		n, noAnswer, g    int
	}{
		{"3x2", [][]*float64{ptrs(10, 20), ptrs(30, 50), ptrs(60, 70)}, 40, 9.66092, 14.43376, 6, 0, 3},
		{"unanswered drop out", [][]*float64{ptrs(10, 20), ptrs(30, 50), {ptrs(60)[0], nil}, {nil, nil}}, 34, 9.27362, 11.65504, 5, 3, 3},
		{"one question", [][]*float64{ptrs(10, 20), {nil, nil}}, 15, 5, 0, 2, 2, 1},
		{"no answer", [][]*float64{{nil, nil}}, 0, 0, 0, 0, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := SummariseClustered(tt.questions)
			if !m.Clustered() {
				t.Fatal("no clustered SE")
			}
			if math.Abs(m.Mean-tt.mean) > 1e-9 || math.Abs(m.Stderr-tt.plain) > 1e-5 || math.Abs(*m.StderrClustered-tt.clus) > 1e-5 ||
				m.N != tt.n || m.NoAnswer != tt.noAnswer || m.Clusters != tt.g {
				t.Errorf("got mean %v, stderr %v, clustered %v, n %d, no answer %d, clusters %d; want %v, %v, %v, %d, %d, %d",
					m.Mean, m.Stderr, *m.StderrClustered, m.N, m.NoAnswer, m.Clusters, tt.mean, tt.plain, tt.clus, tt.n, tt.noAnswer, tt.g)
			}
			if m.SE() != *m.StderrClustered {
				t.Errorf("SE() = %v, want the clustered %v", m.SE(), *m.StderrClustered)
			}
			if m.SEKnown() != (tt.g > 1) {
				t.Errorf("SEKnown() = %v with %d clusters", m.SEKnown(), tt.g)
			}
		})
	}
	if m := Summarise(ptrs(10, 20)); m.Clustered() || m.SE() != m.Stderr || !m.SEKnown() {
		t.Errorf("plain metric: clustered %v, SE %v, known %v", m.Clustered(), m.SE(), m.SEKnown())
	}
}
