package report

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
)

// The aggregated conditions of eval_results.json by hand: replicates with
// means 10, 20, 60 have mean 30 and SE sd(ddof=1)/sqrt(3) =
// sqrt(((20)^2+(10)^2+(30)^2)/2)/sqrt(3) = sqrt(700)/sqrt(3); a replicate
// without an evaluation is missing, and a condition of one scored
// replicate has a mean but no SE.
func TestConditionResultsByHand(t *testing.T) {
	e := Experiment{Tasks: []Task{{Name: "evil_detection", Trait: "evil"}}}
	axes := []Axis{{Name: "epochs", Value: "3", Number: 3, Numeric: true}}
	for i, mean := range []float64{10, 20, 60, -1} {
		name := []string{"a_s0", "a_s1", "a_s2", "a_s3"}[i]
		e.Models = append(e.Models, Model{Name: name, Trait: "evil", Strength: "severe", Condition: "evil/severe n_epochs=3", Axes: axes})
		if mean >= 0 {
			e.Evals = append(e.Evals, Eval{Model: name, Task: "evil_detection", Trait: "evil", Metric: judge.Metric{Mean: mean, N: 5}})
		}
	}
	e.Models = append(e.Models, Model{Name: "b_s0", Trait: "evil", Strength: "mild", Condition: "evil/mild n_epochs=3"},
		Model{Name: "plain", Trait: "evil", Strength: "mild"})
	e.Evals = append(e.Evals, Eval{Model: "b_s0", Task: "evil_detection", Trait: "evil", Metric: judge.Metric{Mean: 7, N: 5}},
		Eval{Model: "plain", Task: "evil_detection", Trait: "evil", Metric: judge.Metric{Mean: 1, N: 5}})

	cs := ConditionResults(e)
	if len(cs) != 2 {
		t.Fatalf("%d conditions, want 2: %+v", len(cs), cs)
	}
	a := cs[0]
	wantSE := math.Sqrt(700) / math.Sqrt(3)
	if a.Condition != "evil/severe n_epochs=3" || a.Task != "evil_detection" || a.Trait != "evil" || a.NReplicates != 3 ||
		a.Mean == nil || *a.Mean != 30 || a.SE == nil || math.Abs(*a.SE-wantSE) > 1e-12 {
		t.Fatalf("condition a: %+v", a)
	}
	if strings.Join(a.Replicates, ",") != "a_s0,a_s1,a_s2,a_s3" || strings.Join(a.Missing, ",") != "a_s3" ||
		len(a.ReplicateMeans) != 3 || a.ReplicateMeans[2] != (ReplicateMean{Model: "a_s2", Mean: 60}) || len(a.Axes) != 1 || a.Axes[0].Name != "epochs" {
		t.Fatalf("condition a: %+v", a)
	}
	if b := cs[1]; b.NReplicates != 1 || b.Mean == nil || *b.Mean != 7 || b.SE != nil || len(b.Missing) != 0 {
		t.Fatalf("condition b: %+v", b)
	}

	// With conditions, eval_results.json is an object of the variants (in
	// their shape) and the conditions; without, the array it always was.
	b, err := json.Marshal(Results{Variants: e.Variants(), Conditions: cs})
	if err != nil {
		t.Fatal(err)
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil || len(back.Variants) != 6-1 || len(back.Conditions) != 2 || back.Variants[0].Condition != "evil/severe n_epochs=3" {
		t.Fatalf("round trip %v: %s", err, b)
	}
	if !strings.Contains(string(b), `"se":null`) || !strings.Contains(string(b), `"n_replicates":3`) {
		t.Fatalf("conditions JSON: %s", b)
	}
	plain, err := json.Marshal(Results{Variants: e.Variants()})
	if err != nil || plain[0] != '[' {
		t.Fatalf("without conditions: %v %s", err, plain)
	}
	if err := json.Unmarshal(plain, &back); err != nil || len(back.Variants) != 5 || back.Conditions != nil {
		t.Fatalf("array read back %v: %+v", err, back)
	}
}
