package htmlreport

import (
	"fmt"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/report"
)

// sweepView is a sweep tab: the dose-response chart of one trait along one
// numeric axis, a chart per panel, then the heatmaps whose columns are the
// same axis.
type sweepView struct {
	ID, Title, Axis string
	Charts          []svgChart
	Heatmaps        []heatmapView
}

// heatmapView is one report.Heatmap: a grid of cells per panel.
type heatmapView struct {
	Title string
	Maps  []svgHeatmap
}

// svgHeatmap is a heatmap panel laid out for the template.
type svgHeatmap struct {
	ID, Title      string
	Width, Height  int
	XTicks, YTicks []tick
	XTitle, YTitle string
	XLabelX        num
	XLabelY        num
	YLabelX        num
	YLabelY        num
	Cells          []svgCell
	Desc           string
}

// svgCell is a heatmap cell: its box, fill, and label lines.
type svgCell struct {
	X, Y, W, H   num
	TextX, TextY num
	Fill, Ink    string
	Lines        []string
	Title        string
	Missing      bool
}

// Heatmap geometry in SVG user units.
const (
	heatLeft   = 110
	heatTop    = 12
	heatCellW  = 130
	heatCellH  = 56
	heatBottom = 56 // tick labels and the axis title
)

// sweepViews are the sweep tabs of e, numbered from 0; nil outside a sweep.
func sweepViews(e report.Experiment) []sweepView {
	heat := e.Heatmaps()
	var out []sweepView
	for i, c := range e.DoseCharts() {
		v := sweepView{ID: fmt.Sprintf("sweep-%d", i), Title: report.TraitTitle(c.Trait) + " by " + c.Axis, Axis: c.Axis}
		for pi, p := range c.Panels {
			v.Charts = append(v.Charts, layoutDose(fmt.Sprintf("%s-%d", v.ID, pi), c, p))
		}
		for hi, h := range heat {
			if h.Trait != c.Trait || h.XName != c.Axis {
				continue
			}
			hv := heatmapView{Title: h.YName + " × " + h.XName}
			for pi, p := range h.Panels {
				hv.Maps = append(hv.Maps, layoutHeatmap(fmt.Sprintf("%s-h%d-%d", v.ID, hi, pi), h, p))
			}
			v.Heatmaps = append(v.Heatmaps, hv)
		}
		out = append(out, v)
	}
	return out
}

// layoutDose places a dose panel's points: x is the axis value on a linear
// scale with half the closest gap as margin, y the 0..100 scale of the
// strength charts; error bars are the across-replicate SE, each replicate a
// faint dot, a condition with no scored replicate a cross on the x axis.
func layoutDose(id string, c report.DoseChart, panel report.DosePanel) svgChart {
	const left, right, top, bottom = marginLeft, chartWidth - marginRight, marginTop, marginTop + plotHeight
	title := c.Title
	if l := panel.Label(); l != "" {
		title += ", " + l
	}
	s := svgChart{
		ID: id, Title: title, Width: chartWidth, XTitle: c.Axis,
		PlotLeft: left, PlotRight: right, PlotTop: top, PlotBottom: bottom,
		XLabelX: (left + right) / 2, XLabelY: bottom + 48,
		YLabelX: 20, YLabelY: (top + bottom) / 2,
	}
	lo, hi := c.X[0].Number, c.X[len(c.X)-1].Number
	gap := hi - lo
	for i := 1; i < len(c.X); i++ {
		gap = min(gap, c.X[i].Number-c.X[i-1].Number)
	}
	if gap <= 0 {
		gap = 1
	}
	x := func(v float64) float64 { return left + (right-left)*(v-lo+gap/2)/(hi-lo+gap) }
	y := func(v float64) float64 { return bottom - (bottom-top)*min(max(v, 0), 100)/100 }
	for v := 0; v <= 100; v += 20 {
		s.YTicks = append(s.YTicks, tick{num(y(float64(v))), fmt.Sprint(v)})
	}
	for _, v := range c.X {
		s.XTicks = append(s.XTicks, tick{num(x(v.Number)), v.Value})
	}
	var desc []string
	for li, l := range panel.Lines {
		ser := svgSeries{Name: l.Task.Name, Color: hexColor(report.TaskColor(li)), Dash: dashes[li%len(dashes)], Width: 2, MarkerPath: markers[li%len(markers)]}
		if l.OnTarget {
			ser.Width = 3.5
		}
		dodge := (float64(li) - float64(len(panel.Lines)-1)/2) * dodgeStep
		var path strings.Builder
		pen := false
		var vals []string
		for i, r := range l.Points {
			at := fmt.Sprintf("%s at %s %s", l.Task.Name, c.Axis, c.X[i].Value)
			if l := panel.Label(); l != "" {
				at += " (" + l + ")"
			}
			px := x(c.X[i].Number) + dodge
			for ri, m := range r.Means {
				ser.Dots = append(ser.Dots, svgDot{X: num(px), Y: num(y(m)), Title: fmt.Sprintf("%s, replicate %s: %.2f", at, r.Models[ri], m)})
			}
			mean, se, known, ok := r.Stat()
			if !ok {
				pen = false
				if r.Condition != "" {
					ser.Crosses = append(ser.Crosses, svgDot{X: num(px), Y: num(bottom), Title: at + ": no replicate scored (missing " + strings.Join(r.Missing, ", ") + ")"})
					s.Notes = append(s.Notes, at+": missing, no replicate scored ("+strings.Join(r.Missing, ", ")+")")
				}
				continue
			}
			py := y(mean)
			ser.Points = append(ser.Points, svgPoint{
				X: num(px), Y: num(py),
				ErrTop: num(y(mean + se)), ErrBottom: num(y(mean - se)),
				CapLeft: num(px - capHalfWidth), CapRight: num(px + capHalfWidth),
				HasErrorBar: known,
				Translate:   fmt.Sprintf("translate(%s %s)", f1(px), f1(py)),
				Title:       at + ": " + r.Text(),
			})
			cmd := "L"
			if !pen {
				cmd = "M"
			}
			fmt.Fprintf(&path, "%s %s %s ", cmd, f1(px), f1(py))
			pen = true
			vals = append(vals, fmt.Sprintf("%s %.1f", c.X[i].Value, mean))
		}
		ser.Path = strings.TrimSpace(path.String())
		s.Series = append(s.Series, ser)
		s.Legend = append(s.Legend, lineLegend(li, bottom, l.Task, l.OnTarget, ser))
		if len(vals) > 0 {
			desc = append(desc, l.Task.Name+": "+strings.Join(vals, ", "))
		}
	}
	for li, l := range panel.Lines {
		for _, r := range l.References {
			if r.Metric.N == 0 {
				continue
			}
			rl := svgRefLine{Model: r.Model, Task: l.Task.Name, Color: hexColor(report.TaskColor(li)), Dash: refDashes[r.Index%len(refDashes)],
				X1: left, X2: right, Y: num(y(r.Metric.Mean)),
				Title: fmt.Sprintf("%s on %s (reference %s, model %s): %.2f ± %.2f, %s", r.Model, l.Task.Name, r.Label, r.ModelID, r.Metric.Mean, r.Metric.SE(), report.CountText(r.Metric))}
			s.RefLines = append(s.RefLines, rl)
			ly := float64(bottom+axisBand+legendRow*len(s.Legend)) + legendRow/2
			s.Legend = append(s.Legend, legendEntry{
				Y: num(ly), LineX1: left, LineX2: left + 36, TextX: left + 46,
				Series: svgSeries{Name: r.Model, Color: rl.Color, Dash: rl.Dash, Width: 1.5},
				Label:  r.Legend(l.Task.Name),
			})
			desc = append(desc, fmt.Sprintf("reference %s on %s: %.1f", r.Model, l.Task.Name, r.Metric.Mean))
		}
	}
	s.Height = bottom + axisBand + legendRow*len(s.Legend) + 8
	s.Desc = title + ". Trait expression (0 to 100) by " + c.Axis + ", mean across replicates. " + strings.Join(desc, "; ")
	return s
}

// layoutHeatmap places a heatmap panel's cells, the first row on top as in
// the tables; a cell no model has is left blank.
func layoutHeatmap(id string, h report.Heatmap, p report.HeatmapPanel) svgHeatmap {
	w, ht := heatCellW*len(h.X), heatCellH*len(h.Y)
	s := svgHeatmap{ID: id, Title: report.TraitTitle(h.Trait) + ": " + p.Title(), Width: heatLeft + w + 12, Height: heatTop + ht + heatBottom,
		XTitle: h.XName, YTitle: h.YName,
		XLabelX: num(heatLeft + w/2), XLabelY: num(heatTop + ht + 44), YLabelX: 16, YLabelY: num(heatTop + ht/2)}
	for j, x := range h.X {
		s.XTicks = append(s.XTicks, tick{num(heatLeft + heatCellW*j + heatCellW/2), x.Value})
	}
	for i, y := range h.Y {
		s.YTicks = append(s.YTicks, tick{num(heatTop + heatCellH*i + heatCellH/2), y.Value})
	}
	var desc []string
	for i, row := range p.Cells {
		for j, r := range row {
			if r.Condition == "" {
				continue
			}
			cell := svgCell{X: num(heatLeft + heatCellW*j), Y: num(heatTop + heatCellH*i), W: heatCellW, H: heatCellH,
				TextX: num(heatLeft + heatCellW*j + heatCellW/2), TextY: num(heatTop + heatCellH*i + heatCellH/2),
				Title: fmt.Sprintf("%s %s, %s %s: %s", h.YName, h.Y[i].Value, h.XName, h.X[j].Value, r.Text())}
			mean, se, known, ok := r.Stat()
			fill := report.MissingColor
			switch {
			case !ok:
				cell.Missing, cell.Lines = true, []string{"missing"}
			case known:
				fill = report.HeatColor(mean)
				cell.Lines = []string{fmt.Sprintf("%.1f ± %.1f", mean, se), fmt.Sprintf("R=%d", len(r.Means))}
			default:
				fill = report.HeatColor(mean)
				cell.Lines = []string{fmt.Sprintf("%.1f", mean), "R=1"}
			}
			if ok && len(r.Missing) > 0 {
				cell.Lines[1] += fmt.Sprintf(", %d missing", len(r.Missing))
			}
			cell.Fill, cell.Ink = hexColor(fill), "#ffffff"
			if report.HeatTextDark(fill) {
				cell.Ink = "#000000"
			}
			s.Cells = append(s.Cells, cell)
			desc = append(desc, cell.Title)
		}
	}
	s.Desc = s.Title + ". Mean across replicates ± SE across replicates. " + strings.Join(desc, "; ")
	return s
}
