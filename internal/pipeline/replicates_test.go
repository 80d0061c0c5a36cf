package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

const replicatesHCL = `
training {
  seed = 1
}
evaluation {
  limit = 2
  task "evil_detection" { trait = "evil" }
}
model_grid {
  traits     = ["evil"]
  strengths  = ["severe"]
  replicates = REPS
  name       = "${trait}_${strength}_s${seed}"
  suffix     = "pv-${trait}-${strength}-s${seed}"
}
`

// Adding one seed to a sweep trains only the new model and re-evaluates
// only its evaluation and the reports, as plan shows before anything runs.
func TestAddingSeedRebuildsOnlyItsModel(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, strings.Replace(replicatesHCL, "REPS", "2", 1))
	out, _ := w.results()
	if len(out.Variants) != 2 || out.Variants[0].ModelID == out.Variants[1].ModelID {
		t.Fatalf("two seeds gave %+v", out.Variants)
	}
	w.write(strings.Replace(replicatesHCL, "REPS", "3", 1))
	got := w.stale()
	want := []string{"dataset/evil_severe_s3", "train/evil_severe_s3", "eval/evil_severe_s3/evil_detection",
		"results", "report", "log/evil_severe_s3/evil_detection"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stale after adding a seed: %q, want %q", got, want)
	}
	pl, err := w.load().Plan(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, jobs := pl.Stale(); jobs != 1 || !strings.Contains(pl.Train[2].Submit, "seed 3") {
		t.Fatalf("%d trainings, submit %q", jobs, pl.Train[2].Submit)
	}
}

// countingTrainer records the most trainings it ever had in flight.
type countingTrainer struct {
	provider.Trainer
	mu        sync.Mutex
	now, most int
}

func (c *countingTrainer) Train(ctx context.Context, req provider.TrainRequest) (provider.Trained, error) {
	c.mu.Lock()
	c.now++
	c.most = max(c.most, c.now)
	c.mu.Unlock()
	defer func() { c.mu.Lock(); c.now--; c.mu.Unlock() }()
	return c.Trainer.Train(ctx, req)
}

// max_parallel bounds the trainings in flight; the rest wait their turn
// and all of them finish.
func TestMaxParallelQueuesTrainings(t *testing.T) {
	t.Parallel()
	hcl := strings.Replace(strings.Replace(replicatesHCL, "REPS", "4", 1), "seed = 1", "seed = 1\n  max_parallel = 2", 1)
	w := newWorkspace(t, hcl)
	var log bytes.Buffer
	p, err := Load(context.Background(), w.env(&log))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ct := &countingTrainer{Trainer: p.training.trainer}
	p.training.trainer = ct
	if err := p.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ct.most != 2 || !strings.Contains(log.String(), "queued, 2 training(s) in flight already (max_parallel = 2)") {
		t.Fatalf("at most %d trainings in flight, want 2\n%s", ct.most, log.String())
	}
	if got := w.stale(); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "train/") }) {
		t.Fatalf("trainings left stale: %q", got)
	}
}

// failingTrainer fails the trainings whose suffix ends with fail.
type failingTrainer struct {
	provider.Trainer
	fail string
}

func (f *failingTrainer) Train(ctx context.Context, req provider.TrainRequest) (provider.Trained, error) {
	if strings.HasSuffix(req.Suffix, f.fail) {
		return provider.Trained{}, errors.New("job ftjob-x failed: the provider rejected the data")
	}
	return f.Trainer.Train(ctx, req)
}

// A sweep member whose training fails is reported by name; the others are
// trained and evaluated, and the reports mark the member missing.
func TestFailedReplicateIsMarkedMissing(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, strings.Replace(replicatesHCL, "REPS", "3", 1))
	var log bytes.Buffer
	p, err := Load(context.Background(), w.env(&log))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.training.trainer = &failingTrainer{Trainer: p.training.trainer, fail: "-s2"}
	_, resErr := p.Results(context.Background())
	if err := resErr; err == nil || !strings.Contains(err.Error(), "evil_severe_s2") || !strings.Contains(err.Error(), "ftjob-x") {
		t.Fatalf("results: %v; want the failed member and its job named", err)
	}
	for _, m := range []string{"evil_severe_s1", "evil_severe_s3"} {
		if _, err := os.Stat(filepath.Join(w.artifacts, "evals", m, "evil_detection.json")); err != nil {
			t.Errorf("%s was not evaluated: %v", m, err)
		}
	}
	summary, err := os.ReadFile(filepath.Join(w.artifacts, "summary.md"))
	if err != nil {
		t.Fatalf("no summary.md after a failed member: %v\n%s", err, log.String()+"\n"+resErr.Error())
	}
	// The across-seeds row: two replicates, and the failed one missing.
	if !strings.Contains(string(summary), "| 2 | evil\\_severe\\_s1 ") || !strings.Contains(string(summary), "| evil\\_severe\\_s2 |") {
		t.Fatalf("summary.md does not mark the failed member missing:\n%s", summary)
	}
	b, err := os.ReadFile(filepath.Join(w.artifacts, "eval_results.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Conditions []struct {
			Missing        []string
			ReplicateMeans []struct{ Model string } `json:"replicate_means"`
		}
	}
	if err := json.Unmarshal(b, &res); err != nil || len(res.Conditions) != 1 {
		t.Fatalf("eval_results.json: %v\n%s", err, b)
	}
	if c := res.Conditions[0]; !slices.Equal(c.Missing, []string{"evil_severe_s2"}) || len(c.ReplicateMeans) != 2 {
		t.Fatalf("condition %+v; want s2 missing", c)
	}

	// Once the member trains, the reports are rebuilt without the gap.
	p2 := connected(t, w, &log)
	if _, err := p2.Results(context.Background()); err != nil {
		t.Fatal(err)
	}
	if summary, _ := os.ReadFile(filepath.Join(w.artifacts, "summary.md")); !strings.Contains(string(summary), "| 3 |") {
		t.Fatalf("summary.md after the member trained:\n%s", summary)
	}
}
