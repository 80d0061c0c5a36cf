package pipeline

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sweepReportHCL = `
training {
  seed = 1
}
evaluation {
  limit = 2
  task "evil_detection" { trait = "evil" }
}
model_grid {
  traits     = ["evil"]
  strengths  = ["baseline", "severe"]
  epochs     = [1, 3]
  replicates = 2
  name       = "${trait}_${strength}_e${epochs}_s${seed}"
  suffix     = "pv-${trait}-${strength}-e${epochs}-s${seed}"
}
`

// An epochs sweep's report has a dose-response PNG and a heatmap PNG
// beside the strength chart, the table along the axis in summary.md, and
// the sweep's tab in the HTML report.
func TestSweepReportFigures(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, sweepReportHCL)
	w.results()
	for _, name := range []string{"plots/evil_expression.png", "plots/evil_epochs_dose.png", "plots/evil_epochs_by_strength_heatmap.png"} {
		b, err := os.ReadFile(filepath.Join(w.artifacts, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(bytes.NewReader(b)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	md, err := os.ReadFile(filepath.Join(w.artifacts, "summary.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(md), "## Training for Evil, by epochs") || !strings.Contains(string(md), "Heatmap strength × epochs, evil\\_detection") {
		t.Errorf("summary.md lacks the sweep tables:\n%s", md)
	}
	html, err := os.ReadFile(filepath.Join(w.artifacts, "plots/results.html"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(html), `id="tab-sweep-0"`) {
		t.Error("results.html has no sweep tab")
	}
}
