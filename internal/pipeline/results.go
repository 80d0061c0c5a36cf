package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// Outcome is what Results built and what it could not.
type Outcome struct {
	Variants []report.Variant
	Skipped  []Skipped
	Rebuilt  int // targets rebuilt by this run
}

// Results runs the whole experiment: datasets, training, evaluation, then
// the results target (eval_results.json). Failures of single models do not
// stop the others; they come back joined, and the results are written only
// when every evaluation is done.
func (p *Pipeline) Results(ctx context.Context) (*Outcome, error) {
	before, err := p.Plan(ctx)
	if err != nil {
		return nil, err
	}
	stale, _ := before.Stale()
	if stale == 0 {
		fmt.Fprintln(p.log, "nothing to do: every target is fresh")
		variants, err := p.variants()
		return &Outcome{Variants: variants}, err
	}
	trainErr := p.Train(ctx)
	skipped, evalErr := p.Evaluate(ctx)
	out := &Outcome{Skipped: skipped, Rebuilt: stale}
	pl, err := p.Plan(ctx)
	if err != nil {
		return nil, err
	}
	variants, verr := p.variants()
	out.Variants = variants
	if err := errors.Join(trainErr, evalErr, verr); err != nil {
		return out, err
	}
	in, missing := p.allEvalsInputs(resultsFormat, pl.Evals)
	if missing != "" {
		return out, fmt.Errorf("results not written: %s", missing)
	}
	if !pl.Results.Fresh {
		b, err := json.MarshalIndent(variants, "", "  ")
		if err != nil {
			return out, err
		}
		if _, err := p.store.Commit(resultsID, in, map[string][]byte{resultsOut: append(b, '\n')}); err != nil {
			return out, err
		}
		fmt.Fprintf(p.log, "results: wrote %s\n", p.store.Path(resultsOut))
	}
	return out, p.buildReports(pl.Reports)
}

// variants reads every evaluation output there is, in model order.
func (p *Pipeline) variants() ([]report.Variant, error) {
	var out []report.Variant
	var errs []error
	for _, m := range p.exp.Models {
		v := report.Variant{VariantName: m.Name, Trait: m.Trait, Strength: m.Strength, Evaluations: map[string]report.Evaluation{}}
		for _, t := range p.exp.Evaluation.Tasks {
			var res report.Eval
			if err := readJSON(p.store.Path(evalOut(m.Name, t.Name)), &res); err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, fmt.Errorf("model %s, task %s: %w", m.Name, t.Name, err))
				}
				continue
			}
			v.ModelID = res.ModelID
			v.Evaluations[t.Name] = report.Evaluation{Metrics: map[string]judge.Metric{t.Trait + "_score": res.Metric}}
		}
		if len(v.Evaluations) > 0 {
			out = append(out, v)
		}
	}
	return out, errors.Join(errs...)
}

// Tasks lists the experiment's tasks for reports.
func (p *Pipeline) Tasks() []report.Task {
	var ts []report.Task
	for _, t := range p.exp.Evaluation.Tasks {
		ts = append(ts, report.Task{Name: t.Name, Trait: t.Trait})
	}
	return ts
}
