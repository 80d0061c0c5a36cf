package htmlreport_test

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/modelorganisms/pvbuild/internal/htmlreport"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/report/reporttest"
)

// A sweep adds its tab after the trait's, holding a dose chart per
// strength (means, bars, replicate dots, a cross for the missing
// condition) and the heatmaps, a missing cell marked.
func TestRenderSweep(t *testing.T) {
	page, err := htmlreport.Render(reporttest.Sweep())
	if err != nil {
		t.Fatal(err)
	}
	var tabs []string
	for _, m := range tabButton.FindAllStringSubmatch(string(page), -1) {
		tabs = append(tabs, m[1])
	}
	if want := []string{"Training for Evil", "Evil by epochs", "Summary", "Samples"}; !slices.Equal(tabs, want) {
		t.Fatalf("tabs %q, want %q", tabs, want)
	}
	p := panels(string(page))["sweep-0"]
	if n := strings.Count(p, `<svg class="chart"`); n != 2 {
		t.Errorf("%d dose charts, want one per strength", n)
	}
	// Severe: 2 + 3 replicates on each of two tasks; baseline: 1 on each.
	if n := strings.Count(p, `<circle class="replicate"`); n != 12 {
		t.Errorf("%d replicate dots, want 12", n)
	}
	if n := strings.Count(p, `<g class="reference"`); n != 4 {
		t.Errorf("%d reference lines, want the base reference on each task in both charts", n)
	}
	if n := strings.Count(p, `class="missing-mark"`); n != 2 {
		t.Errorf("%d missing marks, want one per task at baseline, 3 epochs", n)
	}
	for _, want := range []string{
		"evil_detection at epochs 3 (strength severe): 80.0 ± 5.8 (R=3); missing s3_s4",
		"evil_detection at epochs 3 (strength baseline): missing, no replicate scored (b3_s1, b3_s2)",
		"strength baseline, epochs 3: missing (b3_s1, b3_s2)",
		">50.0 ± 10.0<",
	} {
		if !strings.Contains(unescapeHTML(p), want) {
			t.Errorf("sweep panel lacks %q", want)
		}
	}
	if n := len(regexp.MustCompile(`<g class="cell missing"`).FindAllString(p, -1)); n != 2 {
		t.Errorf("%d missing heatmap cells, want one per task", n)
	}
}

// The shipped experiment has no swept axis: no sweep tab.
func TestRenderNoSweep(t *testing.T) {
	page, err := htmlreport.Render(reporttest.Experiment(t))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(page), "sweep-0") || strings.Contains(string(page), `class="replicate"`) {
		t.Fatal("the shipped experiment's report has a sweep tab")
	}
}

// In a browser the sweep tab opens its panel, whose charts and heatmap
// cells are drawn at a size, without a console error.
func TestBrowserSweep(t *testing.T) {
	chromium(t)
	page, err := htmlreport.Render(reporttest.Sweep())
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(t.TempDir(), "report.html")
	if err := os.WriteFile(name, page, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, _, problems := browse(t, "file://"+name)
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("tab-sweep-0"))); err != nil {
		t.Fatal(err)
	}
	type state struct {
		Hidden    bool      `json:"hidden"`
		Charts    []float64 `json:"charts"`
		Cells     []float64 `json:"cells"`
		Fills     []string  `json:"fills"`
		Dots      int       `json:"dots"`
		TraitOpen bool      `json:"traitOpen"`
	}
	st := eval[state](t, ctx, `(() => {
		const p = document.getElementById("panel-sweep-0");
		return {
			hidden: p.hidden,
			charts: Array.from(p.querySelectorAll("svg.chart"), s => s.getBoundingClientRect().width),
			cells: Array.from(p.querySelectorAll("g.cell rect"), r => r.getBoundingClientRect().width),
			fills: Array.from(p.querySelectorAll("g.cell rect"), r => getComputedStyle(r).fill),
			dots: Array.from(p.querySelectorAll("circle.replicate")).filter(c => c.getBoundingClientRect().width > 0).length,
			traitOpen: !document.getElementById("panel-trait-0").hidden,
		};
	})()`)
	if st.Hidden || st.TraitOpen {
		t.Fatalf("after the click: sweep hidden %v, trait panel open %v", st.Hidden, st.TraitOpen)
	}
	if len(st.Charts) != 2 || st.Charts[0] < 300 {
		t.Errorf("dose charts %v px wide", st.Charts)
	}
	if len(st.Cells) != 8 || slices.Min(st.Cells) < 50 {
		t.Errorf("heatmap cells %v px wide, want 8 cells", st.Cells)
	}
	if !slices.Contains(st.Fills, "rgb(221, 221, 221)") || st.Dots != 12 {
		t.Errorf("fills %q (want the missing grey among them), %d replicate dots drawn", st.Fills, st.Dots)
	}
	if got := problems(); len(got) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(got, "\n"))
	}
}

// One value of an axis is no sweep: the page is byte for byte the page
// without axes.
func TestRenderOneAxisValueUnchanged(t *testing.T) {
	e := reporttest.Experiment(t)
	want, err := htmlreport.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	for i := range e.Models {
		e.Models[i].Axes = []report.Axis{{Name: "epochs", Value: "3", Number: 3, Numeric: true}}
	}
	got, err := htmlreport.Render(e)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("one epochs value changed the report")
	}
	if !bytes.Equal(report.Markdown(e), report.Markdown(reporttest.Experiment(t))) {
		t.Fatal("one epochs value changed summary.md")
	}
}
