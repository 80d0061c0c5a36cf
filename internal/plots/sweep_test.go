package plots_test

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/plots"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/report/reporttest"
)

func decodeAny(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	return img
}

// The dose chart is a PNG of one panel per strength, 675 px each, with
// each task's line in its colour.
func TestDose(t *testing.T) {
	cs := reporttest.Sweep().DoseCharts()
	b, err := plots.Dose(cs[0])
	if err != nil {
		t.Fatal(err)
	}
	img := decodeAny(t, b)
	if s := img.Bounds().Size(); s.X != 1350 || s.Y != 600 {
		t.Fatalf("image is %v, want two 675x600 panels side by side", s)
	}
	for i := range cs[0].Panels[0].Lines {
		if n, _ := pixels(img, report.TaskColor(i), 0); n < 200 {
			t.Errorf("task %d's colour on %d pixels: no line", i, n)
		}
	}
	if _, err := plots.Dose(report.DoseChart{Trait: "evil", Axis: "epochs"}); err == nil {
		t.Error("an empty dose chart drew")
	}
}

// A heatmap's scored cells are filled in their colour, a cell without a
// scored replicate in the missing grey; scoring it removes the grey.
func TestHeatmap(t *testing.T) {
	e := reporttest.Sweep()
	hs := e.Heatmaps()
	b, err := plots.Heatmap(hs[0])
	if err != nil {
		t.Fatal(err)
	}
	img := decodeAny(t, b)
	if s := img.Bounds().Size(); s.X != 1350 || s.Y != 600 {
		t.Fatalf("image is %v, want two 675x600 panels", s)
	}
	if n, _ := pixels(img, report.HeatColor(50), 0); n < 1000 {
		t.Errorf("the cell of mean 50 fills %d pixels of its colour", n)
	}
	if n, _ := pixels(img, report.MissingColor, 0); n < 1000 {
		t.Errorf("the missing cells fill %d grey pixels", n)
	}
	for _, name := range []string{"b3_s1", "b3_s2"} {
		for _, task := range e.Tasks {
			e.Evals = append(e.Evals, report.Eval{Model: name, Task: task.Name, Trait: task.Trait, Metric: judge.Metric{Mean: 30, N: 10}})
		}
	}
	b, err = plots.Heatmap(e.Heatmaps()[0])
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := pixels(decodeAny(t, b), report.MissingColor, 0); n > 100 {
		t.Errorf("every cell scored, yet %d grey pixels", n)
	}
	if _, err := plots.Heatmap(report.Heatmap{Trait: "evil"}); err == nil {
		t.Error("no heatmap drew")
	}
}
