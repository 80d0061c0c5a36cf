package plots

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/modelorganisms/pvbuild/internal/report"
)

// A sweep figure tiles its panels, at most panelCols a row, each this size.
const (
	panelCols   = 3
	panelWidth  = 4.5 * vg.Inch
	panelHeight = 4 * vg.Inch
	// sweepDodge is the x offset between lines, as a share of the gap
	// between the axis's closest values, so error bars do not overlap.
	sweepDodge = 0.06
)

// Dose draws a dose-response chart: one panel per value of the other
// dimensions, in each one line per task through the across-replicate means,
// error bars of one across-replicate SE (none with one replicate), and each
// replicate's mean as a faint point. A value without a scored replicate
// breaks its line and is a cross at the foot of the chart.
func Dose(c report.DoseChart) ([]byte, error) {
	if len(c.Panels) == 0 || len(c.X) == 0 {
		return nil, fmt.Errorf("dose chart %s by %s: nothing to draw", c.Trait, c.Axis)
	}
	gap := c.X[len(c.X)-1].Number - c.X[0].Number
	for i := 1; i < len(c.X); i++ {
		gap = min(gap, c.X[i].Number-c.X[i-1].Number)
	}
	if gap <= 0 {
		gap = 1
	}
	var ticks plot.ConstantTicks
	for _, x := range c.X {
		ticks = append(ticks, plot.Tick{Value: x.Number, Label: x.Value})
	}
	var ps []*plot.Plot
	for pi, panel := range c.Panels {
		p := plot.New()
		p.Title.Text = c.Title
		if l := panel.Label(); l != "" {
			p.Title.Text = report.TraitTitle(c.Trait) + ", " + l
		}
		p.X.Label.Text = c.Axis
		p.Y.Label.Text = "trait expression (0–100)"
		grid := plotter.NewGrid()
		grid.Vertical.Color = nil
		p.Add(grid)
		// References under the trained lines, across the whole x range; the
		// legend names them after the tasks.
		type refEntry struct {
			label string
			thumb legendThumb
		}
		var refLegend []refEntry
		for li, l := range panel.Lines {
			for _, r := range l.References {
				if r.Metric.N == 0 {
					continue
				}
				ln, err := plotter.NewLine(plotter.XYs{{X: c.X[0].Number - gap/2, Y: r.Metric.Mean}, {X: c.X[len(c.X)-1].Number + gap/2, Y: r.Metric.Mean}})
				if err != nil {
					return nil, fmt.Errorf("dose chart %s by %s, %s, reference %s: %w", c.Trait, c.Axis, l.Task.Name, r.Model, err)
				}
				ln.LineStyle = draw.LineStyle{Color: report.TaskColor(li), Width: vg.Points(1.5), Dashes: refDashes[r.Index%len(refDashes)]}
				p.Add(ln)
				refLegend = append(refLegend, refEntry{r.Legend(l.Task.Name), legendThumb{line: ln.LineStyle}})
			}
		}
		for li, l := range panel.Lines {
			if err := addDoseLine(p, c, l, li, (float64(li)-float64(len(panel.Lines)-1)/2)*sweepDodge*gap, pi == 0); err != nil {
				return nil, fmt.Errorf("dose chart %s by %s, %s: %w", c.Trait, c.Axis, l.Task.Name, err)
			}
		}
		if pi == 0 {
			for _, r := range refLegend {
				p.Legend.Add(r.label, r.thumb)
			}
			if anyMissing(c) {
				p.Legend.Add("no replicate scored (missing)", legendThumb{glyph: draw.GlyphStyle{Color: color.Black, Radius: vg.Points(4), Shape: draw.CrossGlyph{}}})
			}
		}
		p.Legend.Top, p.Legend.Left = true, true
		p.Legend.ThumbnailWidth = vg.Points(24)
		p.X.Min, p.X.Max = c.X[0].Number-gap/2, c.X[len(c.X)-1].Number+gap/2
		p.X.Tick.Marker = ticks
		p.Y.Min, p.Y.Max = 0, 100
		p.Y.Tick.Marker = yTicks()
		ps = append(ps, p)
	}
	b, err := tile(ps)
	if err != nil {
		return nil, fmt.Errorf("dose chart %s by %s: %w", c.Trait, c.Axis, err)
	}
	return b, nil
}

// anyMissing says whether a condition of c has no scored replicate.
func anyMissing(c report.DoseChart) bool {
	for _, p := range c.Panels {
		for _, l := range p.Lines {
			for _, r := range l.Points {
				if _, _, _, ok := r.Stat(); r.Condition != "" && !ok {
					return true
				}
			}
		}
	}
	return false
}

// addDoseLine draws one task's line, bars and replicate points on p; the
// legend names it in the first panel only, the same in every panel.
func addDoseLine(p *plot.Plot, c report.DoseChart, l report.DoseLine, li int, offset float64, legend bool) error {
	col := report.TaskColor(li)
	faint := color.NRGBA{col.R, col.G, col.B, 0x70}
	line := draw.LineStyle{Color: col, Width: vg.Points(1.5), Dashes: dashes[li%len(dashes)]}
	if l.OnTarget {
		line.Width = vg.Points(3)
	}
	glyph := draw.GlyphStyle{Color: col, Radius: vg.Points(3.5), Shape: glyphs[li%len(glyphs)]}
	var segment, reps, missing plotter.XYs
	var bars struct {
		plotter.XYs
		plotter.YErrors
	}
	flush := func() error {
		err := addLinePoints(p, segment, line, glyph)
		segment = nil
		return err
	}
	for i, r := range l.Points {
		x := c.X[i].Number + offset
		for _, m := range r.Means {
			reps = append(reps, plotter.XY{X: x, Y: m})
		}
		mean, se, known, ok := r.Stat()
		if !ok {
			if r.Condition != "" {
				missing = append(missing, plotter.XY{X: x, Y: 2})
			}
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		segment = append(segment, plotter.XY{X: x, Y: mean})
		if known {
			bars.XYs = append(bars.XYs, plotter.XY{X: x, Y: mean})
			bars.YErrors = append(bars.YErrors, struct{ Low, High float64 }{se, se})
		}
	}
	if len(reps) > 0 {
		sc, err := plotter.NewScatter(reps)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: faint, Radius: vg.Points(2.2), Shape: draw.CircleGlyph{}}
		p.Add(sc)
	}
	if err := flush(); err != nil {
		return err
	}
	// A condition trained but never scored is a cross on the x axis, so
	// that a gap does not read as a value never tried.
	if len(missing) > 0 {
		sc, err := plotter.NewScatter(missing)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: vg.Points(4), Shape: draw.CrossGlyph{}}
		p.Add(sc)
	}
	if len(bars.XYs) > 0 {
		eb, err := plotter.NewYErrorBars(bars)
		if err != nil {
			return err
		}
		eb.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(1.2)}
		eb.CapWidth = vg.Points(7)
		p.Add(eb)
	}
	if legend {
		p.Legend.Add(l.Task.Name, legendThumb{line, glyph})
	}
	return nil
}

// Heatmap draws a heatmap, a panel per task and value of the other
// dimensions: a cell per condition in
// report.HeatColor of its across-replicate mean, labelled mean ± SE and
// R; grey "missing" where no replicate is scored, blank where no model
// was trained. The first row is on top, as in the tables.
func Heatmap(h report.Heatmap) ([]byte, error) {
	if len(h.Panels) == 0 || len(h.X) == 0 || len(h.Y) == 0 {
		return nil, fmt.Errorf("heatmap %s, %s x %s: nothing to draw", h.Trait, h.YName, h.XName)
	}
	var ps []*plot.Plot
	for _, hp := range h.Panels {
		p := plot.New()
		p.Title.Text = report.TraitTitle(h.Trait) + ": " + hp.Title()
		p.X.Label.Text = h.XName
		p.Y.Label.Text = h.YName
		var xs, ys []string
		for _, x := range h.X {
			xs = append(xs, x.Value)
		}
		for i := range h.Y {
			ys = append(ys, h.Y[len(h.Y)-1-i].Value)
		}
		p.Add(heatCells{hp})
		p.NominalX(xs...)
		p.NominalY(ys...)
		p.X.Min, p.X.Max = -0.5, float64(len(xs))-0.5
		p.Y.Min, p.Y.Max = -0.5, float64(len(ys))-0.5
		ps = append(ps, p)
	}
	b, err := tile(ps)
	if err != nil {
		return nil, fmt.Errorf("heatmap %s, %s x %s: %w", h.Trait, h.YName, h.XName, err)
	}
	return b, nil
}

// heatCells draws a heatmap's cells at integer positions: column j at x j,
// row i at y len(Y)-1-i.
type heatCells struct{ h report.HeatmapPanel }

func (hc heatCells) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	sty := text.Style{Color: color.Black, Font: p.X.Tick.Label.Font, XAlign: draw.XCenter, YAlign: draw.YCenter, Handler: p.X.Tick.Label.Handler}
	sty.Font.Size = vg.Points(9)
	rows := len(hc.h.Cells)
	for i, row := range hc.h.Cells {
		for j, r := range row {
			x, y := float64(j), float64(rows-1-i)
			x0, x1, y0, y1 := trX(x-0.5), trX(x+0.5), trY(y-0.5), trY(y+0.5)
			if r.Condition == "" {
				continue
			}
			mean, se, known, ok := r.Stat()
			fill, label := report.MissingColor, "missing"
			if ok {
				fill = report.HeatColor(mean)
				label = fmt.Sprintf("%.1f (R=%d)", mean, len(r.Means))
				if known {
					label = fmt.Sprintf("%.1f ± %.1f\nR=%d", mean, se, len(r.Means))
				}
				if len(r.Missing) > 0 {
					label += fmt.Sprintf("\n%d missing", len(r.Missing))
				}
			}
			c.FillPolygon(fill, []vg.Point{{X: x0, Y: y0}, {X: x1, Y: y0}, {X: x1, Y: y1}, {X: x0, Y: y1}})
			sty.Color = color.White
			if report.HeatTextDark(fill) {
				sty.Color = color.Black
			}
			c.FillText(sty, vg.Point{X: (x0 + x1) / 2, Y: (y0 + y1) / 2}, label)
		}
	}
}

// yTicks are the fixed 0..100 ticks every trait-expression axis shares.
func yTicks() plot.ConstantTicks {
	var ticks plot.ConstantTicks
	for v := 0; v <= 100; v += 20 {
		ticks = append(ticks, plot.Tick{Value: float64(v), Label: fmt.Sprint(v)})
	}
	return ticks
}

// tile draws plots as panels, panelCols a row, on a white PNG.
func tile(ps []*plot.Plot) ([]byte, error) {
	cols := min(len(ps), panelCols)
	rows := (len(ps) + cols - 1) / cols
	cv := vgimg.NewWith(vgimg.UseWH(panelWidth*vg.Length(cols), panelHeight*vg.Length(rows)), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, cols)
	}
	for i, p := range ps {
		grid[i/cols][i%cols] = p
	}
	canvases := plot.Align(grid, draw.Tiles{Rows: rows, Cols: cols, PadX: vg.Points(6), PadY: vg.Points(6), PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(4)}, draw.New(cv))
	for i, p := range ps {
		p.Draw(canvases[i/cols][i%cols])
	}
	var b bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, cv.Image()); err != nil {
		return nil, fmt.Errorf("encode PNG: %w", err)
	}
	return b.Bytes(), nil
}
