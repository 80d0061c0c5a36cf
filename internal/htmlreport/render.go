// Package htmlreport renders the experiment as one self-contained HTML page:
// a chart per trained trait, the summary table and a sample explorer. It
// loads nothing: CSS, script, data and charts (SVG drawn here) are inline,
// and its Content-Security-Policy allows only its own script and style, by
// hash, so the page works offline and a hostile answer in the data cannot run.
package htmlreport

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/report"
)

var (
	//go:embed page.html
	pageHTML string
	//go:embed report.css
	pageCSS string
	//go:embed report.js
	pageJS string
	//go:embed sweep.html
	sweepHTML string

	// sweep.html defines the chart figure and a sweep's tab for page.html.
	// Parsed when a report is first written, not at every start.
	page = sync.OnceValue(func() *template.Template {
		t := template.Must(template.New("page").Parse(pageHTML))
		template.Must(t.New("parts").Parse(sweepHTML))
		return t
	})
)

type tab struct{ ID, Label string }

type summaryView struct {
	Task, Trait string
	Strengths   []string
	Rows        []rowView
	References  []refView
}

// refView is a reference model's row: evaluated, not trained here.
type refView struct{ Model, Label, ModelID, Value, Count, Coherence, Coherent string }

type rowView struct {
	Label    string
	OnTarget bool // the row's trained trait is the one the task measures
	Cells    []cellView
}

// RefDiff is the difference from the task's first reference model,
// labelled with its name ("vs base +3.0 [...]").
type cellView struct{ Value, Count, Diff, RefDiff, Coherence, Coherent, Class string }

// coherenceView is a trait tab's coherence panel: per task (row) and
// strength (column), the answers' coherence and the trait over the
// coherent ones.
type coherenceView struct {
	Threshold string
	Strengths []string
	Rows      []coherenceRow
}

type coherenceRow struct {
	Task, Trait string
	OnTarget    bool
	Cells       []cellView
}

type pageData struct {
	Title, Subtitle, Baseline string
	CSP                       string
	CSS                       template.CSS
	Script                    template.JS
	Data                      template.JS
	Tabs                      []tab
	Charts                    []svgChart
	Sweeps                    []sweepView
	Summaries                 []summaryView
	Models, Tasks             []string
	HasReferences             bool
}

// Render returns the report page for e.
func Render(e report.Experiment) ([]byte, error) {
	evals := e.Evals
	if evals == nil {
		evals = []report.Eval{}
	}
	// json.Marshal escapes <, > and & inside strings, so no answer can close
	// the data's <script> element early.
	data, err := json.Marshal(evals)
	if err != nil {
		return nil, fmt.Errorf("encode samples: %w", err)
	}
	p := pageData{
		Title:    e.Title,
		Subtitle: subtitle(e),
		CSP:      csp(pageJS, pageCSS),
		CSS:      template.CSS(pageCSS),
		Script:   template.JS(pageJS),
		Data:     template.JS(data),
	}
	if p.Title == "" {
		p.Title = "Persona Vectors experiment"
	}
	cols := e.StrengthOrder()
	if len(cols) > 0 {
		p.Baseline = cols[0]
	}
	for i, trait := range e.TrainedTraits() {
		ch := e.Chart(trait)
		c := layoutChart(fmt.Sprintf("trait-%d", i), ch)
		c.Coherence = coherenceOf(ch)
		p.Charts = append(p.Charts, c)
		p.Tabs = append(p.Tabs, tab{c.ID, c.Title})
	}
	p.Sweeps = sweepViews(e)
	for _, s := range p.Sweeps {
		p.Tabs = append(p.Tabs, tab{s.ID, s.Title})
	}
	p.Tabs = append(p.Tabs, tab{"summary", "Summary"}, tab{"samples", "Samples"})
	for _, s := range report.Summaries(e) {
		p.Summaries = append(p.Summaries, summaryOf(s))
	}
	for _, m := range e.Models {
		p.Models = appendNew(p.Models, m.Name)
	}
	p.HasReferences = len(e.References()) > 0
	for _, t := range e.Tasks {
		p.Tasks = appendNew(p.Tasks, t.Name)
	}
	for _, ev := range e.Evals {
		p.Models = appendNew(p.Models, ev.Model)
		p.Tasks = appendNew(p.Tasks, ev.Task)
	}
	var b bytes.Buffer
	if err := page().Execute(&b, p); err != nil {
		return nil, fmt.Errorf("render report: %w", err)
	}
	return b.Bytes(), nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// csp allows the page's own script and style by hash and nothing else: no
// request leaves the page, and injected markup could neither run nor load.
func csp(script, style string) string {
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	return "default-src 'none'; script-src " + hash(script) + "; style-src " + hash(style) +
		"; base-uri 'none'; form-action 'none'"
}

func subtitle(e report.Experiment) string {
	var judges []string
	for _, ev := range e.Evals {
		judges = appendNew(judges, ev.JudgeModel)
	}
	refs := len(e.References())
	s := fmt.Sprintf("%d fine-tuned models (%s), each evaluated on %d tasks", len(e.Models)-refs, plural(len(e.TrainedTraits()), "trained trait"), len(e.Tasks))
	if refs > 0 {
		s += fmt.Sprintf(", with %s (evaluated, not trained here)", plural(refs, "reference model"))
	}
	if len(judges) > 0 {
		s += "; judge: " + strings.Join(judges, ", ")
	}
	if e.Protocol != "" {
		s += "; " + e.Protocol
	}
	return s + "."
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func summaryOf(s report.Summary) summaryView {
	v := summaryView{Task: s.Task.Name, Trait: s.Task.Trait, Strengths: s.Strengths}
	for _, r := range s.Rows {
		rv := rowView{Label: r.Label, OnTarget: r.Trait == s.Task.Trait}
		for _, c := range r.Cells {
			var cv cellView
			switch {
			case c.Model == "":
				cv = cellView{Value: "—", Class: "missing"}
			case !c.Evaluated:
				cv = cellView{Value: "not evaluated", Class: "missing"}
			default:
				cv = cellView{Value: report.MetricText(c.Metric), Count: report.CountText(c.Metric),
					Coherence: report.CoherenceText(c.Coherence), Coherent: report.CoherentText(c.Coherence)}
				if c.Diff != nil {
					cv.Diff = c.Diff.String()
				}
				if c.RefDiff != nil {
					cv.RefDiff = "vs " + s.References[0].Model + " " + c.RefDiff.String()
				}
			}
			rv.Cells = append(rv.Cells, cv)
		}
		v.Rows = append(v.Rows, rv)
	}
	for _, r := range s.References {
		rv := refView{Model: r.Model, Label: r.Label, ModelID: r.ModelID, Value: report.MetricText(r.Metric),
			Coherence: report.CoherenceText(r.Coherence), Coherent: report.CoherentText(r.Coherence)}
		if r.Metric.N > 0 {
			rv.Count = report.CountText(r.Metric)
		}
		v.References = append(v.References, rv)
	}
	return v
}

// coherenceOf is the coherence panel of a chart's points; nil when none of
// them has a coherence judgement.
func coherenceOf(c report.Chart) *coherenceView {
	v := &coherenceView{Strengths: c.Strengths}
	judged := false
	for _, l := range c.Lines {
		r := coherenceRow{Task: l.Task.Name, Trait: l.Task.Trait, OnTarget: l.OnTarget}
		for _, p := range l.Points {
			var cv cellView
			switch {
			case p.Model == "":
				cv = cellView{Value: "—", Class: "missing"}
			case !p.Evaluated:
				cv = cellView{Value: "not evaluated", Class: "missing"}
			case p.Coherence == nil:
				cv = cellView{Value: "not judged", Class: "missing"}
			default:
				judged = true
				v.Threshold = fmt.Sprintf("%g", p.Coherence.Threshold)
				cv = cellView{Coherence: report.CoherenceText(p.Coherence), Coherent: report.CoherentText(p.Coherence)}
			}
			r.Cells = append(r.Cells, cv)
		}
		v.Rows = append(v.Rows, r)
	}
	if !judged {
		return nil
	}
	return v
}
