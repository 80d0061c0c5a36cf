package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// Step is one target's state in a plan.
type Step struct {
	Target string // e.g. "train/evil_severe"
	Fresh  bool
	Reason string // why it is stale
	Submit string // for a stale training target: the training it would start
	Cost   provider.Estimate
	Calls  int // for a stale evaluation: the chat calls it would make
	// Sampling is what a stale evaluation's calls cost at most, where its
	// providers price them by the token.
	Sampling provider.Estimate
	key      string // of a training target, to count distinct trainings
}

// Plan is the state of every target, in build order.
type Plan struct {
	Datasets []Step
	Train    []Step
	Evals    []Step
	Results  Step
	Reports  []Step // the report, then one Inspect log per evaluation
	// Spent is what this experiment's earlier paid trainings were
	// estimated at (artifacts/spend), SpentJobs how many; the trainings
	// this build would submit are in Cost. Budget is budget_usd, 0 if none.
	Spent     float64
	SpentJobs int
	Budget    float64
	// Protocol is how the evaluations are sampled and judged, and where
	// the experiment departs from its protocol.
	Protocol string

	p *Pipeline // nil for a snapshot's plan, which submits nothing

	textOnce sync.Once
	text     []byte
}

// Text is the plan as `mage plan` lists it, a line a target in the
// order of Steps (see report.AppendPlanLine).
func (pl *Plan) Text() []byte {
	pl.textOnce.Do(func() {
		parts := pl.parts()
		width, n := 0, 0
		for _, part := range parts {
			for _, s := range part {
				width = max(width, len(s.Target))
			}
			n += len(part)
		}
		b := make([]byte, 0, n*(width+10))
		for _, part := range parts {
			for _, s := range part {
				b = report.AppendPlanLine(b, report.PlanLine{Target: s.Target, Fresh: s.Fresh, Reason: s.Reason, Submit: s.Submit}, width)
			}
		}
		pl.text = b
	})
	return pl.text
}

// CheckBudget is the pipeline's CheckBudget of this plan.
func (pl *Plan) CheckBudget() error {
	if pl.p == nil {
		return nil
	}
	return pl.p.CheckBudget(pl)
}

// Steps lists every target in build order.
func (pl *Plan) Steps() []Step {
	all := make([]Step, 0, len(pl.Datasets)+len(pl.Train)+len(pl.Evals)+1+len(pl.Reports))
	for _, part := range pl.parts() {
		all = append(all, part...)
	}
	return all
}

// parts are the plan's steps by stage, in build order.
func (pl *Plan) parts() [][]Step {
	return [][]Step{pl.Datasets, pl.Train, pl.Evals, {pl.Results}, pl.Reports}
}

// Cost sums the estimated cost of the distinct trainings a build would
// start, and the chat calls its evaluations would make.
func (pl *Plan) Cost() (usd float64, unpriced, calls int) {
	seen := map[string]bool{}
	for _, s := range pl.Train {
		if s.Fresh || seen[s.key] {
			continue
		}
		seen[s.key] = true
		usd += s.Cost.USD
		if !s.Cost.Priced {
			unpriced++
		}
	}
	for _, s := range pl.Evals {
		calls += s.Calls
	}
	return usd, unpriced, calls
}

// SamplingCost sums what the stale evaluations' calls cost at most, where
// their providers price them; priced says whether any does.
func (pl *Plan) SamplingCost() (usd float64, priced bool) {
	for _, s := range pl.Evals {
		usd += s.Sampling.USD
		priced = priced || s.Sampling.Priced
	}
	return usd, priced
}

// Stale counts stale targets and distinct trainings a build would start.
func (pl *Plan) Stale() (targets, jobs int) {
	keys := map[string]bool{}
	for _, s := range pl.Steps() {
		if !s.Fresh {
			targets++
		}
	}
	for _, s := range pl.Train {
		if !s.Fresh {
			keys[s.key] = true
		}
	}
	return targets, len(keys)
}

// Plan checks every target without building anything.
func (p *Pipeline) Plan(ctx context.Context) (*Plan, error) {
	if err := p.preflight(); err != nil {
		return nil, err
	}
	r := p.newRun()
	if err := r.checkAll(ctx); err != nil {
		p.flushCache()
		return nil, err
	}
	pl, err := r.plan(ctx)
	if err == nil {
		r.keep(pl)
	}
	p.flushCache()
	return pl, err
}

func (r *run) plan(ctx context.Context) (*Plan, error) {
	p := r.p
	pl := &Plan{Protocol: p.exp.Evaluation.ProtocolSummary(), p: p}
	var n [numStages]int
	for _, t := range p.targets {
		n[t.stage]++
	}
	pl.Datasets, pl.Train, pl.Evals = make([]Step, 0, n[stageDataset]), make([]Step, 0, n[stageTrain]), make([]Step, 0, n[stageEval])
	pl.Reports = make([]Step, 0, n[stageReport])
	for _, t := range p.targets {
		st := r.states[t]
		s := Step{Target: t.id, Fresh: st.fresh, Reason: st.reason}
		switch {
		case t.stage == stageDataset:
			pl.Datasets = append(pl.Datasets, s)
		case t.stage == stageTrain:
			s.key = st.inputs.Key()
			if !s.Fresh {
				est, err := p.estimate(ctx, t.model)
				if err != nil {
					return nil, err
				}
				s.Cost, s.Submit = est, p.describeTraining(t, est)
			}
			pl.Train = append(pl.Train, s)
		case t.stage == stageEval:
			if !s.Fresh {
				// An answering call per question; two judgements, trait
				// and coherence, per sample.
				s.Calls = len(t.task.questions) * (1 + 2*p.exp.Evaluation.SamplesPerQuestion)
				est, err := p.estimateSampling(ctx, t)
				if err != nil {
					return nil, err
				}
				s.Sampling = est
			}
			pl.Evals = append(pl.Evals, s)
		case t.id == resultsID:
			pl.Results = s
		default:
			pl.Reports = append(pl.Reports, s)
		}
	}
	submit := map[string]bool{}
	for _, s := range pl.Train {
		if !s.Fresh {
			submit[s.key] = true
		}
	}
	pl.Budget = p.exp.Training.BudgetUSD
	// The ledger matters only to a build that would submit or to a budget:
	// a no-op plan without budget_usd reads none of it.
	if len(submit) > 0 || pl.Budget > 0 {
		var err error
		if pl.Spent, pl.SpentJobs, err = p.spent(submit); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

// Train brings every training target up to date: all stale trainings start
// at once and are awaited together. A failed training does not stop the
// others; every failure is returned, each naming its model and job.
func (p *Pipeline) Train(ctx context.Context) error {
	if err := p.preflight(); err != nil {
		return err
	}
	r := p.newRun()
	defer p.flushCache()
	ctx, done := r.stoppable(ctx)
	defer done()
	return r.finish(r.train(ctx))
}

func (r *run) train(ctx context.Context) error {
	if err := r.buildStage(ctx, stageDataset, nil); err != nil {
		return err
	}
	if err := r.p.checkStage(ctx, stageTrain, r.states); err != nil {
		return err
	}
	if err := r.checkBudget(ctx); err != nil {
		return err
	}
	stale := 0
	for _, t := range r.p.targets {
		if t.stage == stageTrain && !r.states[t].fresh {
			stale++
		}
	}
	if stale == 0 {
		fmt.Fprintln(r.p.log, "training: every model is up to date")
		return nil
	}
	return r.buildStage(ctx, stageTrain, nil)
}

// Skipped is a model that could not be evaluated, and why.
type Skipped struct {
	Model, Reason string
}

// Evaluate scores every trained model on every task. Models whose training
// is not finished are skipped and returned with the reason. All stale
// evaluations run at once, their chat calls bounded by each provider's
// concurrency limit.
func (p *Pipeline) Evaluate(ctx context.Context) ([]Skipped, error) {
	if err := p.preflight(); err != nil {
		return nil, err
	}
	r := p.newRun()
	defer p.flushCache()
	ctx, done := r.stoppable(ctx)
	defer done()
	if err := p.checkStage(ctx, stageTrain, r.states); err != nil {
		return nil, err
	}
	skipped, err := r.evaluate(ctx)
	return skipped, r.finish(err)
}

func (r *run) evaluate(ctx context.Context) ([]Skipped, error) {
	var skipped []Skipped
	for _, t := range r.p.targets {
		if t.stage == stageTrain && !r.states[t].fresh {
			skipped = append(skipped, Skipped{t.model.Name, r.whyUntrained(t)})
		}
	}
	if err := r.p.checkStage(ctx, stageEval, r.states); err != nil {
		return nil, err
	}
	todo := 0
	for _, t := range r.p.targets {
		if st := r.states[t]; t.stage == stageEval && !st.fresh && st.inputs != nil {
			todo++
		}
	}
	if todo == 0 {
		if len(skipped) == 0 {
			fmt.Fprintln(r.p.log, "evaluation: every trained model is up to date")
		} else {
			// Not "every model": some have no trained model to evaluate.
			names := make([]string, len(skipped))
			for i, s := range skipped {
				names[i] = s.Model
			}
			fmt.Fprintf(r.p.log, "evaluation: every trained model is up to date; %d model(s) could not be evaluated, their training failed, was interrupted or has not run: %s\n",
				len(skipped), strings.Join(names, ", "))
		}
		return skipped, nil
	}
	err := r.buildStage(ctx, stageEval, nil)
	return skipped, dropReported(err)
}

// whyUntrained says what became of a stale training, from its trainer's
// record when it has one.
func (r *run) whyUntrained(t *target) string {
	st := r.states[t]
	if st.err != nil {
		return st.err.Error()
	}
	if r.p.training != nil && st.inputs != nil {
		if rec, err := r.p.training.trainer.Recorded(st.inputs.Key()); err == nil && rec != nil {
			if rec.State == provider.StatusFailed && rec.Error != "" {
				return fmt.Sprintf("job %s failed: %s", rec.JobID, rec.Error)
			}
			return fmt.Sprintf("job %s is %s", rec.JobID, rec.State)
		}
	}
	return "training is not done (" + st.reason + "); run train first"
}

// Outcome is what Results built and what it could not.
type Outcome struct {
	// Variants are the current evaluations only: built by this run or
	// fresh; a stale one is never shown as if current. A no-op run leaves
	// them out: it has Tables.
	Variants []report.Variant
	// Tables are what the run prints of them (Pipeline.Tables): for a
	// no-op run, what the fresh results target wrote.
	Tables  []byte
	Skipped []Skipped
	// NotCurrent are the evaluations left stale, with why, after a run
	// that could not rebuild them: the summary leaves them out.
	NotCurrent []report.StaleEval
	Rebuilt    int // targets rebuilt by this run
}

// Results runs the whole experiment: datasets, training, evaluation, then
// eval_results.json, the report and the logs. Failures of single models do
// not stop the others; they come back joined, and the results and report
// are written from the evaluations there are, naming the missing ones. A permanent error (a refused key, an
// invalid request) stops the whole run and is returned once.
func (p *Pipeline) Results(ctx context.Context) (*Outcome, error) {
	if err := p.preflight(); err != nil {
		return nil, err
	}
	r := p.newRun()
	defer p.flushCache()
	ctx, done := r.stoppable(ctx)
	defer done()
	out, err := r.results(ctx)
	if out != nil && out.Tables == nil && len(out.Variants) > 0 {
		tables, terr := p.Tables(out.Variants)
		out.Tables, err = tables, errors.Join(err, terr)
	}
	if out != nil {
		out.NotCurrent = r.notCurrent()
	}
	// Logs are orphaned when models or tasks leave the experiment, which
	// makes the results stale: a no-op run has none to look for.
	if out != nil && out.Rebuilt > 0 {
		n, oerr := p.removeOrphanLogs()
		if n > 0 {
			fmt.Fprintf(p.log, "logs: removed %d Inspect log(s) of removed models or tasks\n", n)
		}
		err = errors.Join(err, oerr)
	}
	return out, r.finish(err)
}

func (r *run) results(ctx context.Context) (*Outcome, error) {
	p := r.p
	if err := r.checkAll(ctx); err != nil {
		return nil, err
	}
	pl, err := r.plan(ctx)
	if err != nil {
		return nil, err
	}
	stale, _ := pl.Stale()
	out := &Outcome{Rebuilt: stale}
	if stale == 0 {
		fmt.Fprintln(p.log, "nothing to do: every target is fresh")
		// The fresh results target wrote the tables: one file to read and
		// print, not every evaluation to decode.
		if tables, err := r.freshTables(); err == nil {
			out.Tables = tables
			r.keep(pl)
			return out, nil
		}
		e, err := r.experiment()
		out.Variants = e.Variants()
		if err == nil {
			out.Tables, err = p.Tables(out.Variants)
		}
		return out, err
	}
	trainErr := r.train(ctx)
	var skipped []Skipped
	var evalErr error
	if r.stopped() == nil {
		skipped, evalErr = r.evaluate(ctx)
	}
	out.Skipped = skipped
	failed := errors.Join(trainErr, evalErr)
	if failed != nil && (r.stopped() != nil || ctx.Err() != nil) {
		// A stopped or interrupted run writes nothing more.
		e, verr := r.experiment()
		out.Variants = e.Variants()
		return out, errors.Join(failed, verr)
	}
	// Models that failed do not hold back the others' results: the reports
	// show them missing, and are rebuilt once they are done.
	r.partial = failed != nil
	if err := r.p.checkStageWith(ctx, stageReport, r.states, r.partial); err != nil {
		return out, errors.Join(failed, err)
	}
	for _, t := range p.targets {
		if t.id == resultsID && r.states[t].inputs == nil {
			return out, errors.Join(failed, fmt.Errorf("results not written: %s", r.states[t].reason))
		}
	}
	staleLogs := map[*target]bool{}
	for _, t := range p.targets {
		if t.stage == stageReport && t.model != nil && !r.states[t].fresh {
			staleLogs[t] = true
		}
	}
	err = r.buildStage(ctx, stageReport, nil)
	logs := 0
	for t := range staleLogs {
		if r.states[t].fresh {
			logs++
		}
	}
	if logs > 0 {
		fmt.Fprintf(p.log, "logs: wrote %d Inspect log(s) under %s\n", logs, p.artifactPath("logs"))
	}
	e, verr := r.experiment()
	out.Variants = e.Variants()
	return out, errors.Join(failed, err, verr)
}

// freshTables reads results.txt through the results target's fresh stamp.
func (r *run) freshTables() ([]byte, error) {
	for _, t := range r.p.targets {
		if t.id == resultsID {
			return r.p.cache.Read(r.stamp(t), tablesOut)
		}
	}
	return nil, errors.New("no results target")
}

// notCurrent lists the evaluations still stale at the end of a run, with
// the reason they are stale and why this run did not rebuild them.
func (r *run) notCurrent() []report.StaleEval {
	var out []report.StaleEval
	for _, t := range r.p.targets {
		st := r.states[t]
		if t.stage != stageEval || st == nil || st.fresh {
			continue
		}
		s := report.StaleEval{Target: t.id, Reason: st.reason, Err: st.err}
		if st.err == nil {
			s.Why = "not rebuilt"
			if st.inputs == nil {
				s.Why = "its model is not trained"
			} else if r.stopped() != nil {
				s.Why = "the run stopped first"
			}
		} else {
			s.Why = "its rebuild failed"
		}
		out = append(out, s)
	}
	return out
}

// Status reports every recorded training as its provider sees it now, and
// every model that has none yet.
func (p *Pipeline) Status(ctx context.Context) ([]report.JobRow, error) {
	progress, err := p.training.trainer.Status(ctx)
	if err != nil {
		return nil, err
	}
	recorded := map[string]bool{}
	var rows []report.JobRow
	for _, pr := range progress {
		rows = append(rows, jobRow(pr))
		for _, m := range pr.Models {
			recorded[m] = true // a failed training's row says what became of it
		}
	}
	states := map[*target]*state{}
	if err := p.checkStage(ctx, stageTrain, states); err != nil {
		return nil, err
	}
	for _, t := range p.targets {
		if t.stage == stageTrain && !recorded[t.model.Name] && !states[t].fresh {
			rows = append(rows, report.JobRow{Models: t.model.Name, State: "not submitted"})
		}
	}
	return rows, nil
}

// Cancel cancels every recorded training of this experiment that has not
// ended, and returns what it cancelled.
func (p *Pipeline) Cancel(ctx context.Context) ([]provider.Progress, error) {
	return p.training.trainer.Cancel(ctx)
}

func readJSON(c build.Cache, st *build.Stamp, output string, v any) error {
	b, err := c.Read(st, output)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", output, err)
	}
	return nil
}
