// Package plots draws the report's charts as PNG images with gonum/plot, for
// places that cannot show the HTML report (a CI summary, a paper draft).
package plots

import (
	"bytes"
	"fmt"
	"image/color"
	"image/png"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/modelorganisms/pvbuild/internal/report"
)

// Size and resolution of the image: 1200 x 750 pixels.
const (
	width  = 8 * vg.Inch
	height = 5 * vg.Inch
	dpi    = 150
	dodge  = 0.06 // x offset between lines, in strength units, so error bars do not overlap
)

// Dash patterns and glyphs tell the lines apart without colour, as in the
// HTML report.
var (
	dashes = [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(1.5), vg.Points(2.5)}, {vg.Points(7), vg.Points(2.5), vg.Points(1.5), vg.Points(2.5)}}
	glyphs = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, draw.CrossGlyph{}}
	// A reference model's line is dashed, thinner and without glyphs, one
	// pattern per reference: the level a trained line is read against.
	refDashes = [][]vg.Length{{vg.Points(10), vg.Points(5)}, {vg.Points(3), vg.Points(4)}, {vg.Points(14), vg.Points(4), vg.Points(3), vg.Points(4)}}
)

// Expression draws trait expression against training strength for the
// models trained for trait: one line per evaluation task, error bars of one
// standard error, y from 0 to 100. Points without a scored evaluation are
// left out and break their line.
func Expression(e report.Experiment, trait string) ([]byte, error) {
	if !slices.Contains(e.TrainedTraits(), trait) {
		return nil, fmt.Errorf("plot %q: no model is trained for it (traits: %q)", trait, e.TrainedTraits())
	}
	c := e.Chart(trait)
	p := plot.New()
	p.Title.Text = c.Title
	p.Title.TextStyle.Font.Size = vg.Points(15)
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = "training strength"
	p.Y.Label.Text = "trait expression (judge score, 0–100)"
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	p.Add(grid)

	// References go under the trained lines, across the whole x range.
	type refEntry struct {
		label string
		line  draw.LineStyle
	}
	var refLegend []refEntry
	for li, l := range c.Lines {
		for _, r := range l.References {
			if r.Metric.N == 0 {
				continue
			}
			style := draw.LineStyle{Color: report.TaskColor(li), Width: vg.Points(1.5), Dashes: refDashes[r.Index%len(refDashes)]}
			ln, err := plotter.NewLine(plotter.XYs{{X: -0.5, Y: r.Metric.Mean}, {X: float64(len(c.Strengths)) - 0.5, Y: r.Metric.Mean}})
			if err != nil {
				return nil, fmt.Errorf("plot %s, %s, reference %s: %w", trait, l.Task.Name, r.Model, err)
			}
			ln.LineStyle = style
			p.Add(ln)
			refLegend = append(refLegend, refEntry{r.Legend(l.Task.Name), style})
		}
	}

	for li, l := range c.Lines {
		col := report.TaskColor(li)
		line := draw.LineStyle{Color: col, Width: vg.Points(1.5), Dashes: dashes[li%len(dashes)]}
		if l.OnTarget {
			line.Width = vg.Points(3)
		}
		glyph := draw.GlyphStyle{Color: col, Radius: vg.Points(3.5), Shape: glyphs[li%len(glyphs)]}
		offset := (float64(li) - float64(len(c.Lines)-1)/2) * dodge

		var segment plotter.XYs
		var bars struct {
			plotter.XYs
			plotter.YErrors
		}
		flush := func() error {
			err := addLinePoints(p, segment, line, glyph)
			segment = nil
			return err
		}
		for i, pt := range l.Points {
			if !pt.Plotted() {
				if err := flush(); err != nil {
					return nil, fmt.Errorf("plot %s, %s: %w", trait, l.Task.Name, err)
				}
				continue
			}
			xy := plotter.XY{X: float64(i) + offset, Y: pt.Metric.Mean}
			segment = append(segment, xy)
			bars.XYs = append(bars.XYs, xy)
			bars.YErrors = append(bars.YErrors, struct{ Low, High float64 }{pt.Metric.SE(), pt.Metric.SE()})
		}
		if err := flush(); err != nil {
			return nil, fmt.Errorf("plot %s, %s: %w", trait, l.Task.Name, err)
		}
		if len(bars.XYs) > 0 {
			eb, err := plotter.NewYErrorBars(bars)
			if err != nil {
				return nil, fmt.Errorf("plot %s, %s: %w", trait, l.Task.Name, err)
			}
			eb.LineStyle = draw.LineStyle{Color: col, Width: vg.Points(1.2)}
			eb.CapWidth = vg.Points(7)
			p.Add(eb)
		}
		label := l.Task.Name + " (" + l.Task.Trait + " score)"
		if l.OnTarget {
			label += ", the trained trait"
		}
		p.Legend.Add(label, legendThumb{line, glyph})
	}
	for _, r := range refLegend {
		p.Legend.Add(r.label, legendThumb{line: r.line})
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.XOffs, p.Legend.YOffs = vg.Points(8), -vg.Points(6)
	p.Legend.ThumbnailWidth = vg.Points(28)

	// Fixed scales, set after the plotters so their data ranges do not widen
	// them: every trait's chart reads the same.
	p.NominalX(c.Strengths...)
	p.X.Min, p.X.Max = -0.5, float64(len(c.Strengths))-0.5
	p.Y.Min, p.Y.Max = 0, 100
	var ticks plot.ConstantTicks
	for v := 0; v <= 100; v += 20 {
		ticks = append(ticks, plot.Tick{Value: float64(v), Label: fmt.Sprint(v)})
	}
	p.Y.Tick.Marker = ticks

	cv := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(dpi), vgimg.UseBackgroundColor(color.White))
	p.Draw(draw.New(cv))
	var b bytes.Buffer
	// The fastest deflate: the same pixels in about half the time, for a
	// file about 5% larger.
	enc := png.Encoder{CompressionLevel: png.BestSpeed}
	if err := enc.Encode(&b, cv.Image()); err != nil {
		return nil, fmt.Errorf("plot %s: encode PNG: %w", trait, err)
	}
	return b.Bytes(), nil
}

// legendThumb shows a line's dash and glyph together in the legend.
type legendThumb struct {
	line  draw.LineStyle
	glyph draw.GlyphStyle
}

func (t legendThumb) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	if t.line.Width > 0 { // a glyph alone: the sweep's missing cross
		c.StrokeLine2(t.line, c.Min.X, y, c.Max.X, y)
	}
	if t.glyph.Shape != nil {
		c.DrawGlyph(t.glyph, c.Center())
	}
}

// addLinePoints draws one unbroken run of a line with its points.
func addLinePoints(p *plot.Plot, pts plotter.XYs, line draw.LineStyle, glyph draw.GlyphStyle) error {
	if len(pts) == 0 {
		return nil
	}
	ln, sc, err := plotter.NewLinePoints(pts)
	if err != nil {
		return err
	}
	ln.LineStyle, sc.GlyphStyle = line, glyph
	p.Add(ln, sc)
	return nil
}
