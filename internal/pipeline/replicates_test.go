package pipeline

import (
	"bytes"
	"context"
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
