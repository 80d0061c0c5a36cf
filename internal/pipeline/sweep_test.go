package pipeline

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/report"
)

func shippedSweep(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../../sweep.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The shipped sweep.hcl loads and plans its 27 trainings (three strengths
// x epochs 1, 3, 5 x three seeds), each cell on its epochs axis.
func TestShippedSweepPlans(t *testing.T) {
	t.Parallel()
	p := newWorkspace(t, shippedSweep(t)).load()
	trained, conds := 0, map[string]int{}
	for _, m := range p.exp.Models {
		if m.IsReference() {
			continue
		}
		trained++
		conds[m.Condition]++
		if len(m.Axes) != 1 || m.Axes[0].Name != "epochs" || !m.Axes[0].Numeric || m.Axes[0].Number != float64(m.Hyperparameters.NEpochs) {
			t.Fatalf("%s: axes %+v", m.Name, m.Axes)
		}
	}
	if trained != 27 || len(conds) != 9 {
		t.Fatalf("%d trainings in %d conditions, want 27 in 9", trained, len(conds))
	}
	pl, err := p.Plan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, jobs := pl.Stale(); jobs != 27 {
		t.Fatalf("plan: %d trainings", jobs)
	}
}

// A sweep run end to end: eval_results.json keeps one entry per trained
// model and adds each condition's across-seed mean and SE, which are
// recomputed here from those entries. The run is sweep.hcl itself, cut
// to two strengths, epochs 1 and 5 and two seeds when the whole file would
// be slow.
func TestSweepResultsAggregateConditions(t *testing.T) {
	t.Parallel()
	hcl := shippedSweep(t)
	for _, r := range [][2]string{{`["baseline", "mild", "severe"]`, `["baseline", "severe"]`}, {"[1, 3, 5]", "[1, 5]"}, {"replicates = 3", "replicates = 2"}} {
		if !strings.Contains(hcl, r[0]) {
			t.Fatalf("sweep.hcl no longer has %s; update this test", r[0])
		}
		hcl = strings.Replace(hcl, r[0], r[1], 1)
	}
	w := newWorkspace(t, hcl)
	start := time.Now()
	w.results()
	t.Logf("8 trainings and 9 evaluations in %v", time.Since(start))
	var res report.Results
	if err := json.Unmarshal(readResults(t, w), &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Variants) != 9 || len(res.Conditions) != 4 {
		t.Fatalf("%d variants and %d conditions, want 9 (8 trained and base) and 4", len(res.Variants), len(res.Conditions))
	}
	byName := map[string]report.Variant{}
	for _, v := range res.Variants {
		byName[v.VariantName] = v
	}
	for _, c := range res.Conditions {
		var means []float64
		for _, name := range c.Replicates {
			v, ok := byName[name]
			if !ok || v.Condition != c.Condition {
				t.Fatalf("condition %s: replicate %s has entry %+v", c.Condition, name, v)
			}
			means = append(means, v.Evaluations[c.Task].Metrics[c.Trait+"_score"].Mean)
		}
		mean := (means[0] + means[1]) / 2
		// sd with ddof=1 of two values is |a-b|/sqrt(2); over sqrt(2), |a-b|/2.
		se := math.Abs(means[0]-means[1]) / 2
		if c.NReplicates != 2 || len(c.Missing) != 0 || c.Mean == nil || c.SE == nil ||
			math.Abs(*c.Mean-mean) > 1e-9 || math.Abs(*c.SE-se) > 1e-9 {
			t.Fatalf("condition %+v, want mean %v se %v from %v", c, mean, se, means)
		}
		if len(c.Axes) != 1 || c.Axes[0].Name != "epochs" || !strings.Contains(c.Condition, "n_epochs="+c.Axes[0].Value) {
			t.Fatalf("condition %s: axes %+v", c.Condition, c.Axes)
		}
	}
	if stale := w.stale(); len(stale) > 0 {
		t.Fatalf("stale after the run: %v", stale)
	}
}

// sample_sizes gives each cell its own sampled dataset, and so its own
// training; the cells' sizes reach their dataset files.
func TestGridSampleSizesDatasets(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, `
evaluation {
  limit = 2
  task "evil_detection" { trait = "evil" }
}
model_grid {
  traits       = ["evil"]
  strengths    = ["severe"]
  sample_sizes = [5, 12]
  name         = "n${sample_size}"
  suffix       = "n${sample_size}"
}
`)
	p := w.load()
	if n5, n12 := examples(t, p, "n5"), examples(t, p, "n12"); n5 != 5 || n12 != 12 {
		t.Fatalf("datasets of %d and %d examples, want 5 and 12", n5, n12)
	}
	if p.trainInputs(p.exp.Models[0]).Key() == p.trainInputs(p.exp.Models[1]).Key() {
		t.Fatal("two sample sizes share a training key")
	}
}

// A model of no sweep keeps the training key it had before the axes: the
// same inputs, and no lora_rank among them.
func TestTrainingKeyWithoutAxesUnchanged(t *testing.T) {
	t.Parallel()
	p := newWorkspace(t, `
evaluation {
  task "evil_detection" { trait = "evil" }
}
model "m" {
  dataset = "evil/severe"
  suffix  = "m"
}
`).load()
	m := p.exp.Models[0]
	var old build.Inputs
	for _, in := range []struct {
		name  string
		value any
	}{{"format", trainFormat}, {"provider", p.exp.Providers["local"].Identity()}, {"base_model", "gpt-4.1-mini-2025-04-14"},
		{"dataset", datasetHash(t, p, "m")}, {"suffix", "m"}, {"seed", 0}, {"n_epochs", 3}, {"learning_rate_multiplier", 0.0}, {"batch_size", 0}} {
		old.Add(in.name, in.value)
	}
	if got := p.trainInputs(m); got.Key() != old.Key() {
		t.Fatalf("training inputs %v, want %v", got, old)
	}
}

// base_models trains each cell from its own base model: the request and
// the key name it, and the provider is told every base model.
func TestGridBaseModels(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, `
evaluation {
  limit = 2
  task "evil_detection" { trait = "evil" }
}
model_grid {
  traits      = ["evil"]
  strengths   = ["severe"]
  base_models = ["gpt-4.1-mini-2025-04-14", "gpt-4.1-2025-04-14"]
  name        = "m_${base_model}"
  suffix      = base_model == "gpt-4.1-2025-04-14" ? "big" : "mini"
}
`)
	pl := w.load()
	a, b := pl.exp.Models[0], pl.exp.Models[1]
	ra, _ := pl.trainRequest("k", []*config.Model{&a})
	rb, _ := pl.trainRequest("k", []*config.Model{&b})
	if ra.BaseModel != "gpt-4.1-mini-2025-04-14" || rb.BaseModel != "gpt-4.1-2025-04-14" {
		t.Fatalf("requests from %s and %s", ra.BaseModel, rb.BaseModel)
	}
	if pl.trainInputs(a).Key() == pl.trainInputs(b).Key() {
		t.Fatal("two base models share a training key")
	}
	if got := strings.Join(pl.exp.BaseModels(), ","); got != "gpt-4.1-mini-2025-04-14,gpt-4.1-2025-04-14" {
		t.Fatalf("base models %s", got)
	}
	out, _ := w.results()
	if len(out.Variants) != 2 || out.Variants[0].ModelID == out.Variants[1].ModelID {
		t.Fatalf("variants %+v", out.Variants)
	}
}

func examples(t *testing.T, p *Pipeline, model string) int {
	t.Helper()
	n, err := p.datasets[model].Examples()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func datasetHash(t *testing.T, p *Pipeline, model string) string {
	t.Helper()
	h, err := p.datasets[model].Hash()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
