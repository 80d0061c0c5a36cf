package htmlreport

import (
	"fmt"
	"image/color"
	"math"
	"strconv"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/report"
)

// Chart geometry in SVG user units; the SVG scales to the page width.
const (
	chartWidth   = 760
	plotHeight   = 340
	marginLeft   = 72
	marginRight  = 24
	marginTop    = 16
	axisBand     = 64 // below the plot: tick labels and the axis title
	legendRow    = 24
	capHalfWidth = 5
	dodgeStep    = 7 // lines are shifted apart so their error bars do not overlap
)

// svgChart is a report.Chart laid out for the template.
type svgChart struct {
	ID            string
	Title         string
	XTitle        string // the x axis's title
	Width, Height int
	PlotLeft      num
	PlotRight     num
	PlotTop       num
	PlotBottom    num
	YTicks        []tick
	XTicks        []tick
	XLabelX       num
	XLabelY       num
	YLabelX       num
	YLabelY       num
	Series        []svgSeries
	RefLines      []svgRefLine // reference models, dashed across the plot
	Legend        []legendEntry
	Notes         []string // points that could not be drawn, and why
	Desc          string
	// Coherence is the panel under the chart, nil without coherence.
	Coherence *coherenceView
}

type tick struct {
	Pos   num
	Label string
}

type svgSeries struct {
	Name       string
	Color      string
	Dash       string
	Width      num
	Path       string // the line through the drawn points; breaks at gaps
	Points     []svgPoint
	MarkerPath string // the marker shape centred on (0, 0)
	// Dots are a sweep's replicates, faint beside their mean; Crosses its
	// conditions with no scored replicate, on the x axis.
	Dots, Crosses []svgDot
}

// svgDot is a small mark with a title: a replicate, or a missing value.
type svgDot struct {
	X, Y  num
	Title string
}

// svgRefLine is a reference model's score on one task: a dashed
// horizontal line in the task's colour.
type svgRefLine struct {
	Model, Task string
	Color, Dash string
	X1, X2, Y   num
	Title       string
}

type svgPoint struct {
	X, Y        num
	ErrTop      num
	ErrBottom   num
	CapLeft     num
	CapRight    num
	Title       string
	Translate   string
	HasErrorBar bool
}

type legendEntry struct {
	Y, LineX1, LineX2, TextX num
	MarkerTranslate          string
	Series                   svgSeries
	Label                    string
}

// Dash patterns and marker shapes tell the lines apart without colour.
var (
	dashes = []string{"", "7 4", "2 3", "9 3 2 3"}
	// refDashes are the references' patterns, one per reference model;
	// like the PNG's, longer and thinner than the task lines'.
	refDashes = []string{"10 5", "3 4", "14 4 3 4"}
	markers   = []string{
		"M -4.5 0 A 4.5 4.5 0 1 0 4.5 0 A 4.5 4.5 0 1 0 -4.5 0 Z", // circle
		"M -4 -4 H 4 V 4 H -4 Z",                                  // square
		"M 0 -5 L 5 4 H -5 Z",                                     // triangle
		"M 0 -5.5 L 5.5 0 L 0 5.5 L -5.5 0 Z",                     // diamond
	}
)

func hexColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }

func f1(v float64) string { return num(v).String() }

// num is an SVG coordinate, printed to a tenth of a unit: finer is invisible.
type num float64

func (n num) String() string {
	return strconv.FormatFloat(math.Round(float64(n)*10)/10, 'f', -1, 64)
}

// layoutChart places the chart's points: x is the strength, in order, and y
// the trait expression on a fixed 0..100 scale so charts compare at a glance.
func layoutChart(id string, c report.Chart) svgChart {
	const left, right, top, bottom = marginLeft, chartWidth - marginRight, marginTop, marginTop + plotHeight
	s := svgChart{
		ID: id, Title: c.Title, Width: chartWidth, XTitle: "training strength",
		Height:   bottom + axisBand + legendRow*len(c.Lines) + 8,
		PlotLeft: left, PlotRight: right, PlotTop: top, PlotBottom: bottom,
		XLabelX: (left + right) / 2, XLabelY: bottom + 48,
		YLabelX: 20, YLabelY: (top + bottom) / 2,
	}
	y := func(v float64) float64 {
		v = min(max(v, 0), 100) // bars stay within the scale; titles give exact values
		return bottom - (bottom-top)*v/100
	}
	band := float64(right-left) / float64(max(len(c.Strengths), 1))
	x := func(i int) float64 { return left + band*(float64(i)+0.5) }
	for v := 0; v <= 100; v += 20 {
		s.YTicks = append(s.YTicks, tick{num(y(float64(v))), fmt.Sprint(v)})
	}
	for i, st := range c.Strengths {
		s.XTicks = append(s.XTicks, tick{num(x(i)), st})
	}

	var desc []string
	for li, l := range c.Lines {
		ser := svgSeries{
			Name:       l.Task.Name,
			Color:      hexColor(report.TaskColor(li)),
			Dash:       dashes[li%len(dashes)],
			Width:      2,
			MarkerPath: markers[li%len(markers)],
		}
		if l.OnTarget {
			ser.Width = 3.5
		}
		dodge := (float64(li) - float64(len(c.Lines)-1)/2) * dodgeStep
		var path strings.Builder
		pen := false
		var vals []string
		for pi, p := range l.Points {
			if !p.Plotted() {
				pen = false
				switch {
				case p.Model == "":
				case !p.Evaluated:
					s.Notes = append(s.Notes, fmt.Sprintf("%s at %s: model %s not evaluated", l.Task.Name, p.Strength, p.Model))
				default:
					s.Notes = append(s.Notes, fmt.Sprintf("%s at %s: the judge answered none of %d samples (model %s)", l.Task.Name, p.Strength, p.Metric.NoAnswer, p.Model))
				}
				continue
			}
			m := p.Metric
			px, py := x(pi)+dodge, y(m.Mean)
			// The bar is the reported standard error: clustered by question
			// with several samples a question.
			se := fmt.Sprintf("%.2f", m.SE())
			if m.Clustered() {
				se += fmt.Sprintf(" clustered (± %.2f plain)", m.Stderr)
			}
			ser.Points = append(ser.Points, svgPoint{
				X: num(px), Y: num(py),
				ErrTop: num(y(m.Mean + m.SE())), ErrBottom: num(y(m.Mean - m.SE())),
				CapLeft: num(px - capHalfWidth), CapRight: num(px + capHalfWidth),
				HasErrorBar: m.SEKnown(),
				Translate:   fmt.Sprintf("translate(%s %s)", f1(px), f1(py)),
				Title:       fmt.Sprintf("%s at %s (model %s): %.2f ± %s, %s", l.Task.Name, p.Strength, p.Model, m.Mean, se, report.CountText(m)),
			})
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s %s %s ", cmd, f1(px), f1(py))
			pen = true
			vals = append(vals, fmt.Sprintf("%s %.1f", p.Strength, m.Mean))
		}
		ser.Path = strings.TrimSpace(path.String())
		s.Series = append(s.Series, ser)

		s.Legend = append(s.Legend, lineLegend(li, bottom, l.Task, l.OnTarget, ser))
		if len(vals) > 0 {
			desc = append(desc, l.Task.Name+": "+strings.Join(vals, ", "))
		}
	}
	for li, l := range c.Lines {
		for _, r := range l.References {
			if r.Metric.N == 0 {
				s.Notes = append(s.Notes, fmt.Sprintf("%s: reference %s not drawn, the judge answered none of %d samples", l.Task.Name, r.Model, r.Metric.NoAnswer))
				continue
			}
			m := r.Metric
			rl := svgRefLine{Model: r.Model, Task: l.Task.Name, Color: hexColor(report.TaskColor(li)), Dash: refDashes[r.Index%len(refDashes)],
				X1: left, X2: right, Y: num(y(m.Mean)),
				Title: fmt.Sprintf("%s on %s (reference %s, model %s): %.2f ± %.2f, %s", r.Model, l.Task.Name, r.Label, r.ModelID, m.Mean, m.SE(), report.CountText(m))}
			s.RefLines = append(s.RefLines, rl)
			ly := float64(bottom+axisBand+legendRow*len(s.Legend)) + legendRow/2
			s.Legend = append(s.Legend, legendEntry{
				Y: num(ly), LineX1: left, LineX2: left + 36, TextX: left + 46,
				Series: svgSeries{Name: r.Model, Color: rl.Color, Dash: rl.Dash, Width: 1.5},
				Label:  r.Legend(l.Task.Name),
			})
			desc = append(desc, fmt.Sprintf("reference %s on %s: %.1f", r.Model, l.Task.Name, m.Mean))
		}
	}
	s.Height = bottom + axisBand + legendRow*len(s.Legend) + 8
	s.Desc = c.Title + ". Trait expression (0 to 100) by training strength. " + strings.Join(desc, "; ")
	return s
}

// lineLegend is the legend row of a task's line, li rows below the plot
// whose bottom edge is at bottom.
func lineLegend(li int, bottom float64, t report.Task, onTarget bool, ser svgSeries) legendEntry {
	const left = marginLeft
	ly := bottom + axisBand + legendRow*float64(li) + legendRow/2
	label := t.Name + " (" + t.Trait + " score)"
	if onTarget {
		label += ", the trained trait"
	}
	return legendEntry{
		Y: num(ly), LineX1: left, LineX2: left + 36, TextX: left + 46,
		MarkerTranslate: fmt.Sprintf("translate(%s %s)", f1(left+18), f1(ly)),
		Series:          ser, Label: label,
	}
}
