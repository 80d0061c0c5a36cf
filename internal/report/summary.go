package report

import (
	"fmt"

	"github.com/modelorganisms/pvbuild/internal/judge"
)

// Summary is one task's trait x strength table.
type Summary struct {
	Task      Task
	Strengths []string // columns; the first is the baseline
	Rows      []Row
	// References are the reference models evaluated on the task; the
	// first is the one RefDiff is taken from.
	References []RefPoint
}

// Row is one trained trait, or a further model with a trait and strength
// already taken, labelled with its name.
type Row struct {
	Label, Trait string
	Cells        []Cell // one per Summary.Strengths entry
}

// Cell is one model's metric on the table's task.
type Cell struct {
	Model     string // "" when the row has no model of this strength
	Evaluated bool
	Metric    judge.Metric
	// Coherence is the evaluation's coherence judgement, nil without one.
	Coherence *Coherence
	// Diff is the difference from the row's baseline: nil in the baseline
	// column and when either side has no scored sample.
	Diff *Diff
	// RefDiff is the difference from the task's first reference model
	// (Summary.References[0]); nil without one or a scored sample.
	RefDiff *Diff
}

// Summaries builds one table per task. Rows follow the models' order; a row
// with no evaluation of the task is left out. A row without a baseline model
// of its own is compared with its trait's first row.
func Summaries(e Experiment) []Summary {
	cols := e.StrengthOrder()
	col := map[string]int{}
	for i, s := range cols {
		col[s] = i
	}
	type rowModels struct {
		label, trait string
		models       []string // by column
	}
	var rows []*rowModels
	first := map[string]*rowModels{}
	for _, m := range e.Models {
		if m.Reference {
			continue // in Summary.References, not a row of its trait
		}
		r := first[m.Trait]
		if r == nil || r.models[col[m.Strength]] != "" {
			label := m.Trait
			if r != nil {
				label = m.Name
			}
			r = &rowModels{label: label, trait: m.Trait, models: make([]string, len(cols))}
			rows = append(rows, r)
			if first[m.Trait] == nil {
				first[m.Trait] = r
			}
		}
		r.models[col[m.Strength]] = m.Name
	}

	var out []Summary
	for _, t := range e.Tasks {
		s := Summary{Task: t, Strengths: cols}
		cells := map[*rowModels][]Cell{}
		for _, r := range rows {
			cs := make([]Cell, len(cols))
			evaluated := false
			for i, name := range r.models {
				cs[i].Model = name
				if ev, ok := e.Eval(name, t.Name); ok && name != "" {
					cs[i].Evaluated, cs[i].Metric, cs[i].Coherence = true, ev.Metric, ev.Coherence
					evaluated = true
				}
			}
			cells[r] = cs
			if evaluated {
				s.Rows = append(s.Rows, Row{Label: r.label, Trait: r.trait, Cells: cs})
			}
		}
		s.References = e.TaskReferences(t)
		for _, row := range s.Rows {
			if len(s.References) == 0 {
				break
			}
			for i := range row.Cells {
				c := &row.Cells[i]
				if d, ok := DiffFrom(c.Metric, s.References[0].Metric); ok && c.Evaluated {
					c.RefDiff = &d
				}
			}
		}
		for _, row := range s.Rows {
			base := row.Cells[0]
			if !base.Evaluated {
				if fc := cells[first[row.Trait]]; fc != nil {
					base = fc[0]
				}
			}
			if !base.Evaluated {
				continue
			}
			for i := 1; i < len(row.Cells); i++ {
				c := &row.Cells[i]
				if !c.Evaluated {
					continue
				}
				if d, ok := DiffFrom(c.Metric, base.Metric); ok {
					c.Diff = &d
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// MetricText is "mean ± stderr", or "no answer" when nothing was scored.
// A standard error clustered by question is the one shown, labelled, with
// the plain one beside it: "40.0 ± 14.4 clustered (± 9.7 plain)".
func MetricText(m judge.Metric) string {
	if m.N == 0 {
		return "no answer"
	}
	if m.Clustered() {
		return fmt.Sprintf("%.1f ± %.1f clustered (± %.1f plain)", m.Mean, m.SE(), m.Stderr)
	}
	return fmt.Sprintf("%.1f ± %.1f", m.Mean, m.Stderr)
}

// CountText is "N=20", with the samples the judge gave no answer for when
// there are any.
func CountText(m judge.Metric) string {
	if m.NoAnswer > 0 {
		return fmt.Sprintf("N=%d, %d no answer", m.N, m.NoAnswer)
	}
	return fmt.Sprintf("N=%d", m.N)
}

// String is "+14.5 [8.4, 20.6]", the interval being 95%.
func (d Diff) String() string {
	if !d.Interval {
		if d.Clustered {
			return fmt.Sprintf("%+.1f (no interval: fewer than 2 questions scored)", d.Value)
		}
		return fmt.Sprintf("%+.1f (no interval: N<2)", d.Value)
	}
	return fmt.Sprintf("%+.1f [%.1f, %.1f]", d.Value, d.Low, d.High)
}

// CoherenceText is what a cell says of coherence: "88.0 ± 2.0 (N=20), 95%
// coherent", or "" without a coherence judgement.
func CoherenceText(c *Coherence) string {
	if c == nil {
		return ""
	}
	if c.Metric.N == 0 {
		return fmt.Sprintf("no answer (%d)", c.Metric.NoAnswer)
	}
	return fmt.Sprintf("%s (%s), %s coherent", MetricText(c.Metric), CountText(c.Metric), percent(c.Share))
}

// CoherentText is the trait over coherent answers: "70.0 ± 2.0 (N=19)", or
// "" without a coherence judgement.
func CoherentText(c *Coherence) string {
	switch {
	case c == nil:
		return ""
	case c.Coherent == 0:
		return "no coherent answer"
	case c.Trait.N == 0:
		return fmt.Sprintf("no answer (%d)", c.Trait.NoAnswer)
	}
	return fmt.Sprintf("%s (%s)", MetricText(c.Trait), CountText(c.Trait))
}

// HasCoherence reports whether any cell of the summary has a coherence
// judgement.
func (s Summary) HasCoherence() bool {
	for _, r := range s.Rows {
		for _, c := range r.Cells {
			if c.Coherence != nil {
				return true
			}
		}
	}
	return false
}
