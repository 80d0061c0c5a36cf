package pipeline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/htmlreport"
	"github.com/modelorganisms/pvbuild/internal/inspect"
	"github.com/modelorganisms/pvbuild/internal/plots"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// The report (HTML, PNGs, summary.md) reads every evaluation; each Inspect
// log reads one, so a changed evaluation rewrites its own log only.
const (
	reportFormat = "report/1"
	logFormat    = "log/1"
	reportID     = "report"
	htmlOut      = "plots/results.html"
	summaryOut   = "summary.md"
)

func logID(model, task string) string { return path.Join("log", model, task) }
func pngOut(trait string) string      { return "plots/" + trait + "_expression.png" }

// planReports checks the report and the logs; evals are in model-major,
// task-minor order, as Plan lists them.
func (p *Pipeline) planReports(ctx context.Context, evals []Step) ([]Step, error) {
	var steps []Step
	in, missing := p.allEvalsInputs(reportFormat, evals)
	in.Add("title", p.reportTitle())
	if missing != "" {
		steps = append(steps, Step{Target: reportID, Reason: missing})
	} else {
		s, err := p.check(reportID, in)
		if err != nil {
			return nil, err
		}
		steps = append(steps, s)
	}
	tasks := p.exp.Evaluation.Tasks
	logs := make([]Step, len(evals))
	err := parallel(ctx, len(evals), func(i int) error {
		ev := evals[i]
		m, t := p.exp.Models[i/len(tasks)], tasks[i%len(tasks)]
		id := logID(m.Name, t.Name)
		if !ev.Fresh {
			logs[i] = Step{Target: id, Reason: ev.Target + " is stale"}
			return nil
		}
		var in build.Inputs
		in.Add("format", logFormat)
		in.Add("eval", ev.status.Stamp.Outputs[evalOut(m.Name, t.Name)])
		in.Add("display", m.Trait+"/"+m.Strength)
		s, err := p.check(id, in)
		s.model, s.task = m.Name, t.Name
		logs[i] = s
		return err
	})
	return append(steps, logs...), err
}

func (p *Pipeline) reportTitle() string { return "Persona Vectors: " + filepath.Base(p.exp.File) }

// reportExperiment gathers what the reports show from the artifacts.
func (p *Pipeline) reportExperiment() (report.Experiment, error) {
	e := report.Experiment{
		Title:     p.reportTitle(),
		Strengths: sampledata.Strengths,
		Tasks:     p.Tasks(),
	}
	var errs []error
	for _, m := range p.exp.Models {
		rm := report.Model{Name: m.Name, Trait: m.Trait, Strength: m.Strength}
		for _, t := range p.exp.Evaluation.Tasks {
			var ev report.Eval
			if err := readJSON(p.store.Path(evalOut(m.Name, t.Name)), &ev); err != nil {
				if !errors.Is(err, os.ErrNotExist) {
					errs = append(errs, fmt.Errorf("model %s, task %s: %w", m.Name, t.Name, err))
				}
				continue
			}
			rm.ModelID = ev.ModelID
			e.Evals = append(e.Evals, ev)
		}
		e.Models = append(e.Models, rm)
	}
	return e, errors.Join(errs...)
}

// buildReports writes every stale report and log target of the plan.
func (p *Pipeline) buildReports(steps []Step) error {
	var stale []Step
	for _, s := range steps {
		if !s.Fresh && s.inputs != nil {
			stale = append(stale, s)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	e, err := p.reportExperiment()
	if err != nil {
		return err
	}
	models := map[string]report.Model{}
	for _, m := range e.Models {
		models[m.Name] = m
	}
	var errs []error
	logs := 0
	for _, s := range stale {
		if s.Target == reportID {
			if err := p.writeReport(s, e); err != nil {
				errs = append(errs, err)
				continue
			}
			fmt.Fprintf(p.log, "report: wrote %s, %s and %d figure(s)\n", p.store.Path(htmlOut), p.store.Path(summaryOut), len(e.TrainedTraits()))
			continue
		}
		ev, ok := e.Eval(s.model, s.task)
		if !ok {
			errs = append(errs, fmt.Errorf("model %s, task %s: no evaluation to log", s.model, s.task))
			continue
		}
		name, data, err := inspect.Log(ev, models[s.model], time.Time{})
		if err == nil {
			_, err = p.store.Commit(s.Target, s.inputs, map[string][]byte{"logs/" + name: data})
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		logs++
	}
	if logs > 0 {
		fmt.Fprintf(p.log, "logs: wrote %d Inspect log(s) under %s\n", logs, p.store.Path("logs"))
	}
	return errors.Join(errs...)
}

func (p *Pipeline) writeReport(s Step, e report.Experiment) error {
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
	_, err = p.store.Commit(s.Target, s.inputs, outs)
	return err
}
