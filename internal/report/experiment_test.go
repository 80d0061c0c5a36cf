package report_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/report/reporttest"
)

// mdTable is one Markdown table: header cells and rows keyed by their first cell.
type mdTable struct {
	header []string
	rows   map[string][]string
}

// parseMarkdown collects the tables under each "## " heading; a heading's
// first table is the means, the second the differences.
func parseMarkdown(t *testing.T, md string) map[string][]mdTable {
	t.Helper()
	out := map[string][]mdTable{}
	section := ""
	var cur *mdTable
	for line := range strings.Lines(md) {
		line = strings.TrimRight(line, "\n")
		if s, ok := strings.CutPrefix(line, "## "); ok {
			section, cur = splitRow("|" + s + "|")[0], nil
			continue
		}
		if !strings.HasPrefix(line, "|") {
			cur = nil
			continue
		}
		cells := splitRow(line)
		switch {
		case cur == nil:
			out[section] = append(out[section], mdTable{header: cells, rows: map[string][]string{}})
			cur = &out[section][len(out[section])-1]
		case strings.HasPrefix(cells[0], ":--"):
		default:
			if len(cells) != len(cur.header) {
				t.Fatalf("row %q has %d cells, header %d", line, len(cells), len(cur.header))
			}
			cur.rows[cells[0]] = cells
		}
	}
	return out
}

// splitRow splits a table row at pipes that are not escaped and unescapes
// the cells.
func splitRow(line string) []string {
	var cells []string
	var b strings.Builder
	line = strings.TrimSpace(line)
	line = line[1 : len(line)-1]
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line):
			i++
			b.WriteByte(line[i])
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(b.String()))
			b.Reset()
		default:
			b.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(b.String()))
}

func evalOf(t *testing.T, e report.Experiment, model, task string) (report.Eval, bool) {
	t.Helper()
	n := 0
	var found report.Eval
	for _, ev := range e.Evals {
		if ev.Model == model && ev.Task == task {
			found = ev
			n++
		}
	}
	if n > 1 {
		t.Fatalf("%d evaluations of %s on %s", n, model, task)
	}
	return found, n == 1
}

func removeEval(e *report.Experiment, model, task string) {
	e.Evals = slices.DeleteFunc(e.Evals, func(ev report.Eval) bool { return ev.Model == model && ev.Task == task })
}

// setScores replaces an evaluation's scores (nil: no answer) and its metric.
func setScores(e *report.Experiment, model, task string, scores ...*float64) {
	for i, ev := range e.Evals {
		if ev.Model == model && ev.Task == task {
			ev.Samples = slices.Clone(ev.Samples[:len(scores)])
			for j := range ev.Samples {
				ev.Samples[j].Score = scores[j]
			}
			ev.Metric = judge.Summarise(scores)
			e.Evals[i] = ev
		}
	}
}

func ptr(v float64) *float64 { return &v }

// expectedCell is the table cell of a model on a task, from its evaluation file.
func expectedCell(t *testing.T, e report.Experiment, model, task string) string {
	ev, ok := evalOf(t, e, model, task)
	switch {
	case model == "":
		return "—"
	case !ok:
		return "not evaluated"
	case ev.Metric.N == 0:
		return fmt.Sprintf("no answer (%d)", ev.Metric.NoAnswer)
	}
	m := ev.Metric
	s := fmt.Sprintf("%.1f ± %.1f (N=%d", m.Mean, m.Stderr, m.N)
	if m.NoAnswer > 0 {
		s += fmt.Sprintf(", %d no answer", m.NoAnswer)
	}
	return s + ")"
}

// expectedDiff recomputes a difference from the two evaluation files.
func expectedDiff(t *testing.T, e report.Experiment, model, base, task string) string {
	a, okA := evalOf(t, e, model, task)
	b, okB := evalOf(t, e, base, task)
	if !okA || !okB || a.Metric.N == 0 || b.Metric.N == 0 {
		return "—"
	}
	d := a.Metric.Mean - b.Metric.Mean
	if a.Metric.N < 2 || b.Metric.N < 2 {
		return fmt.Sprintf("%+.1f (no interval: N<2)", d)
	}
	h := 1.96 * math.Sqrt(a.Metric.Stderr*a.Metric.Stderr+b.Metric.Stderr*b.Metric.Stderr)
	return fmt.Sprintf("%+.1f [%.1f, %.1f]", d, d-h, d+h)
}

func TestMarkdown(t *testing.T) {
	type row struct {
		label, trait string
		models       []string // by column; "" where the row has no model
	}
	tests := []struct {
		name   string
		change func(e *report.Experiment)
		// rows expected; nil: one row per trait with the grid's models.
		rows  []row
		check func(t *testing.T, md string)
	}{
		{name: "real run"},
		{
			name:   "no answer at all",
			change: func(e *report.Experiment) { setScores(e, "evil_mild", "evil_detection", nil, nil) },
		},
		{
			name:   "one scored sample has no interval",
			change: func(e *report.Experiment) { setScores(e, "evil_severe", "evil_detection", ptr(80), nil) },
		},
		{
			name: "missing evaluations",
			change: func(e *report.Experiment) {
				removeEval(e, "sycophantic_baseline", "evil_detection")
				removeEval(e, "hallucinating_mild", "hallucinating_detection")
			},
		},
		{
			name: "second model of a cell and an unlisted strength",
			change: func(e *report.Experiment) {
				for _, m := range []report.Model{
					{Name: "evil_severe_5ep", Trait: "evil", Strength: "severe"},
					{Name: "evil_extreme", Trait: "evil", Strength: "extreme"},
				} {
					e.Models = append(e.Models, m)
					for _, t := range e.Tasks {
						ev, _ := e.Eval("evil_severe", t.Name)
						ev.Model = m.Name
						e.Evals = append(e.Evals, ev)
					}
				}
			},
			rows: []row{
				{"evil", "evil", []string{"evil_baseline", "evil_mild", "evil_severe", "evil_extreme"}},
				{"evil_severe_5ep", "evil", []string{"", "", "evil_severe_5ep", ""}},
			},
		},
		{
			name: "names with markup",
			change: func(e *report.Experiment) {
				e.Title = "A | B <script>alert(1)</script>"
				for i := range e.Models {
					if e.Models[i].Trait == "evil" {
						e.Models[i].Trait = "ev|l_*x*"
					}
				}
				e.Tasks[0].Trait = "ev|l_*x*"
			},
			check: func(t *testing.T, md string) {
				if strings.Contains(md, "<script>") {
					t.Error("markup passed through unescaped")
				}
				if !strings.HasPrefix(md, `# A \| B \<script\>alert(1)\</script\>`) {
					t.Errorf("title line: %q", strings.SplitN(md, "\n", 2)[0])
				}
			},
		},
		{
			name: "one strength has no differences",
			change: func(e *report.Experiment) {
				e.Strengths = e.Strengths[:1]
				e.Models = slices.DeleteFunc(e.Models, func(m report.Model) bool { return m.Strength != "baseline" })
			},
			check: func(t *testing.T, md string) {
				if strings.Contains(md, "Difference") {
					t.Error("difference table with a single strength")
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
			md := string(report.Markdown(e))
			tables := parseMarkdown(t, md)
			cols := e.StrengthOrder()
			rows := tc.rows
			byTrait := map[string]int{}
			for _, m := range e.Models {
				if tc.rows != nil {
					break
				}
				i, ok := byTrait[m.Trait]
				if !ok {
					i = len(rows)
					byTrait[m.Trait] = i
					rows = append(rows, row{m.Trait, m.Trait, make([]string, len(cols))})
				}
				rows[i].models[slices.Index(cols, m.Strength)] = m.Name
			}
			traitBase := map[string]string{}
			for _, r := range rows {
				if _, ok := traitBase[r.trait]; !ok {
					traitBase[r.trait] = r.models[0]
				}
			}
			for _, task := range e.Tasks {
				sec := fmt.Sprintf("%s (%s score)", task.Name, task.Trait)
				ts := tables[sec]
				if len(ts) == 0 {
					t.Fatalf("no table under %q in\n%s", sec, md)
				}
				if want := append([]string{"trained trait"}, cols...); !slices.Equal(ts[0].header, want) {
					t.Errorf("%s: header %q, want %q", sec, ts[0].header, want)
				}
				if len(cols) > 1 && len(ts) != 2 {
					t.Fatalf("%s: %d tables, want means and differences", sec, len(ts))
				}
				for _, r := range rows {
					label, models := r.label, r.models
					evaluated := slices.ContainsFunc(models, func(m string) bool { _, ok := evalOf(t, e, m, task.Name); return m != "" && ok })
					got, ok := ts[0].rows[label]
					if ok != evaluated {
						t.Errorf("%s: row %q present %v, want %v", sec, label, ok, evaluated)
						continue
					}
					if !ok {
						continue
					}
					base := models[0]
					if _, ok := evalOf(t, e, base, task.Name); !ok || base == "" {
						base = traitBase[r.trait]
					}
					for i, m := range models {
						if want := expectedCell(t, e, m, task.Name); got[i+1] != want {
							t.Errorf("%s, %s, %s: %q, want %q", sec, label, cols[i], got[i+1], want)
						}
						if i == 0 {
							continue
						}
						if want := expectedDiff(t, e, m, base, task.Name); ts[1].rows[label][i] != want {
							t.Errorf("%s, %s, %s − %s: %q, want %q", sec, label, cols[i], cols[0], ts[1].rows[label][i], want)
						}
					}
				}
			}
			if tc.check != nil {
				tc.check(t, md)
			}
		})
	}
}

func TestDiffFrom(t *testing.T) {
	e := reporttest.Experiment(t)
	for _, task := range e.Tasks {
		for _, trait := range e.TrainedTraits() {
			base, _ := e.Eval(trait+"_baseline", task.Name)
			for _, s := range []string{"mild", "severe"} {
				ev, _ := e.Eval(trait+"_"+s, task.Name)
				t.Run(ev.Model+"/"+task.Name, func(t *testing.T) {
					d, ok := report.DiffFrom(ev.Metric, base.Metric)
					if !ok || !d.Interval {
						t.Fatalf("no difference for two scored evaluations: %+v", d)
					}
					if got, want := d.Value, ev.Metric.Mean-base.Metric.Mean; math.Abs(got-want) > 1e-12 {
						t.Errorf("diff %v, want %v", got, want)
					}
					se := math.Sqrt(ev.Metric.Stderr*ev.Metric.Stderr + base.Metric.Stderr*base.Metric.Stderr)
					if math.Abs((d.High-d.Low)-2*1.96*se) > 1e-9 || math.Abs((d.High+d.Low)/2-d.Value) > 1e-9 {
						t.Errorf("interval [%v, %v] is not diff ± 1.96·%v", d.Low, d.High, se)
					}
				})
			}
		}
	}
}

func TestChart(t *testing.T) {
	e := reporttest.Experiment(t)
	removeEval(&e, "evil_mild", "sycophantic_detection")
	e.Models = append(e.Models, report.Model{Name: "power_seeking_mild", Trait: "power_seeking", Strength: "mild"})
	for _, trait := range e.TrainedTraits() {
		c := e.Chart(trait)
		if !strings.HasPrefix(c.Title, "Training for ") || strings.Contains(c.Title, "_") {
			t.Errorf("%s: title %q", trait, c.Title)
		}
		if len(c.Lines) != len(e.Tasks) {
			t.Fatalf("%s: %d lines for %d tasks", trait, len(c.Lines), len(e.Tasks))
		}
		for i, l := range c.Lines {
			if l.Task != e.Tasks[i] || l.OnTarget != (l.Task.Trait == trait) {
				t.Errorf("%s: line %d is %+v", trait, i, l)
			}
			for j, p := range l.Points {
				if p.Strength != c.Strengths[j] {
					t.Errorf("%s: point %d at %q, want %q", trait, j, p.Strength, c.Strengths[j])
				}
				ev, ok := evalOf(t, e, p.Model, l.Task.Name)
				if p.Evaluated != ok || (ok && p.Metric != ev.Metric) {
					t.Errorf("%s %s %s: point %+v, evaluation %v %+v", trait, l.Task.Name, p.Strength, p, ok, ev.Metric)
				}
				if p.Model != "" {
					m := e.Models[slices.IndexFunc(e.Models, func(m report.Model) bool { return m.Name == p.Model })]
					if m.Trait != trait || m.Strength != p.Strength {
						t.Errorf("%s: point %s from model %+v", trait, p.Strength, m)
					}
				}
			}
		}
	}
	for trait, want := range map[string]string{"evil": "Evil", "sycophantic": "Sycophancy", "hallucinating": "Hallucination", "power_seeking": "Power seeking", "self-preservation": "Self preservation"} {
		if got := report.TraitTitle(trait); got != want {
			t.Errorf("TraitTitle(%q) = %q, want %q", trait, got, want)
		}
	}
}

// TestClusteredIntervals checks that with several samples per question the
// differences from baseline and their 95% intervals use the standard error
// clustered by question, and that the tables and eval_results.json say so.
//
// Baseline: q1 = {10, 20}, q2 = {30, 50}, q3 = {60, 70}: mean 40, plain SE
// 9.66092, clustered SE sqrt(1.5·5000)/6 = 14.43376 (worked in judge's
// TestSummariseClustered). Severe is every score + 40: mean 80, the same
// SEs. Difference 40 ± 1.96·sqrt(2·14.43376²) = 40 ± 40.0083, where the
// plain SEs would give 40 ± 26.7787.
func TestClusteredIntervals(t *testing.T) {
	e := reporttest.Clustered()
	sums := report.Summaries(e)
	d := sums[0].Rows[0].Cells[1].Diff
	if d == nil || !d.Interval || !d.Clustered {
		t.Fatalf("difference %+v, want a clustered interval", d)
	}
	const half = 1.96 * 14.433756729740644 * math.Sqrt2
	if math.Abs(half-40.0083) > 1e-4 {
		t.Fatalf("hand value %v", half)
	}
	if math.Abs(d.Value-40) > 1e-9 || math.Abs(d.Low-(40-half)) > 1e-9 || math.Abs(d.High-(40+half)) > 1e-9 {
		t.Errorf("difference %+v, want 40 ± %v (clustered), not ± %v (plain)", d, half, 1.96*9.66091783079296*math.Sqrt2)
	}

	md := string(report.Markdown(e))
	for _, want := range []string{"clustered by question", "The differences and their intervals use the clustered one.",
		"40.0 ± 14.4 clustered (± 9.7 plain) (N=6)", "80.0 ± 14.4 clustered (± 9.7 plain) (N=6)", "+40.0 [-0.0, 80.0]"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary.md lacks %q:\n%s", want, md)
		}
	}

	b, err := json.Marshal(e.Variants())
	if err != nil {
		t.Fatal(err)
	}
	if want := `"evil_score":{"mean":40,"stderr":9.66091783079296,"n":6,"no_answer":0,"stderr_clustered":14.433756729740644,"clusters":3}`; !strings.Contains(string(b), want) {
		t.Errorf("eval_results.json lacks %s:\n%s", want, b)
	}

	var tbl bytes.Buffer
	if err := report.Table(&tbl, e.Variants(), e.Tasks, e.Strengths); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"mean ± stderr clustered by question, plain stderr beside it", "40.0 ± 14.4 clustered (± 9.7 plain)"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
}

// TestPlainMetricShape checks that one sample per question keeps
// eval_results.json's original shape and the plain standard error.
func TestPlainMetricShape(t *testing.T) {
	e := reporttest.Experiment(t)
	b, err := json.Marshal(e.Variants())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "stderr_clustered") || strings.Contains(string(b), "clusters") {
		t.Errorf("clustered fields in a one-sample experiment: %s", b)
	}
	if md := string(report.Markdown(e)); strings.Contains(md, "clustered") {
		t.Errorf("summary.md of a one-sample experiment mentions clustering:\n%s", md)
	}
}

// TestCoherenceInReports checks that an evaluation's coherence judgement
// reaches eval_results.json (beside the original metric), the terminal
// table and summary.md, cell by cell.
func TestCoherenceInReports(t *testing.T) {
	e := reporttest.Experiment(t)
	coh := map[string]*report.Coherence{
		"evil_severe": {Prompt: "p", Threshold: 50, Metric: judge.Metric{Mean: 61.5, Stderr: 4.25, N: 6},
			Coherent: 3, Share: 0.5, Trait: judge.Metric{Mean: 77.25, Stderr: 2.5, N: 3}},
		"evil_mild": {Prompt: "p", Threshold: 50, Metric: judge.Metric{Mean: 20, Stderr: 1, N: 5, NoAnswer: 1}},
	}
	for i, ev := range e.Evals {
		if c, ok := coh[ev.Model]; ok && ev.Task == "evil_detection" {
			e.Evals[i].Coherence = c
		}
	}
	var severe report.Variant
	for _, v := range e.Variants() {
		if v.VariantName == "evil_severe" {
			severe = v
		}
	}
	ev := severe.Evaluations["evil_detection"]
	if ev.Metrics["coherence"] != coh["evil_severe"].Metric || ev.Metrics["evil_score_coherent"] != coh["evil_severe"].Trait ||
		ev.Coherent == nil || *ev.Coherent != (report.CoherentShare{Threshold: 50, Count: 3, Share: 0.5}) {
		t.Errorf("eval_results.json entry %+v (coherent %+v)", ev, ev.Coherent)
	}
	if _, ok := ev.Metrics["evil_score"]; !ok {
		t.Errorf("the original metric is gone: %+v", ev.Metrics)
	}
	if other := severe.Evaluations["sycophantic_detection"]; other.Coherent != nil || len(other.Metrics) != 1 {
		t.Errorf("an evaluation without coherence changed shape: %+v", other)
	}

	tables := parseMarkdown(t, string(report.Markdown(e)))
	ts := tables["evil_detection (evil score)"]
	if len(ts) != 4 {
		t.Fatalf("evil_detection: %d tables, want means, differences, coherence and coherent-only", len(ts))
	}
	for _, c := range []struct {
		table     int
		row, col  int
		want, why string
	}{
		{2, 0, 3, "61.5 ± 4.2 (N=6), 50% coherent", "coherence of evil_severe"},
		{2, 0, 2, "20.0 ± 1.0 (N=5, 1 no answer), 0% coherent", "coherence of evil_mild"},
		{2, 0, 1, "not judged", "evil_baseline has no coherence"},
		{3, 0, 3, "77.2 ± 2.5 (N=3)", "evil among coherent answers of evil_severe"},
		{3, 0, 2, "no coherent answer", "evil_mild has none"},
	} {
		if got := ts[c.table].rows["evil"][c.col]; got != c.want {
			t.Errorf("%s: %q, want %q", c.why, got, c.want)
		}
	}
	if ts := tables["sycophantic_detection (sycophantic score)"]; len(ts) != 2 {
		t.Errorf("a task without coherence has %d tables, want 2", len(ts))
	}

	var buf bytes.Buffer
	if err := report.Table(&buf, e.Variants(), e.Tasks, e.Strengths); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"coherence 61.5 ± 4.2, 50% coherent", "coherent only 77.2 ± 2.5 (n=3)", "no coherent answer", "the share scored coherent"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("terminal table lacks %q:\n%s", want, buf.String())
		}
	}
}

// The protocol an experiment was evaluated with heads summary.md, so a
// reader knows which published numbers it compares with.
func TestMarkdownNamesProtocol(t *testing.T) {
	e := reporttest.Experiment(t)
	if strings.Contains(string(report.Markdown(e)), "Evaluated with") {
		t.Errorf("a protocol is named where none was given")
	}
	e.Protocol = "protocol paper (10 samples per question, temperature 1, max_tokens 1000, judge gpt-4.1-mini-2025-04-14)"
	md := string(report.Markdown(e))
	if want := "\n\nEvaluated with the protocol paper (10 samples per question, temperature 1, max\\_tokens 1000, judge gpt-4.1-mini-2025-04-14).\n"; !strings.Contains(md, want) {
		t.Errorf("summary.md does not name the protocol:\n%s", md[:min(len(md), 400)])
	}
}

// A reference model is no point of a trained trait's line and no row of a
// trait: each line carries it apart, the summaries list it under their
// table, and every trained cell's difference from it is its own.
func TestReferenceModel(t *testing.T) {
	e := reporttest.Experiment(t)
	reporttest.WithBase(t, &e, "evil_baseline")
	for i := range e.Evals {
		if e.Evals[i].Model == "base" {
			e.Evals[i].Metric.Mean = 42
		}
	}
	if got := e.TrainedTraits(); slices.Contains(got, "none") {
		t.Errorf("trained traits %q include the reference's", got)
	}
	if got := e.StrengthOrder(); slices.Contains(got, "base") {
		t.Errorf("strengths %q include the reference's label", got)
	}
	c := e.Chart("evil")
	for _, l := range c.Lines {
		if len(l.References) != 1 || l.References[0].Model != "base" || l.References[0].Metric.Mean != 42 || l.References[0].Label != "base" {
			t.Errorf("%s: references %+v", l.Task.Name, l.References)
		}
		for _, p := range l.Points {
			if p.Model == "base" {
				t.Errorf("%s: the reference is a point at %s", l.Task.Name, p.Strength)
			}
		}
	}
	if got := c.Lines[0].References[0].Legend("evil_detection"); got != "base (reference) on evil_detection" {
		t.Errorf("legend %q", got)
	}
	for _, s := range report.Summaries(e) {
		if len(s.References) != 1 || len(s.Rows) != 3 {
			t.Fatalf("%s: %d references, %d rows", s.Task.Name, len(s.References), len(s.Rows))
		}
		for _, r := range s.Rows {
			for _, cell := range r.Cells {
				if cell.RefDiff == nil || math.Abs(cell.RefDiff.Value-(cell.Metric.Mean-42)) > 1e-9 {
					t.Errorf("%s, %s: difference from the reference %+v, mean %v", s.Task.Name, r.Label, cell.RefDiff, cell.Metric.Mean)
				}
			}
		}
	}
	var vs []report.Variant
	for _, v := range e.Variants() {
		if v.Reference {
			vs = append(vs, v)
		}
	}
	if len(vs) != 1 || vs[0].VariantName != "base" || vs[0].Strength != "base" || vs[0].ModelID != "gpt-4.1-mini-2025-04-14" {
		t.Errorf("reference variants %+v", vs)
	}
	b, _ := json.Marshal(vs[0])
	if !strings.Contains(string(b), `"reference":true`) {
		t.Errorf("eval_results.json entry does not mark the reference: %s", b)
	}

	md := string(report.Markdown(e))
	tables := parseMarkdown(t, md)["evil_detection (evil score)"]
	if len(tables) != 4 {
		t.Fatalf("evil_detection has %d tables, want means, references, differences from baseline and from the reference:\n%s", len(tables), md)
	}
	if row := tables[1].rows["base"]; len(row) != 4 || row[1] != "base" || row[2] != "gpt-4.1-mini-2025-04-14" || !strings.HasPrefix(row[3], "42.0 ± ") {
		t.Errorf("reference row %q", row)
	}
	if h := tables[3].header; !slices.Equal(h, []string{"trained trait", "baseline − base", "mild − base", "severe − base"}) {
		t.Errorf("difference from the reference: header %q", h)
	}
	if slices.Contains(tables[0].header, "base") {
		t.Errorf("the means table has a column for the reference: %q", tables[0].header)
	}

	var term bytes.Buffer
	if err := report.Table(&term, e.Variants(), e.Tasks, e.Strengths); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(term.String(), "reference models (evaluated, not trained here)"); n != len(e.Tasks) || !strings.Contains(term.String(), "42.0 ± ") {
		t.Errorf("terminal: %d reference tables, want %d:\n%s", n, len(e.Tasks), term.String())
	}
}

// An indexed experiment finds every evaluation a scan finds, the first of
// any two alike, and nothing else.
func TestIndexedEvalMatchesScan(t *testing.T) {
	e := report.Experiment{Evals: []report.Eval{{Model: "a", Task: "x", ModelID: "1"}, {Model: "b", Task: "x", ModelID: "2"}, {Model: "a", Task: "x", ModelID: "3"}}}
	indexed := e
	indexed.Index()
	for _, q := range [][2]string{{"a", "x"}, {"b", "x"}, {"a", "y"}, {"c", "x"}} {
		want, wok := e.Eval(q[0], q[1])
		got, ok := indexed.Eval(q[0], q[1])
		if ok != wok || got.ModelID != want.ModelID {
			t.Errorf("Eval(%q, %q): indexed %q %v, scan %q %v", q[0], q[1], got.ModelID, ok, want.ModelID, wok)
		}
	}
}
