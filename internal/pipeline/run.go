package pipeline

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// run is one walk of the graph: every target's state, and what was read or
// built on the way, so that nothing is read twice.
type run struct {
	p      *Pipeline
	states map[*target]*state

	mu    sync.Mutex
	evals map[*target]*report.Eval // built or read, by evaluation target

	expOnce sync.Once
	exp     report.Experiment
	expErr  error

	trainings sync.Map                     // training key -> *training: identical trainings run once
	estimates map[string]provider.Estimate // training key -> checkBudget's estimate, under mu
	gone      sync.Map                     // model name -> true once its loss has been reported

	stop stopper // the first permanent error stops the run

	// partial: the run tried every evaluation it could and some failed;
	// the results and report are keyed over the ones there are.
	partial bool
}

func (p *Pipeline) newRun() *run {
	return &run{p: p, states: map[*target]*state{}, evals: map[*target]*report.Eval{},
		estimates: map[string]provider.Estimate{}}
}

// flushCache saves what the cache learnt in this run. It is only a saving
// for the next run, so a failure (a read-only artifacts/) fails nothing.
func (p *Pipeline) flushCache() { _ = p.cache.Flush() }

// checkAll checks every stage in order.
func (r *run) checkAll(ctx context.Context) error {
	for s := range numStages {
		if err := r.p.checkStage(ctx, s, r.states); err != nil {
			return err
		}
	}
	return nil
}

// buildStage checks stage s and builds, all at once, its stale targets that
// can be keyed and that want selects. A target that fails stays stale and
// its error is returned with the others; the rest go on.
func (r *run) buildStage(ctx context.Context, s stage, want func(*target) bool) error {
	if err := r.p.checkStageWith(ctx, s, r.states, r.partial); err != nil {
		return err
	}
	var todo []*target
	for _, t := range r.p.targets {
		if st := r.states[t]; t.stage == s && !st.fresh && st.inputs != nil && (want == nil || want(t)) {
			todo = append(todo, t)
		}
	}
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, t := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = t.build(r, ctx, t, r.states[t].inputs)
			r.mu.Lock()
			r.states[t].err = errs[i]
			r.mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// commit records a built target's outputs and makes it fresh for the rest
// of the walk. files are provider state (absolute paths) it depends on.
func (r *run) commit(t *target, in build.Inputs, outputs map[string][]byte, files []string) error {
	var rel []string
	for _, f := range files {
		// State outside artifacts/ cannot travel with a CI cache; it is not
		// recorded, and the provider answers for it.
		if r, err := filepath.Rel(r.p.opts.Artifacts, f); err == nil && filepath.IsLocal(r) {
			rel = append(rel, filepath.ToSlash(r))
		}
	}
	st, err := r.p.cache.Commit(t.id, in, outputs, rel)
	if err != nil {
		return err
	}
	r.mu.Lock()
	*r.states[t] = state{fresh: true, inputs: in, stamp: st}
	r.mu.Unlock()
	return nil
}

// stamp is the stamp of a fresh target.
func (r *run) stamp(t *target) *build.Stamp {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[t].stamp
}

// experiment is what the reports show, gathered once per run: every fresh
// evaluation, as built in this run or read through the cache.
func (r *run) experiment() (report.Experiment, error) {
	r.expOnce.Do(func() {
		p := r.p
		e := report.Experiment{Title: p.reportTitle(), Protocol: p.exp.Evaluation.ProtocolSummary(), Strengths: sampledata.Strengths, Tasks: p.Tasks()}
		byModel := map[string]*report.Model{}
		for _, m := range p.exp.Models {
			rm := report.Model{Name: m.Name, Trait: m.Trait, Strength: m.Strength, Reference: m.IsReference(), Condition: m.Condition}
			for _, a := range m.Axes {
				rm.Axes = append(rm.Axes, report.Axis{Name: a.Name, Value: a.Value, Number: a.Number, Numeric: a.Numeric})
			}
			e.Models = append(e.Models, rm)
		}
		for i := range e.Models {
			byModel[e.Models[i].Name] = &e.Models[i]
		}
		var errs []error
		for _, t := range p.targets {
			if t.stage != stageEval || !r.states[t].fresh {
				continue
			}
			ev, err := r.eval(t)
			if err != nil {
				errs = append(errs, fmt.Errorf("model %s, task %s: %w", t.model.Name, t.task.task.Name, err))
				continue
			}
			byModel[t.model.Name].ModelID = ev.ModelID
			e.Evals = append(e.Evals, *ev)
		}
		e.Index()
		r.exp, r.expErr = e, errors.Join(errs...)
	})
	return r.exp, r.expErr
}

// eval is a fresh evaluation's result: built in this run, or read once.
func (r *run) eval(t *target) (*report.Eval, error) {
	r.mu.Lock()
	ev, ok := r.evals[t]
	r.mu.Unlock()
	if ok {
		return ev, nil
	}
	ev = new(report.Eval)
	if err := readJSON(r.p.cache, r.stamp(t), evalOut(t.model.Name, t.task.task.Name), ev); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.evals[t] = ev
	r.mu.Unlock()
	return ev, nil
}

// Tasks lists the experiment's tasks for reports.
func (p *Pipeline) Tasks() []report.Task {
	var ts []report.Task
	for _, t := range p.exp.Evaluation.Tasks {
		ts = append(ts, report.Task{Name: t.Name, Trait: t.Trait})
	}
	return ts
}

func (p *Pipeline) reportTitle() string { return "Persona Vectors: " + filepath.Base(p.exp.File) }
