package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/htmlreport"
	"github.com/modelorganisms/pvbuild/internal/inspect"
	"github.com/modelorganisms/pvbuild/internal/plots"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// The results (eval_results.json) and the report (HTML, PNGs, summary.md)
// read every evaluation; each Inspect log reads one, so a changed
// evaluation rewrites its own log only.

func (r *run) buildResults(_ context.Context, t *target, in build.Inputs) error {
	e, err := r.experiment()
	if err != nil {
		return err
	}
	// Conditions beside the variants only for a replicated grid: other
	// experiments' files keep their shape (report.Results).
	b, err := json.MarshalIndent(report.Results{Variants: e.Variants(), Conditions: report.ConditionResults(e)}, "", "  ")
	if err != nil {
		return err
	}
	tables, err := r.p.Tables(e.Variants())
	if err != nil {
		return err
	}
	if err := r.commit(t, in, map[string][]byte{resultsOut: append(b, '\n'), tablesOut: tables}, nil); err != nil {
		return err
	}
	fmt.Fprintf(r.p.log, "results: wrote %s\n", r.p.artifactPath(resultsOut))
	return nil
}

// Tables are what `results` prints of the variants: the protocol they were
// evaluated with, and the summary tables.
func (p *Pipeline) Tables(vs []report.Variant) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString("\nevaluation: " + p.exp.Evaluation.ProtocolSummary() + "\n")
	if err := report.Table(&b, vs, p.Tasks(), sampledata.Strengths); err != nil {
		return nil, fmt.Errorf("results tables: %w", err)
	}
	return b.Bytes(), nil
}

func (r *run) buildReport(_ context.Context, t *target, in build.Inputs) error {
	e, err := r.experiment()
	if err != nil {
		return err
	}
	html, err := htmlreport.Render(e)
	if err != nil {
		return err
	}
	outs := map[string][]byte{htmlOut: html, summaryOut: report.Markdown(e)}
	for _, trait := range e.TrainedTraits() {
		png, err := plots.Expression(e, trait)
		if err != nil {
			return fmt.Errorf("figure for trait %s: %w", trait, err)
		}
		outs[pngOut(trait)] = png
	}
	// Only a sweep has these: the other experiments' reports are as before.
	for _, c := range e.DoseCharts() {
		png, err := plots.Dose(c)
		if err != nil {
			return fmt.Errorf("figure for trait %s by %s: %w", c.Trait, c.Axis, err)
		}
		outs[dosePNGOut(c)] = png
	}
	for _, h := range e.Heatmaps() {
		png, err := plots.Heatmap(h)
		if err != nil {
			return fmt.Errorf("heatmap for trait %s: %w", h.Trait, err)
		}
		outs[heatmapPNGOut(h)] = png
	}
	if err := r.commit(t, in, outs, nil); err != nil {
		return err
	}
	fmt.Fprintf(r.p.log, "report: wrote %s, %s and %d figure(s)\n", r.p.artifactPath(htmlOut), r.p.artifactPath(summaryOut), len(outs)-2)
	return nil
}

func (r *run) buildLog(_ context.Context, t *target, in build.Inputs) error {
	e, err := r.experiment()
	if err != nil {
		return err
	}
	ev, ok := e.Eval(t.model.Name, t.task.task.Name)
	if !ok {
		return fmt.Errorf("model %s, task %s: no evaluation to log", t.model.Name, t.task.task.Name)
	}
	var model report.Model
	for _, m := range e.Models {
		if m.Name == t.model.Name {
			model = m
		}
	}
	name, data, err := inspect.Log(ev, model, time.Time{})
	if err != nil {
		return err
	}
	return r.commit(t, in, map[string][]byte{"logs/" + name: data}, nil)
}
