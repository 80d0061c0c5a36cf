package pipeline

import (
	"slices"
	"strings"
	"testing"
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
