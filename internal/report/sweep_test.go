package report

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
)

// The across-seed standard error against a hand computation: means 40, 50,
// 60 have mean 50, sd (ddof=1) sqrt((100+0+100)/2) = 10, SE 10/sqrt(3).
func TestAcrossSeedsByHand(t *testing.T) {
	mean, se, known, ok := AcrossSeeds([]float64{40, 50, 60})
	if !ok || !known || mean != 50 || math.Abs(se-5.773502691896258) > 1e-12 {
		t.Fatalf("mean %v se %v known %v ok %v", mean, se, known, ok)
	}
	if _, _, known, ok := AcrossSeeds([]float64{42}); !ok || known {
		t.Fatalf("one replicate: known %v ok %v", known, ok)
	}
	if _, _, _, ok := AcrossSeeds(nil); ok {
		t.Fatal("no replicate reported a mean")
	}
	// Difference 70-50 = 20 with 1.96*sqrt(SE_a^2 + SE_b^2); b's SE is
	// sd(65,70,75)=5 over sqrt(3).
	d, ok := ConditionDiff([]float64{65, 70, 75}, []float64{40, 50, 60})
	half := 1.96 * math.Sqrt(25.0/3+100.0/3)
	if !ok || !d.Interval || d.Value != 20 || math.Abs(d.Low-(20-half)) > 1e-9 || math.Abs(d.High-(20+half)) > 1e-9 {
		t.Fatalf("diff %+v", d)
	}
}

// A replicated condition's summary row holds the across-seed mean and SE
// of its replicates, each replicate's mean, and the replicate that failed.
func TestConditionsMarkMissingReplicate(t *testing.T) {
	e := Experiment{Tasks: []Task{{Name: "evil_detection", Trait: "evil"}}}
	for i, name := range []string{"e_s1", "e_s2", "e_s3", "e_s4"} {
		e.Models = append(e.Models, Model{Name: name, Trait: "evil", Strength: "severe", Condition: "evil/severe n_epochs=3"})
		if i < 3 {
			e.Evals = append(e.Evals, Eval{Model: name, Task: "evil_detection", Trait: "evil", Metric: judge.Metric{Mean: float64(40 + 10*i), N: 5}})
		}
	}
	cs := Conditions(e)
	if len(cs) != 1 || len(cs[0].Means) != 3 || !slices.Equal(cs[0].Missing, []string{"e_s4"}) {
		t.Fatalf("conditions %+v", cs)
	}
	md := string(Markdown(e))
	if !strings.Contains(md, "| evil\\_detection | evil/severe n\\_epochs=3 | 50.0 ± 5.8 | 3 | e\\_s1 40.0; e\\_s2 50.0; e\\_s3 60.0 | e\\_s4 |") {
		t.Fatalf("summary.md lacks the across-seed row:\n%s", md)
	}
	if strings.Contains(string(Markdown(Experiment{Tasks: e.Tasks})), "Across training seeds") {
		t.Fatal("an experiment without replicates got an across-seed section")
	}
}
