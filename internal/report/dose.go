package report

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"
)

// StrengthDim names training strength when it is a dimension of a sweep
// beside the grid's axes (a panel of a dose chart, a side of a heatmap).
const StrengthDim = "strength"

// A sweep's figures, for the models trained for one trait:
//
//   - a DoseChart per numeric swept axis: x is the axis value, y the
//     across-replicate mean, one line per task as in the strength charts
//     (same colours), and one panel per value of every other varying
//     dimension (strength, other axes). Lines per task rather than per
//     strength because the question a dose-response answers is "does more
//     of this setting instil more of the trait, and only that trait": the
//     tasks side by side answer it, and the strengths as small multiples
//     keep each panel at a few lines.
//   - a Heatmap per pair of varying dimensions whose first is a numeric
//     axis (the axis x strength, or two axes), a panel per task and per
//     value of the remaining dimensions: a cell per condition.

// DoseChart is trait expression against one numeric swept axis.
type DoseChart struct {
	Trait, Axis, Title string
	// X are the axis's values among the trait's models, ascending.
	X      []Axis
	Panels []DosePanel
}

// DosePanel holds the other varying dimensions at Fixed (strength as an
// Axis named StrengthDim); Fixed is empty when the axis is the only one.
type DosePanel struct {
	Fixed []Axis
	Lines []DoseLine
}

// Label names the panel: "strength severe, learning_rate 0.5", or "" for
// the only panel.
func (p DosePanel) Label() string { return fixedLabel(p.Fixed) }

// DoseLine is one task along the axis: a point per DoseChart.X value, whose
// Condition is "" where no model of the panel has that value.
type DoseLine struct {
	Task     Task
	OnTarget bool
	Points   []Replicates
	// References are the reference models' scores on the task, dashed
	// across the chart as in the strength charts.
	References []RefPoint
}

// Heatmap is the across-replicate means of the models trained for one
// trait over two dimensions: columns the values of the numeric axis XName,
// rows those of YName (a second axis or StrengthDim); a panel per task and
// value of the remaining dimensions.
type Heatmap struct {
	Trait        string
	XName, YName string
	X, Y         []Axis
	Panels       []HeatmapPanel
}

// HeatmapPanel is one task's cells with the remaining dimensions at Fixed.
type HeatmapPanel struct {
	Task     Task
	OnTarget bool
	Fixed    []Axis
	// Cells are [row][column]; a Condition "" is a cell no model has.
	Cells [][]Replicates
}

// Title is "evil_detection, strength severe" or the task alone.
func (h HeatmapPanel) Title() string {
	if l := fixedLabel(h.Fixed); l != "" {
		return h.Task.Name + ", " + l
	}
	return h.Task.Name
}

func fixedLabel(fixed []Axis) string {
	var parts []string
	for _, f := range fixed {
		parts = append(parts, f.Name+" "+f.Value)
	}
	return strings.Join(parts, ", ")
}

// Stat is the condition's across-seed mean and SE (AcrossSeeds).
func (r Replicates) Stat() (mean, se float64, seKnown, ok bool) { return AcrossSeeds(r.Means) }

// Text is a cell as the tables say it: "50.0 ± 5.8 (R=3)", "42.0 (R=1)"
// without a spread, the missing replicates named, "missing (names)" when
// none is scored, "—" where there is no such condition.
func (r Replicates) Text() string {
	if r.Condition == "" {
		return "—"
	}
	mean, se, known, ok := r.Stat()
	var s string
	switch {
	case !ok:
		return "missing (" + strings.Join(r.Missing, ", ") + ")"
	case known:
		s = fmt.Sprintf("%.1f ± %.1f (R=%d)", mean, se, len(r.Means))
	default:
		s = fmt.Sprintf("%.1f (R=1)", mean)
	}
	if len(r.Missing) > 0 {
		s += "; missing " + strings.Join(r.Missing, ", ")
	}
	return s
}

// sweepDim is a dimension the trait's models vary along: strength or an
// axis, with its values in display order.
type sweepDim struct {
	name    string
	numeric bool
	values  []Axis
}

// coord is model m's value on dimension name; false when m has none.
func coord(m Model, name string) (Axis, bool) {
	if name == StrengthDim {
		return Axis{Name: StrengthDim, Value: m.Strength}, true
	}
	for _, a := range m.Axes {
		if a.Name == name {
			return a, true
		}
	}
	return Axis{}, false
}

// sweepModels are the trained models of trait from a grid with swept axes;
// the other models have no place on an axis.
func (e Experiment) sweepModels(trait string) []Model {
	var out []Model
	for _, m := range e.Models {
		if !m.Reference && m.Trait == trait && len(m.Axes) > 0 {
			out = append(out, m)
		}
	}
	return out
}

// sweepDims are the dimensions with at least two values among models:
// strength first (in StrengthOrder), then the axes in declared order,
// numeric ones ascending and others in order of appearance.
func (e Experiment) sweepDims(models []Model) []sweepDim {
	var names []string
	for _, m := range models {
		for _, a := range m.Axes {
			names = appendNew(names, a.Name)
		}
	}
	var dims []sweepDim
	strengths := sweepDim{name: StrengthDim}
	for _, s := range e.StrengthOrder() {
		if slices.ContainsFunc(models, func(m Model) bool { return m.Strength == s }) {
			strengths.values = append(strengths.values, Axis{Name: StrengthDim, Value: s})
		}
	}
	if len(strengths.values) > 1 {
		dims = append(dims, strengths)
	}
	for _, n := range names {
		d := sweepDim{name: n, numeric: true}
		for _, m := range models {
			a, ok := coord(m, n)
			if !ok {
				continue
			}
			d.numeric = d.numeric && a.Numeric
			if !slices.ContainsFunc(d.values, func(v Axis) bool { return v.Value == a.Value }) {
				d.values = append(d.values, a)
			}
		}
		if d.numeric {
			slices.SortStableFunc(d.values, func(a, b Axis) int {
				switch {
				case a.Number < b.Number:
					return -1
				case a.Number > b.Number:
					return 1
				}
				return 0
			})
		}
		if len(d.values) > 1 {
			dims = append(dims, d)
		}
	}
	return dims
}

// combos are every combination of one value per dimension, the first
// dimension slowest; one empty combination for no dimensions.
func combos(dims []sweepDim) [][]Axis {
	out := [][]Axis{nil}
	for _, d := range dims {
		var next [][]Axis
		for _, c := range out {
			for _, v := range d.values {
				next = append(next, append(slices.Clone(c), v))
			}
		}
		out = next
	}
	return out
}

// replicatesAt gathers, on task, the replicates of the first condition
// whose models sit at every coordinate of at; a model outside a condition
// is a condition of its own. When two conditions share the coordinates
// (they differ in a setting that is not swept), the first declared is
// shown, as Chart does for two models of one strength.
func replicatesAt(scored map[[2]string]float64, models []Model, task string, at []Axis) Replicates {
	r := Replicates{Task: task}
	for _, m := range models {
		if !slices.ContainsFunc(at, func(a Axis) bool {
			c, ok := coord(m, a.Name)
			return !ok || c.Value != a.Value
		}) {
			cond := m.Condition
			if cond == "" {
				cond = m.Name
			}
			if r.Condition == "" {
				r.Condition = cond
			}
			if cond != r.Condition {
				continue
			}
			if mean, ok := scored[[2]string{m.Name, task}]; ok {
				r.Models = append(r.Models, m.Name)
				r.Means = append(r.Means, mean)
			} else {
				r.Missing = append(r.Missing, m.Name)
			}
		}
	}
	return r
}

func without(dims []sweepDim, names ...string) []sweepDim {
	return slices.DeleteFunc(slices.Clone(dims), func(d sweepDim) bool { return slices.Contains(names, d.name) })
}

// DoseCharts are the dose-response charts of every trained trait, one per
// numeric axis with at least two values among its models; nil outside a
// sweep.
func (e Experiment) DoseCharts() []DoseChart {
	var out []DoseChart
	scored := e.scoredMeans()
	for _, trait := range e.TrainedTraits() {
		all := e.sweepModels(trait)
		for _, d := range e.sweepDims(all) {
			if !d.numeric {
				continue
			}
			// The panels are the other dimensions of the models on this
			// axis only: another grid's axes do not split its chart.
			models := having(all, d.name)
			dims := e.sweepDims(models)
			c := DoseChart{Trait: trait, Axis: d.name, Title: "Training for " + TraitTitle(trait) + ", by " + d.name, X: d.values}
			for _, fixed := range combos(without(dims, d.name)) {
				p := DosePanel{Fixed: fixed}
				trained := false
				for _, t := range e.Tasks {
					l := DoseLine{Task: t, OnTarget: t.Trait == trait, References: e.TaskReferences(t)}
					for _, x := range d.values {
						r := replicatesAt(scored, models, t.Name, append(slices.Clone(fixed), x))
						trained = trained || r.Condition != ""
						l.Points = append(l.Points, r)
					}
					p.Lines = append(p.Lines, l)
				}
				// A grid that is not a full product has combinations no
				// model sits at: no panel for them.
				if trained {
					c.Panels = append(c.Panels, p)
				}
			}
			out = append(out, c)
		}
	}
	return out
}

// Heatmaps are, per trained trait, one per pair of its varying dimensions
// whose first is a numeric axis; nil without two varying dimensions.
func (e Experiment) Heatmaps() []Heatmap {
	var out []Heatmap
	scored := e.scoredMeans()
	for _, trait := range e.TrainedTraits() {
		all := e.sweepModels(trait)
		names := e.sweepDims(all)
		for i, xn := range names {
			if !xn.numeric {
				continue
			}
			for j, yn := range names {
				// Each pair once: strength and non-numeric axes only as rows;
				// two numeric axes in declared order.
				if j == i || (yn.numeric && j < i) {
					continue
				}
				models := having(all, xn.name, yn.name)
				dims := e.sweepDims(models)
				xi := slices.IndexFunc(dims, func(d sweepDim) bool { return d.name == xn.name })
				yi := slices.IndexFunc(dims, func(d sweepDim) bool { return d.name == yn.name })
				if xi < 0 || yi < 0 {
					continue // the models with both axes have one value of one
				}
				xd, yd := dims[xi], dims[yi]
				h := Heatmap{Trait: trait, XName: xd.name, YName: yd.name, X: xd.values, Y: yd.values}
				for _, t := range e.Tasks {
					for _, fixed := range combos(without(dims, xd.name, yd.name)) {
						p := HeatmapPanel{Task: t, OnTarget: t.Trait == trait, Fixed: fixed}
						trained := false
						for _, y := range yd.values {
							var row []Replicates
							for _, x := range xd.values {
								r := replicatesAt(scored, models, t.Name, append(slices.Clone(fixed), y, x))
								trained = trained || r.Condition != ""
								row = append(row, r)
							}
							p.Cells = append(p.Cells, row)
						}
						if trained {
							h.Panels = append(h.Panels, p)
						}
					}
				}
				out = append(out, h)
			}
		}
	}
	return out
}

// scoredMeans are the means of the scored evaluations by (model, task),
// looked up once per cell and replicate; the first of a pair wins, as in
// Eval.
func (e Experiment) scoredMeans() map[[2]string]float64 {
	out := map[[2]string]float64{}
	seen := map[[2]string]bool{}
	for _, ev := range e.Evals {
		k := [2]string{ev.Model, ev.Task}
		if seen[k] {
			continue
		}
		seen[k] = true
		if ev.Metric.N > 0 {
			out[k] = ev.Metric.Mean
		}
	}
	return out
}

// having are the models that carry every dimension of names.
func having(models []Model, names ...string) []Model {
	return slices.DeleteFunc(slices.Clone(models), func(m Model) bool {
		return slices.ContainsFunc(names, func(n string) bool { _, ok := coord(m, n); return !ok })
	})
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// heatStops are viridis at five points: a sequential scale that reads in
// grey and with the common colour blindnesses.
var heatStops = []color.RGBA{
	{0x44, 0x01, 0x54, 0xFF},
	{0x3B, 0x52, 0x8B, 0xFF},
	{0x21, 0x91, 0x8C, 0xFF},
	{0x5E, 0xC9, 0x62, 0xFF},
	{0xFD, 0xE7, 0x25, 0xFF},
}

// MissingColor fills a heatmap cell without a scored replicate.
var MissingColor = color.RGBA{0xDD, 0xDD, 0xDD, 0xFF}

// HeatColor is a heatmap cell's colour for a score on 0..100, the same in
// the HTML and PNG renderings.
func HeatColor(v float64) color.RGBA {
	t := min(max(v/100, 0), 1) * float64(len(heatStops)-1)
	i := min(int(t), len(heatStops)-2)
	f := t - float64(i)
	a, b := heatStops[i], heatStops[i+1]
	mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + f*(float64(y)-float64(x)))) }
	return color.RGBA{mix(a.R, b.R), mix(a.G, b.G), mix(a.B, b.B), 0xFF}
}

// HeatTextDark says whether a cell's label reads better in black than in
// white on c (its luminance is high).
func HeatTextDark(c color.RGBA) bool {
	return 0.2126*float64(c.R)+0.7152*float64(c.G)+0.0722*float64(c.B) > 140
}
