package htmlreport_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/htmlreport"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/report/reporttest"
)

// planted is an answer that runs script if it is ever parsed as HTML.
const planted = `<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">`

// hostile plants markup in every text of the experiment that reaches the page.
func hostile(e *report.Experiment) {
	e.Title = `Report </title><script>window.__pwned=3</script>`
	e.Evals[0].Samples[0].Answer = planted
	e.Evals[0].Samples[1].Question = `</script><script>window.__pwned=4</script>`
	e.Evals[0].Samples[2].Answer = "a & b < c > d \u2028 \"quoted\" 'single'"
}

// withNoAnswer makes the judge answer none of one evaluation's samples.
func withNoAnswer(e *report.Experiment, model, task string) {
	for i, ev := range e.Evals {
		if ev.Model == model && ev.Task == task {
			var scores []*float64
			for j := range ev.Samples {
				ev.Samples[j].Score = nil
				scores = append(scores, nil)
			}
			ev.Samples = slices.Clone(ev.Samples)
			ev.Metric = judge.Summarise(scores)
			e.Evals[i] = ev
		}
	}
}

var (
	dataBlock   = regexp.MustCompile(`(?s)<script type="application/json" id="pv-data">(.*?)</script>`)
	scriptBlock = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
	styleBlock  = regexp.MustCompile(`(?s)<style>(.*?)</style>`)
	cspMeta     = regexp.MustCompile(`<meta http-equiv="Content-Security-Policy" content="([^"]*)">`)
	panelStart  = regexp.MustCompile(`<section class="panel" role="tabpanel" id="panel-([^"]+)"`)
	tabButton   = regexp.MustCompile(`<button type="button" role="tab" id="tab-[^"]+" [^>]*>([^<]*)</button>`)
)

// panels splits the page into its tab panels by id.
func panels(page string) map[string]string {
	out := map[string]string{}
	locs := panelStart.FindAllStringSubmatchIndex(page, -1)
	for i, l := range locs {
		end := strings.Index(page[l[0]:], "</section>") + l[0]
		if i+1 < len(locs) && locs[i+1][0] < end {
			end = locs[i+1][0]
		}
		out[page[l[2]:l[3]]] = page[l[0]:end]
	}
	return out
}

func unescapeHTML(s string) string {
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", "&#34;", `"`, "&#39;", "'", "&#43;", "+").Replace(s)
}

func TestRender(t *testing.T) {
	tests := []struct {
		name   string
		change func(e *report.Experiment)
		check  func(t *testing.T, e report.Experiment, page string)
	}{
		{name: "real run"},
		{
			name:   "hostile text",
			change: hostile,
			check: func(t *testing.T, e report.Experiment, page string) {
				if n := strings.Count(page, "<script"); n != 2 {
					t.Errorf("%d <script elements, want the data and the page's own", n)
				}
				for _, raw := range []string{"<img", "<script>window", `onerror="window`} {
					if strings.Contains(page, raw) {
						t.Errorf("planted %q reached the page unescaped", raw)
					}
				}
				if !strings.Contains(page, "<title>Report &lt;/title&gt;&lt;script&gt;window.__pwned=3&lt;/script&gt;</title>") {
					t.Error("title not escaped in <title>")
				}
			},
		},
		{
			name: "missing evaluation and no answers",
			change: func(e *report.Experiment) {
				e.Evals = slices.DeleteFunc(e.Evals, func(ev report.Eval) bool { return ev.Model == "evil_mild" && ev.Task == "evil_detection" })
				withNoAnswer(e, "sycophantic_severe", "sycophantic_detection")
			},
			check: func(t *testing.T, e report.Experiment, page string) {
				p := panels(page)
				if !strings.Contains(p["trait-0"], "evil_detection at mild: model evil_mild not evaluated") {
					t.Error("evil chart does not say evil_mild is not evaluated")
				}
				if !strings.Contains(p["trait-1"], "sycophantic_detection at severe: the judge answered none of 6 samples (model sycophantic_severe)") {
					t.Error("sycophancy chart does not say the judge answered none")
				}
				if !strings.Contains(p["summary"], "not evaluated") || !strings.Contains(p["summary"], "no answer") {
					t.Error("summary does not show the missing and unanswered cells")
				}
			},
		},
		{
			name: "another trait",
			change: func(e *report.Experiment) {
				for _, s := range e.Strengths {
					m := report.Model{Name: "power_seeking_" + s, Trait: "power_seeking", Strength: s}
					e.Models = append(e.Models, m)
					for _, task := range e.Tasks {
						ev, _ := e.Eval("evil_"+s, task.Name)
						ev.Model = m.Name
						e.Evals = append(e.Evals, ev)
					}
				}
			},
		},
		{
			name:   "nothing evaluated",
			change: func(e *report.Experiment) { e.Evals = nil },
		},
		{
			name: "base reference",
			change: func(e *report.Experiment) {
				reporttest.WithBase(t, e, "evil_baseline")
				for i := range e.Evals {
					if e.Evals[i].Model == "base" {
						e.Evals[i].Metric.Mean = 50 + 10*float64(i%3)
					}
				}
			},
			check: func(t *testing.T, e report.Experiment, page string) {
				p := panels(page)
				if strings.Contains(page, "Training for None") {
					t.Error("the reference's trait has a chart")
				}
				for i, task := range e.Tasks {
					ev, _ := e.Eval("base", task.Name)
					// The plot spans y 16..356 for 0..100.
					y := fmt.Sprint(math.Round((356-340*ev.Metric.Mean/100)*10) / 10)
					line := fmt.Sprintf(`y1="%s" y2="%s" stroke="%s" stroke-width="1.5" stroke-dasharray="10 5"/>`, y, y, hexColor(report.TaskColor(i)))
					for _, panel := range []string{"trait-0", "trait-1", "trait-2"} {
						if !strings.Contains(p[panel], `<g class="reference" tabindex="0" data-model="base" data-task="`+task.Name+`">`) || !strings.Contains(p[panel], line) {
							t.Errorf("%s: no dashed reference line %q for %s", panel, line, task.Name)
						}
						if !strings.Contains(p[panel], ">base (reference) on "+task.Name+"</text>") {
							t.Errorf("%s: no legend entry for the reference on %s", panel, task.Name)
						}
					}
				}
				summary := unescapeHTML(p["summary"])
				if strings.Count(summary, `<tr class="reference"><th scope="row">base</th><td>base</td><td>gpt-4.1-mini-2025-04-14</td>`) != len(e.Tasks) {
					t.Error("summary lacks a reference row per task")
				}
				for _, s := range report.Summaries(e) {
					for _, r := range s.Rows {
						for _, c := range r.Cells {
							if c.RefDiff == nil || !strings.Contains(summary, "Δ vs base "+c.RefDiff.String()) {
								t.Errorf("summary lacks %s %s's difference from the reference", s.Task.Name, r.Label)
							}
						}
					}
				}
				if !strings.Contains(page, "with 1 reference model (evaluated, not trained here)") {
					t.Error("subtitle does not count the reference")
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
			b, err := htmlreport.Render(e)
			if err != nil {
				t.Fatal(err)
			}
			page := string(b)

			// Self-contained: nothing to fetch outside the data, which is text.
			markup := dataBlock.ReplaceAllString(page, "")
			for _, bad := range []string{"<link", " src=", "@import", "url(", "<iframe", "<object", "<embed"} {
				if strings.Contains(markup, bad) {
					t.Errorf("page contains %q", bad)
				}
			}
			for _, m := range regexp.MustCompile(`https?://[^"' <]+`).FindAllString(markup, -1) {
				if m != "http://www.w3.org/2000/svg" {
					t.Errorf("page names %s", m)
				}
			}

			// The CSP allows exactly the page's script and style.
			csp := unescapeHTML(cspMeta.FindStringSubmatch(page)[1])
			for _, c := range []struct {
				re   *regexp.Regexp
				kind string
			}{{scriptBlock, "script-src"}, {styleBlock, "style-src"}} {
				body := c.re.FindStringSubmatch(page)[1]
				sum := sha256.Sum256([]byte(body))
				if want := c.kind + " 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("CSP %q does not deny by default", csp)
			}

			// The data block holds the evaluations as they are, with no raw '<'.
			data := dataBlock.FindStringSubmatch(page)[1]
			if strings.ContainsAny(data, "<>") {
				t.Error("data block holds a raw < or >")
			}
			var got []report.Eval
			if err := json.Unmarshal([]byte(data), &got); err != nil {
				t.Fatalf("data block: %v", err)
			}
			want := e.Evals
			if want == nil {
				want = []report.Eval{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Error("data block differs from the evaluations")
			}

			// One tab per trained trait, then Summary and Samples.
			var labels []string
			for _, m := range tabButton.FindAllStringSubmatch(page, -1) {
				labels = append(labels, unescapeHTML(m[1]))
			}
			var wantLabels []string
			for _, tr := range e.TrainedTraits() {
				wantLabels = append(wantLabels, "Training for "+report.TraitTitle(tr))
			}
			wantLabels = append(wantLabels, "Summary", "Samples")
			if !slices.Equal(labels, wantLabels) {
				t.Errorf("tabs %q, want %q", labels, wantLabels)
			}

			// Each chart draws every plotted point with its value and N in a title.
			ps := panels(page)
			for i, tr := range e.TrainedTraits() {
				c := e.Chart(tr)
				panel := ps[fmt.Sprintf("trait-%d", i)]
				drawn := strings.Count(panel, `<g class="point"`)
				n := 0
				for _, l := range c.Lines {
					for _, p := range l.Points {
						if !p.Plotted() {
							continue
						}
						n++
						title := fmt.Sprintf("<title>%s at %s (model %s): %.2f ± %.2f, N=%d", l.Task.Name, p.Strength, p.Model, p.Metric.Mean, p.Metric.Stderr, p.Metric.N)
						if !strings.Contains(panel, title) {
							t.Errorf("%s: no point titled %q", tr, title)
						}
					}
				}
				if drawn != n {
					t.Errorf("%s: %d points drawn, %d plotted", tr, drawn, n)
				}
				if n > 0 && !strings.Contains(panel, `<path class="line"`) {
					t.Errorf("%s: no line", tr)
				}
			}

			// The summary shows each difference from baseline.
			for _, s := range report.Summaries(e) {
				for _, r := range s.Rows {
					for _, c := range r.Cells {
						if c.Diff != nil && !strings.Contains(unescapeHTML(ps["summary"]), "Δ "+c.Diff.String()) {
							t.Errorf("summary lacks %s %s Δ %s", s.Task.Name, r.Label, c.Diff)
						}
					}
				}
			}
			if tc.check != nil {
				tc.check(t, e, page)
			}
		})
	}
}

// TestRenderClustered checks that with several samples per question the
// page shows the standard error clustered by question, labelled, with the
// plain one beside it, and the differences computed with it (the values are
// worked by hand in report's TestClusteredIntervals).
func TestRenderClustered(t *testing.T) {
	page, err := htmlreport.Render(reporttest.Clustered())
	if err != nil {
		t.Fatal(err)
	}
	text := unescapeHTML(string(page))
	for _, want := range []string{
		"evil_detection at baseline (model evil_baseline): 40.00 ± 14.43 clustered (± 9.66 plain), N=6",
		"evil_detection at severe (model evil_severe): 80.00 ± 14.43 clustered (± 9.66 plain), N=6",
		"40.0 ± 14.4 clustered (± 9.7 plain)",
		"+40.0 [-0.0, 80.0]",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func hexColor(c color.RGBA) string { return fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B) }
