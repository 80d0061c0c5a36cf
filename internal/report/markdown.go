package report

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Markdown renders the summary tables in GitHub Markdown, fit for a CI step
// summary: per task, trait x strength with mean ± stderr and N, then each
// strength's difference from the baseline with its 95% interval.
func Markdown(e Experiment) []byte {
	var b bytes.Buffer
	if e.Title != "" {
		fmt.Fprintf(&b, "# %s\n\n", mdEscape(e.Title))
	}
	if e.Protocol != "" {
		fmt.Fprintf(&b, "Evaluated with the %s.\n\n", mdEscape(e.Protocol))
	}
	sums := Summaries(e)
	cols := e.StrengthOrder()
	b.WriteString("Trait expression is the judge's score from 0 to 100: the mean ± standard error over the samples the judge scored, and their number N.")
	if len(cols) > 1 {
		fmt.Fprintf(&b, " Differences are from the %s model of the same trained trait, with a 95%% interval by normal approximation: diff ± 1.96·√(se₁² + se₂²).", mdEscape(cols[0]))
	}
	if e.Clustered() {
		b.WriteString(" With several samples per question, the standard error shown (\"clustered\") is clustered by question, `√(G/(G−1)·Σ_g e_g²)/N` over the G questions with a scored answer, `e_g` being the sum of a question's residuals; the plain standard error (\"plain\") is beside it.")
		if len(cols) > 1 {
			b.WriteString(" The differences and their intervals use the clustered one.")
		}
	}
	if refs := e.References(); len(refs) > 0 {
		fmt.Fprintf(&b, " Reference models are evaluated without training here (the base model, or a given model_id); each task lists them under its table, and the difference of every trained model from the first, %s, has the same 95%% interval.", mdEscape(refs[0].Name))
	}
	b.WriteString("\n")
	if len(sums) == 0 {
		b.WriteString("\nNo evaluation tasks.\n")
	}
	for _, s := range sums {
		fmt.Fprintf(&b, "\n## %s (%s score)\n\n", mdEscape(s.Task.Name), mdEscape(s.Task.Trait))
		if len(s.Rows) == 0 {
			if len(s.References) > 0 {
				b.WriteString("No trained model has been evaluated on this task.\n")
				mdReferences(&b, s)
				continue
			}
			b.WriteString("No model has been evaluated on this task.\n")
			continue
		}
		header := []string{"trained trait"}
		for _, c := range s.Strengths {
			header = append(header, mdEscape(c))
		}
		mdRow(&b, header)
		mdAlign(&b, len(header))
		for _, r := range s.Rows {
			line := []string{mdEscape(r.Label)}
			for _, c := range r.Cells {
				line = append(line, cellText(c))
			}
			mdRow(&b, line)
		}
		mdReferences(&b, s)
		if len(s.Strengths) > 1 {
			mdDiffs(&b, s)
		}
		mdReferenceDiffs(&b, s)
		if s.HasCoherence() {
			mdCoherence(&b, s)
		}
	}
	mdConditions(&b, e)
	mdSweeps(&b, e)
	return b.Bytes()
}

// mdDiffs writes the summary's differences from its baseline column.
func mdDiffs(b *bytes.Buffer, s Summary) {
	fmt.Fprintf(b, "\nDifference from %s (95%% interval):\n\n", mdEscape(s.Strengths[0]))
	header := []string{"trained trait"}
	for _, c := range s.Strengths[1:] {
		header = append(header, mdEscape(c)+" − "+mdEscape(s.Strengths[0]))
	}
	mdRow(b, header)
	mdAlign(b, len(header))
	for _, r := range s.Rows {
		line := []string{mdEscape(r.Label)}
		for _, c := range r.Cells[1:] {
			d := "—"
			if c.Diff != nil {
				d = c.Diff.String()
			}
			line = append(line, d)
		}
		mdRow(b, line)
	}
}

// mdReferences lists a task's reference models: one row each, its label,
// the model it evaluated and its score.
func mdReferences(b *bytes.Buffer, s Summary) {
	if len(s.References) == 0 {
		return
	}
	b.WriteString("\nReference models (not trained here):\n\n")
	coherence := slices.ContainsFunc(s.References, func(r RefPoint) bool { return r.Coherence != nil })
	header, align := []string{"reference", "label", "model", "score"}, "| :-- | :-- | :-- | --: |"
	if coherence {
		header, align = append(header, "coherence", "coherent only"), align+" --: | --: |"
	}
	mdRow(b, header)
	b.WriteString(align + "\n")
	for _, r := range s.References {
		line := []string{mdEscape(r.Model), mdEscape(r.Label), mdEscape(r.ModelID), refCell(r.Metric)}
		if coherence {
			line = append(line, orNotJudged(CoherenceText(r.Coherence)), orNotJudged(CoherentText(r.Coherence)))
		}
		mdRow(b, line)
	}
}

// mdReferenceDiffs is each trained model's difference from the task's
// first reference model, every strength included.
func mdReferenceDiffs(b *bytes.Buffer, s Summary) {
	if len(s.References) == 0 || len(s.Rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\nDifference from reference %s (95%% interval):\n\n", mdEscape(s.References[0].Model))
	header := []string{"trained trait"}
	for _, c := range s.Strengths {
		header = append(header, mdEscape(c)+" − "+mdEscape(s.References[0].Model))
	}
	mdRow(b, header)
	mdAlign(b, len(header))
	for _, r := range s.Rows {
		line := []string{mdEscape(r.Label)}
		for _, c := range r.Cells {
			d := "—"
			if c.RefDiff != nil {
				d = c.RefDiff.String()
			}
			line = append(line, d)
		}
		mdRow(b, line)
	}
}

// mdCoherence writes the summary's coherence tables: the coherence score
// with the share of coherent answers, and the trait over those answers.
func mdCoherence(b *bytes.Buffer, s Summary) {
	threshold := 0.0
	for _, r := range s.Rows {
		for _, c := range r.Cells {
			if c.Coherence != nil {
				threshold = c.Coherence.Threshold
			}
		}
	}
	fmt.Fprintf(b, "\nCoherence of the answers (0 to 100; every answer is judged for it, as in the paper) and the share scored above %g:\n\n", threshold)
	mdCells(b, s, func(c Cell) string { return CoherenceText(c.Coherence) })
	fmt.Fprintf(b, "\n%s score over the coherent answers only:\n\n", mdEscape(s.Task.Trait))
	mdCells(b, s, func(c Cell) string { return CoherentText(c.Coherence) })
}

// cellText is what a table cell says: the metric, "not evaluated" for a
// model without this evaluation, or a dash where there is no such model.
func cellText(c Cell) string {
	switch {
	case c.Model == "":
		return "—"
	case !c.Evaluated:
		return "not evaluated"
	case c.Metric.N == 0:
		return fmt.Sprintf("no answer (%d)", c.Metric.NoAnswer)
	}
	return fmt.Sprintf("%s (%s)", MetricText(c.Metric), CountText(c.Metric))
}

// orNotJudged is text, or "not judged" when it is empty.
func orNotJudged(text string) string {
	if text == "" {
		return "not judged"
	}
	return text
}

// mdCells writes a trait x strength table of the summary's rows, each cell
// as text says, "—" where there is no model and "not evaluated" or "not
// judged" where there is nothing to say.
func mdCells(b *bytes.Buffer, s Summary, text func(Cell) string) {
	header := []string{"trained trait"}
	for _, c := range s.Strengths {
		header = append(header, mdEscape(c))
	}
	mdRow(b, header)
	mdAlign(b, len(header))
	for _, r := range s.Rows {
		line := []string{mdEscape(r.Label)}
		for _, c := range r.Cells {
			t := text(c)
			switch {
			case c.Model == "":
				t = "—"
			case !c.Evaluated:
				t = "not evaluated"
			default:
				t = orNotJudged(t)
			}
			line = append(line, t)
		}
		mdRow(b, line)
	}
}

func mdRow(b *bytes.Buffer, cells []string) {
	b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

// mdAlign left-aligns the label column and right-aligns the numbers.
func mdAlign(b *bytes.Buffer, n int) {
	b.WriteString("| :--" + strings.Repeat(" | --:", n-1) + " |\n")
}

// mdEscaper keeps names with Markdown or HTML syntax in them literal, and a
// pipe from splitting a table cell.
var mdEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", `\<`, ">", `\>`, "|", `\|`, "&", `\&`, "~", `\~`, "#", `\#`,
	"\r\n", " ", "\n", " ", "\r", " ",
)

func mdEscape(s string) string { return mdEscaper.Replace(s) }

// mdConditions is the across-seed table of a replicated grid: per task and
// condition, the mean of the replicates' means ± the standard error across
// replicates, R, each replicate's mean, and the missing replicates.
func mdConditions(b *bytes.Buffer, e Experiment) {
	conds := Conditions(e)
	if len(conds) == 0 {
		return
	}
	b.WriteString("\n## Across training seeds\n\nPer condition, the mean over replicates of each replicate's mean ± the standard error across replicates, sd(ddof=1)/√R.\n\n")
	mdRow(b, []string{"task", "condition", "mean ± SE across seeds", "R", "replicates", "missing"})
	mdAlign(b, 6)
	for _, c := range conds {
		mean, se, known, ok := AcrossSeeds(c.Means)
		text := "no replicate evaluated"
		switch {
		case ok && known:
			text = fmt.Sprintf("%.1f ± %.1f", mean, se)
		case ok:
			text = fmt.Sprintf("%.1f (one replicate: no spread)", mean)
		}
		var reps []string
		for i, m := range c.Models {
			reps = append(reps, fmt.Sprintf("%s %.1f", mdEscape(m), c.Means[i]))
		}
		missing := "—"
		if len(c.Missing) > 0 {
			missing = mdEscape(strings.Join(c.Missing, ", "))
		}
		mdRow(b, []string{mdEscape(c.Task), mdEscape(c.Condition), text, fmt.Sprint(len(c.Means)), strings.Join(reps, "; "), missing})
	}
}

// mdSweeps are the tables along each swept axis (a row per axis value, a
// column per task, one table per panel) and each heatmap as a table; nothing
// outside a sweep.
func mdSweeps(b *bytes.Buffer, e Experiment) {
	heat := e.Heatmaps()
	for _, c := range e.DoseCharts() {
		fmt.Fprintf(b, "\n## %s\n\nPer condition, the mean over replicates of each replicate's mean ± the standard error across replicates, sd(ddof=1)/√R, and R; \"missing\" names the replicates without a scored evaluation, \"—\" a value no model was trained at.\n", mdEscape(c.Title))
		for _, p := range c.Panels {
			if l := p.Label(); l != "" {
				fmt.Fprintf(b, "\n%s:\n", mdEscape(l))
			}
			b.WriteString("\n")
			header := []string{mdEscape(c.Axis)}
			for _, l := range p.Lines {
				header = append(header, mdEscape(l.Task.Name))
			}
			mdRow(b, header)
			mdAlign(b, len(header))
			for i, x := range c.X {
				line := []string{mdEscape(x.Value)}
				for _, l := range p.Lines {
					line = append(line, mdEscape(l.Points[i].Text()))
				}
				mdRow(b, line)
			}
		}
		for _, h := range heat {
			if h.Trait != c.Trait || h.XName != c.Axis {
				continue
			}
			for _, p := range h.Panels {
				fmt.Fprintf(b, "\nHeatmap %s × %s, %s:\n\n", mdEscape(h.YName), mdEscape(h.XName), mdEscape(p.Title()))
				header := []string{mdEscape(h.YName) + " \\ " + mdEscape(h.XName)}
				for _, x := range h.X {
					header = append(header, mdEscape(x.Value))
				}
				mdRow(b, header)
				mdAlign(b, len(header))
				for i, y := range h.Y {
					line := []string{mdEscape(y.Value)}
					for _, cell := range p.Cells[i] {
						line = append(line, mdEscape(cell.Text()))
					}
					mdRow(b, line)
				}
			}
		}
	}
}
