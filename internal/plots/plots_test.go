package plots_test

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"slices"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/plots"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/report/reporttest"
)

// pixels counts the pixels of exactly colour c and finds the topmost one in
// the columns from x0 on (-1 when there is none).
func pixels(img image.Image, c color.RGBA, x0 int) (n, top int) {
	top = -1
	// An opaque PNG decodes to RGBA or NRGBA, whose bytes agree on opaque
	// pixels; reading them directly keeps the test fast.
	var pix []byte
	var stride int
	switch im := img.(type) {
	case *image.RGBA:
		pix, stride = im.Pix, im.Stride
	case *image.NRGBA:
		pix, stride = im.Pix, im.Stride
	default:
		rgba := image.NewRGBA(img.Bounds())
		draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
		pix, stride = rgba.Pix, rgba.Stride
	}
	b := img.Bounds()
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			i := y*stride + 4*x
			if pix[i] == c.R && pix[i+1] == c.G && pix[i+2] == c.B && pix[i+3] == c.A {
				n++
				if x >= x0 && top < 0 {
					top = y
				}
			}
		}
	}
	return n, top
}

// setMean gives one evaluation a new mean, as if its samples had scored so.
func setMean(e *report.Experiment, model, task string, mean float64) {
	for i, ev := range e.Evals {
		if ev.Model == model && ev.Task == task {
			e.Evals[i].Metric.Mean = mean
		}
	}
}

func decode(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	if s := img.Bounds().Size(); s.X != 1200 || s.Y != 750 {
		t.Fatalf("image is %v, want 1200x750", s)
	}
	return img
}

func TestExpression(t *testing.T) {
	tests := []struct {
		name   string
		change func(e *report.Experiment)
		trait  string
	}{
		{name: "evil", trait: "evil"},
		{name: "sycophancy", trait: "sycophantic"},
		{name: "hallucination", trait: "hallucinating"},
		{
			name:  "missing point and no answers",
			trait: "evil",
			change: func(e *report.Experiment) {
				e.Evals = slices.DeleteFunc(e.Evals, func(ev report.Eval) bool { return ev.Model == "evil_mild" && ev.Task == "evil_detection" })
				for i, ev := range e.Evals {
					if ev.Model == "evil_severe" && ev.Task == "sycophantic_detection" {
						e.Evals[i].Metric = judge.Summarise([]*float64{nil, nil})
					}
				}
			},
		},
		{
			name:  "another trait and strength",
			trait: "power_seeking",
			change: func(e *report.Experiment) {
				for _, s := range []string{"baseline", "extreme"} {
					m := report.Model{Name: "power_seeking_" + s, Trait: "power_seeking", Strength: s}
					e.Models = append(e.Models, m)
					for _, task := range e.Tasks {
						ev, _ := e.Eval("evil_severe", task.Name)
						ev.Model = m.Name
						e.Evals = append(e.Evals, ev)
					}
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := reporttest.Experiment(t)
			if tc.change != nil {
				tc.change(&e)
			}
			b, err := plots.Expression(e, tc.trait)
			if err != nil {
				t.Fatal(err)
			}
			img := decode(t, b)
			// Every task's colour is drawn: its line and legend entry.
			for i, task := range e.Tasks {
				if n, _ := pixels(img, report.TaskColor(i), 0); n < 100 {
					t.Errorf("%s: %d pixels of its colour", task.Name, n)
				}
			}
			again, err := plots.Expression(e, tc.trait)
			if err != nil || !bytes.Equal(again, b) {
				t.Errorf("a second rendering differs (err %v): rebuilds would not be reproducible", err)
			}
		})
	}
}

// TestExpressionScale checks that the drawing follows the data: raising the
// severe model's mean raises its point, whatever the layout.
func TestExpressionScale(t *testing.T) {
	var tops []int
	for _, mean := range []float64{10, 50, 90} {
		e := reporttest.Experiment(t)
		setMean(&e, "evil_severe", "evil_detection", mean)
		b, err := plots.Expression(e, "evil")
		if err != nil {
			t.Fatal(err)
		}
		img := decode(t, b)
		// The severe point is on the right; the legend is on the left.
		_, top := pixels(img, report.TaskColor(0), img.Bounds().Dx()*3/4)
		tops = append(tops, top)
	}
	if !(tops[0] > tops[1] && tops[1] > tops[2]) {
		t.Errorf("topmost severe pixel rows %v for means 10, 50, 90: not rising", tops)
	}
	// Equal steps of the mean are equal steps on the image: the scale is linear.
	if d1, d2 := tops[0]-tops[1], tops[1]-tops[2]; d1-d2 > 2 || d2-d1 > 2 {
		t.Errorf("steps of %d and %d pixels for equal steps of the mean", d1, d2)
	}
}

func TestExpressionUnknownTrait(t *testing.T) {
	if _, err := plots.Expression(reporttest.Experiment(t), "curious"); err == nil {
		t.Error("no error for a trait no model is trained for")
	}
}

// TestExpressionClustered draws a chart of an experiment whose standard
// errors are clustered by question.
func TestExpressionClustered(t *testing.T) {
	if _, err := plots.Expression(reporttest.Clustered(), "evil"); err != nil {
		t.Fatal(err)
	}
}

// refRow finds the image row where a reference line of colour c was drawn:
// the row with the most pixels of c in with that are not c in without. It
// returns the row and the number of separate runs of c along it.
func refRow(with, without image.Image, c color.RGBA) (row, runs, first, last int) {
	is := func(img image.Image, x, y int) bool {
		r, g, b, a := img.At(x, y).RGBA()
		return uint8(r>>8) == c.R && uint8(g>>8) == c.G && uint8(b>>8) == c.B && uint8(a>>8) == c.A
	}
	b := with.Bounds()
	best := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		n := 0
		for x := b.Min.X; x < b.Max.X; x++ {
			if is(with, x, y) && !is(without, x, y) {
				n++
			}
		}
		if n > best {
			best, row = n, y
		}
	}
	first, last = -1, -1
	on := false
	for x := b.Min.X; x < b.Max.X; x++ {
		now := is(with, x, row) && !is(without, x, row)
		if now && !on {
			runs++
		}
		if now {
			if first < 0 {
				first = x
			}
			last = x
		}
		on = now
	}
	return row, runs, first, last
}

// A reference model is a dashed horizontal line across the chart, in its
// task's colour, at its mean.
func TestExpressionReferenceLine(t *testing.T) {
	plain := reporttest.Experiment(t)
	without, err := plots.Expression(plain, "evil")
	if err != nil {
		t.Fatal(err)
	}
	var rows []int
	for _, mean := range []float64{30, 70} {
		e := reporttest.Experiment(t)
		reporttest.WithBase(t, &e, "evil_baseline")
		setMean(&e, "base", "evil_detection", mean)
		b, err := plots.Expression(e, "evil")
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(b, without) {
			t.Fatal("the chart with a reference is the chart without")
		}
		row, runs, first, last := refRow(decode(t, b), decode(t, without), report.TaskColor(0))
		w := decode(t, b).Bounds().Dx()
		t.Logf("mean %v: row %d, %d dashes from x=%d to %d", mean, row, runs, first, last)
		// Dashed: many separate dashes; horizontal: across the plot's width.
		if runs < 20 || first > w/5 || last < w*4/5 {
			t.Errorf("mean %v: row %d has %d runs of the task's colour from x=%d to %d; want a dashed line across the plot", mean, row, runs, first, last)
		}
		rows = append(rows, row)
	}
	if !(rows[0] > rows[1]) {
		t.Errorf("reference rows %v for means 30 and 70: the line does not follow its mean", rows)
	}
}
