package report_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/report/reporttest"
)

func TestDoseChartByHand(t *testing.T) {
	e := reporttest.Sweep()
	cs := e.DoseCharts()
	if len(cs) != 1 || cs[0].Axis != "epochs" || cs[0].Trait != "evil" || len(cs[0].X) != 2 || cs[0].X[0].Number != 1 || cs[0].X[1].Number != 3 {
		t.Fatalf("charts %+v", cs)
	}
	c := cs[0]
	if len(c.Panels) != 2 || c.Panels[0].Label() != "strength baseline" || c.Panels[1].Label() != "strength severe" {
		t.Fatalf("panels %+v", c.Panels)
	}
	severe := c.Panels[1].Lines[0]
	if !severe.OnTarget || severe.Task.Name != "evil_detection" || c.Panels[1].Lines[1].OnTarget {
		t.Fatalf("lines %+v", c.Panels[1].Lines)
	}
	m, se, known, ok := severe.Points[0].Stat()
	if !ok || !known || m != 50 || math.Abs(se-10) > 1e-12 {
		t.Errorf("severe, 1 epoch: %v ± %v (known %v ok %v), want 50 ± 10", m, se, known, ok)
	}
	m, se, known, ok = severe.Points[1].Stat()
	if !ok || !known || m != 80 || math.Abs(se-10/math.Sqrt(3)) > 1e-12 || !slices.Equal(severe.Points[1].Missing, []string{"s3_s4"}) {
		t.Errorf("severe, 3 epochs: %v ± %v, missing %v; want 80 ± 5.77 and s3_s4 missing", m, se, severe.Points[1].Missing)
	}
	if got := severe.Points[1].Text(); got != "80.0 ± 5.8 (R=3); missing s3_s4" {
		t.Errorf("text %q", got)
	}
	base := c.Panels[0].Lines[0]
	if got := base.Points[0].Text(); got != "20.0 (R=1)" {
		t.Errorf("a model outside a condition: %q, want one replicate", got)
	}
	if _, _, _, ok := base.Points[1].Stat(); ok || base.Points[1].Text() != "missing (b3_s1, b3_s2)" {
		t.Errorf("baseline, 3 epochs: %q, want missing", base.Points[1].Text())
	}
	if m, _, _, _ := c.Panels[1].Lines[1].Points[0].Stat(); m != 45 {
		t.Errorf("syc_detection, severe, 1 epoch: %v, want 45", m)
	}
}

func TestHeatmapByHand(t *testing.T) {
	hs := reporttest.Sweep().Heatmaps()
	if len(hs) != 1 || len(hs[0].Panels) != 2 {
		t.Fatalf("heatmaps %+v, want one of a panel per task", hs)
	}
	h := hs[0].Panels[0]
	if hs[0].XName != "epochs" || hs[0].YName != report.StrengthDim || h.Task.Name != "evil_detection" || !h.OnTarget || len(h.Cells) != 2 || len(h.Cells[0]) != 2 {
		t.Fatalf("heatmap %+v", hs[0])
	}
	want := [][]string{{"20.0 (R=1)", "missing (b3_s1, b3_s2)"}, {"50.0 ± 10.0 (R=2)", "80.0 ± 5.8 (R=3); missing s3_s4"}}
	for i, row := range h.Cells {
		for j, c := range row {
			if c.Text() != want[i][j] {
				t.Errorf("cell %s %s: %q, want %q", hs[0].Y[i].Value, hs[0].X[j].Value, c.Text(), want[i][j])
			}
		}
	}
}

// A cell no model was trained at is "—", not missing.
func TestDoseChartAbsentCell(t *testing.T) {
	e := reporttest.Sweep()
	e.Models = slices.DeleteFunc(e.Models, func(m report.Model) bool { return strings.HasPrefix(m.Name, "b3") })
	h := e.Heatmaps()[0].Panels[0]
	if got := h.Cells[0][1].Text(); got != "—" {
		t.Fatalf("absent cell %q", got)
	}
}

func TestSweepMarkdown(t *testing.T) {
	md := string(report.Markdown(reporttest.Sweep()))
	for _, want := range []string{
		"## Training for Evil, by epochs",
		"strength severe:\n\n| epochs | evil\\_detection | syc\\_detection |\n| :-- | --: | --: |\n| 1 | 50.0 ± 10.0 (R=2) | 45.0 ± 10.0 (R=2) |\n| 3 | 80.0 ± 5.8 (R=3); missing s3\\_s4 | 75.0 ± 5.8 (R=3); missing s3\\_s4 |\n",
		"Heatmap strength × epochs, evil\\_detection:\n\n| strength \\ epochs | 1 | 3 |\n| :-- | --: | --: |\n| baseline | 20.0 (R=1) | missing (b3\\_s1, b3\\_s2) |\n",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}
}

// Without a swept axis (or with one value of it) there is no sweep.
func TestNoSweepWithoutTwoValues(t *testing.T) {
	e := reporttest.Sweep()
	for i := range e.Models {
		if len(e.Models[i].Axes) > 0 {
			e.Models[i].Axes[0] = report.Axis{Name: "epochs", Value: "3", Number: 3, Numeric: true}
		}
	}
	if c, h := e.DoseCharts(), e.Heatmaps(); c != nil || h != nil {
		t.Fatalf("one epochs value: charts %+v heatmaps %+v", c, h)
	}
	if strings.Contains(string(report.Markdown(e)), "by epochs") {
		t.Fatal("summary.md has a sweep table without a sweep")
	}
	// A non-numeric axis alone is no dose-response axis.
	e = reporttest.Sweep()
	for i := range e.Models {
		for j := range e.Models[i].Axes {
			e.Models[i].Axes[j] = report.Axis{Name: "base_model", Value: e.Models[i].Axes[j].Value}
		}
	}
	if c := e.DoseCharts(); c != nil {
		t.Fatalf("non-numeric axis charted: %+v", c)
	}
}

// grid2 is one severe evil model per (epochs, learning_rate) cell, scored
// 10·epochs + lr; other is a second grid's model on learning_rate alone.
func grid2(other bool) report.Experiment {
	e := report.Experiment{Strengths: []string{"severe"}, Tasks: []report.Task{{Name: "evil_detection", Trait: "evil"}}}
	add := func(name string, mean float64, axes ...report.Axis) {
		e.Models = append(e.Models, report.Model{Name: name, Trait: "evil", Strength: "severe", Axes: axes})
		e.Evals = append(e.Evals, report.Eval{Model: name, Task: "evil_detection", Trait: "evil", Metric: judge.Metric{Mean: mean, N: 4}})
	}
	ep := func(n float64, v string) report.Axis {
		return report.Axis{Name: "epochs", Value: v, Number: n, Numeric: true}
	}
	lr := func(n float64, v string) report.Axis {
		return report.Axis{Name: "learning_rate", Value: v, Number: n, Numeric: true}
	}
	if other {
		add("e1", 10, ep(1, "1"))
		add("e3", 30, ep(3, "3"))
		add("l2", 2, lr(2, "2"))
		add("l05", 0.5, lr(0.5, "0.5"))
		return e
	}
	// Declared out of order: the charts sort the axis values.
	add("e3_l2", 32, ep(3, "3"), lr(2, "2"))
	add("e1_l2", 12, ep(1, "1"), lr(2, "2"))
	add("e3_l05", 30.5, ep(3, "3"), lr(0.5, "0.5"))
	add("e1_l05", 10.5, ep(1, "1"), lr(0.5, "0.5"))
	return e
}

// Two numeric axes: a dose chart along each, a panel per value of the
// other, and one heatmap of one against the other.
func TestTwoAxes(t *testing.T) {
	e := grid2(false)
	cs := e.DoseCharts()
	if len(cs) != 2 || cs[0].Axis != "epochs" || cs[1].Axis != "learning_rate" {
		t.Fatalf("charts %+v", cs)
	}
	lr := cs[1]
	if lr.X[0].Value != "0.5" || len(lr.Panels) != 2 || lr.Panels[0].Label() != "epochs 1" || lr.Panels[1].Label() != "epochs 3" {
		t.Fatalf("learning_rate chart %+v", lr)
	}
	if m, _, _, _ := lr.Panels[1].Lines[0].Points[0].Stat(); m != 30.5 {
		t.Errorf("epochs 3, learning_rate 0.5: %v, want 30.5", m)
	}
	hs := e.Heatmaps()
	if len(hs) != 1 || hs[0].XName != "epochs" || hs[0].YName != "learning_rate" || len(hs[0].Panels) != 1 {
		t.Fatalf("heatmaps %+v", hs)
	}
	if got := hs[0].Panels[0].Cells[1][0].Text(); got != "12.0 (R=1)" {
		t.Errorf("learning_rate 2, epochs 1: %q", got)
	}
}

// Two grids, each along its own axis: each chart holds its grid's models,
// in one panel, and no heatmap pairs axes no model has both of.
func TestSeparateGrids(t *testing.T) {
	e := grid2(true)
	cs := e.DoseCharts()
	if len(cs) != 2 || len(cs[0].Panels) != 1 || len(cs[1].Panels) != 1 || cs[0].Panels[0].Label() != "" {
		t.Fatalf("charts %+v", cs)
	}
	if m, _, _, _ := cs[1].Panels[0].Lines[0].Points[0].Stat(); m != 0.5 {
		t.Errorf("learning_rate 0.5: %v", m)
	}
	if hs := e.Heatmaps(); len(hs) != 0 {
		t.Fatalf("heatmaps %+v", hs)
	}
}
