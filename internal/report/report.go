// Package report turns evaluation results into what researchers read: the
// eval_results.json of the original scripts and a trait x strength table per
// evaluation task.
package report

import (
	"fmt"
	"io"
	"slices"

	"github.com/olekukonko/tablewriter"

	"github.com/modelorganisms/pvbuild/internal/judge"
)

// Variant is one trained model with its evaluations, in the original
// eval_results.json shape (with n and no_answer added to each metric).
type Variant struct {
	VariantName string `json:"variant_name"`
	Trait       string `json:"trait"`
	Strength    string `json:"strength"`
	ModelID     string `json:"model_id"`
	// Reference marks a model evaluated without training here: the base
	// model (strength "base" unless set) or a model_id ("reference").
	Reference bool `json:"reference,omitempty"`
	// Condition is the replicated condition the model is one seed of.
	Condition   string                `json:"condition,omitempty"`
	Evaluations map[string]Evaluation `json:"evaluations"`
}

// Evaluation holds one task's metrics, keyed "<trait>_score"; with
// coherence judged, also "coherence" (the coherence score) and
// "<trait>_score_coherent" (the trait over coherent answers), and the
// share of coherent answers beside them.
type Evaluation struct {
	Metrics  map[string]judge.Metric `json:"metrics"`
	Coherent *CoherentShare          `json:"coherent,omitempty"`
}

// CoherentShare is how many of an evaluation's answers count as coherent:
// Count of the answers the coherence judge scored, above Threshold.
type CoherentShare struct {
	Threshold float64 `json:"threshold"`
	Count     int     `json:"count"`
	Share     float64 `json:"share"`
}

// Metric names of the coherence judgement in an Evaluation.
const CoherenceMetric = "coherence"

// CoherentMetric is the metric name of a trait's score over coherent answers.
func CoherentMetric(trait string) string { return trait + "_score_coherent" }

// evaluation is ev in eval_results.json's shape.
func evaluation(ev Eval) Evaluation {
	out := Evaluation{Metrics: map[string]judge.Metric{ev.Trait + "_score": ev.Metric}}
	if c := ev.Coherence; c != nil {
		out.Metrics[CoherenceMetric] = c.Metric
		out.Metrics[CoherentMetric(ev.Trait)] = c.Trait
		out.Coherent = &CoherentShare{Threshold: c.Threshold, Count: c.Coherent, Share: c.Share}
	}
	return out
}

// Task names an evaluation task and the trait it scores.
type Task struct {
	Name, Trait string
}

// Table prints, per task, a trait x strength table of "mean ± stderr"; a
// standard error clustered by question is shown instead where there is one,
// labelled, with the plain one beside it (MetricText).
// strengths gives the column order; strengths not listed follow in order of
// appearance. A second model with the same trait and strength gets its own row.
func Table(w io.Writer, variants []Variant, tasks []Task, strengths []string) error {
	cols := slices.Clone(strengths)
	for _, v := range variants {
		if !v.Reference && !slices.Contains(cols, v.Strength) {
			cols = append(cols, v.Strength)
		}
	}
	for _, t := range tasks {
		type row struct {
			label string
			cells map[string]string
		}
		var rows []*row
		byTrait := map[string]*row{}
		clustered, withCoherence := false, false
		var refs [][]any
		for _, v := range variants {
			ev, ok := v.Evaluations[t.Name]
			if !ok {
				continue
			}
			if v.Reference {
				score := refCell(ev.Metrics[t.Trait+"_score"])
				if lines := coherenceLines(ev, t.Trait); lines != "" {
					score += "\n" + lines
				}
				refs = append(refs, []any{v.VariantName, v.Strength, v.ModelID, score})
				continue
			}
			m := ev.Metrics[t.Trait+"_score"]
			cell := fmt.Sprintf("%.1f ± %.1f", m.Mean, m.Stderr)
			if m.Clustered() {
				clustered = true
				cell = MetricText(m)
			}
			if m.N == 0 {
				cell = "no answers"
			}
			if lines := coherenceLines(ev, t.Trait); lines != "" {
				withCoherence = true
				cell += "\n" + lines
			}
			r := byTrait[v.Trait]
			if r == nil || r.cells[v.Strength] != "" {
				label := v.Trait
				if r != nil {
					label = v.VariantName
				}
				r = &row{label: label, cells: map[string]string{}}
				rows = append(rows, r)
				if byTrait[v.Trait] == nil {
					byTrait[v.Trait] = r
				}
			}
			r.cells[v.Strength] = cell
		}
		if len(rows) == 0 && len(refs) > 0 {
			// Only references: no empty trained table above them.
			fmt.Fprintln(w)
			if err := referenceTable(w, t, refs); err != nil {
				return err
			}
			continue
		}
		se := "stderr"
		if clustered {
			se = "stderr clustered by question, plain stderr beside it"
		}
		fmt.Fprintf(w, "\n%s (%s score, 0-100, mean ± %s)\n", t.Name, t.Trait, se)
		if withCoherence {
			fmt.Fprintf(w, "under each: the answers' coherence (0-100), the share scored coherent, and the %s score over the coherent answers only\n", t.Trait)
		}
		tbl := tablewriter.NewTable(w)
		header := []any{"trained trait"}
		for _, c := range cols {
			header = append(header, c)
		}
		tbl.Header(header...)
		for _, r := range rows {
			line := []any{r.label}
			for _, c := range cols {
				line = append(line, r.cells[c])
			}
			if err := tbl.Append(line...); err != nil {
				return err
			}
		}
		if err := tbl.Render(); err != nil {
			return err
		}
		if len(refs) > 0 {
			if err := referenceTable(w, t, refs); err != nil {
				return err
			}
		}
	}
	return nil
}

// coherenceLines are a table cell's coherence lines: the coherence score
// with the share of coherent answers, then the trait over those answers;
// "" for an evaluation without coherence.
func coherenceLines(ev Evaluation, trait string) string {
	if ev.Coherent == nil {
		return ""
	}
	c, ok := ev.Metrics[CoherenceMetric]
	if !ok {
		return ""
	}
	if c.N == 0 {
		return "coherence: no answer"
	}
	line := fmt.Sprintf("coherence %s, %s coherent", MetricText(c), percent(ev.Coherent.Share))
	tc := ev.Metrics[CoherentMetric(trait)]
	switch {
	case ev.Coherent.Count == 0:
		return line + "\nno coherent answer"
	case tc.N == 0:
		return line + "\ncoherent only: no answer"
	}
	return line + fmt.Sprintf("\ncoherent only %s (n=%d)", MetricText(tc), tc.N)
}

// percent is a share as a whole percentage, "95%".
func percent(share float64) string { return fmt.Sprintf("%.0f%%", 100*share) }

// referenceTable prints a task's reference models, evaluated without
// training: what the trained models above compare with.
func referenceTable(w io.Writer, t Task, refs [][]any) error {
	fmt.Fprintf(w, "%s, reference models (evaluated, not trained here):\n", t.Name)
	tbl := tablewriter.NewTable(w)
	tbl.Header("reference", "label", "model", "score")
	for _, r := range refs {
		if err := tbl.Append(r...); err != nil {
			return err
		}
	}
	return tbl.Render()
}

// refCell is a reference's score with its N, or why there is none.
func refCell(m judge.Metric) string {
	if m.N == 0 {
		return fmt.Sprintf("no answer (%d)", m.NoAnswer)
	}
	return MetricText(m) + " (" + CountText(m) + ")"
}
