package pipeline

import (
	"context"
	"fmt"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// stage orders the graph: every target depends only on targets of earlier
// stages, so a walk checks (and builds) one stage at a time, each in parallel.
type stage int

const (
	stageDataset stage = iota
	stageTrain
	stageEval
	stageReport // results, report, logs
	numStages
)

// target is one node of the graph: its ID (also its stamp's name), what it
// depends on, how its key is computed once those are fresh, and how it is
// built.
type target struct {
	id    string
	stage stage
	model *config.Model // datasets, trainings, evaluations, logs
	task  *taskData     // evaluations, logs
	deps  []*target
	// stale says why the target cannot be keyed while deps are stale.
	stale func(staleDeps []*target) string
	// inputs computes the key's inputs from the deps' stamps.
	inputs func(deps []*build.Stamp) build.Inputs
	// build makes the outputs; the walk commits them.
	build func(r *run, ctx context.Context, t *target, in build.Inputs) error
	// partial targets (the results and the report) can be built from the
	// deps that are fresh once a build has tried the others and failed:
	// the missing ones enter the key and show as missing, and the target
	// is rebuilt when they are done.
	partial bool
}

// Target names, also the stamps' names, and output paths.
func datasetID(model string) string     { return "dataset/" + model }
func trainID(model string) string       { return "train/" + model }
func evalID(model, task string) string  { return path.Join("eval", model, task) }
func logID(model, task string) string   { return path.Join("log", model, task) }
func datasetOut(model string) string    { return "datasets/" + model + ".jsonl" }
func trainOut(model string) string      { return "train/" + model + ".json" }
func evalOut(model, task string) string { return path.Join("evals", model, task+".json") }
func pngOut(trait string) string        { return "plots/" + trait + "_expression.png" }

// A sweep's figures: plots/evil_epochs_dose.png and
// plots/evil_epochs_by_strength_heatmap.png.
func dosePNGOut(c report.DoseChart) string { return "plots/" + c.Trait + "_" + c.Axis + "_dose.png" }
func heatmapPNGOut(h report.Heatmap) string {
	return "plots/" + h.Trait + "_" + h.XName + "_by_" + h.YName + "_heatmap.png"
}

const (
	resultsID, resultsOut = "results", "eval_results.json"
	tablesOut             = "results.txt" // what `results` prints, for the no-op run to print
	reportID              = "report"
	htmlOut               = "plots/results.html"
	summaryOut            = "summary.md"
)

// graph declares every target once, in build order.
func (p *Pipeline) graph() []*target {
	models, tasks := p.exp.Models, p.exp.Evaluation.Tasks
	var all, evals []*target
	for i := range models {
		m := &models[i]
		if m.IsReference() {
			evals = append(evals, p.referenceEvals(m)...)
			continue
		}
		d := p.datasets[m.Name]
		ds := &target{id: datasetID(m.Name), stage: stageDataset, model: m,
			inputs: func([]*build.Stamp) build.Inputs { return d.inputs },
			build:  (*run).buildDataset}
		// A training's key holds its dataset's content hash, so it needs
		// no dataset stamp: the dataset target only writes the file.
		tr := &target{id: trainID(m.Name), stage: stageTrain, model: m,
			inputs: func([]*build.Stamp) build.Inputs { return p.trainInputs(*m) },
			build:  (*run).buildTrain}
		all = append(all, ds, tr)
		for _, t := range tasks {
			td := p.tasks[t.Name]
			ev := &target{id: evalID(m.Name, t.Name), stage: stageEval, model: m, task: td, deps: []*target{tr},
				stale: func([]*target) string { return "training " + m.Name + " is stale" },
				inputs: func(deps []*build.Stamp) build.Inputs {
					return p.evalInputs(deps[0].Outputs[trainOut(m.Name)], td)
				},
				build: (*run).buildEval}
			evals = append(evals, ev)
		}
	}
	all = append(all, evals...)
	all = append(all,
		&target{id: resultsID, stage: stageReport, deps: evals, stale: staleEvals, partial: true,
			inputs: func(deps []*build.Stamp) build.Inputs {
				in := p.allEvalsInputs(resultsFormat, deps)
				if p.replicated() {
					// The file holds aggregated conditions since this format;
					// experiments without replicates keep their key.
					in.Add("conditions_format", conditionsFormat)
				}
				return in
			},
			build: (*run).buildResults},
		&target{id: reportID, stage: stageReport, deps: evals, stale: staleEvals, partial: true,
			inputs: func(deps []*build.Stamp) build.Inputs {
				in := p.allEvalsInputs(reportFormat, deps)
				in.Add("title", p.reportTitle())
				in.Add("protocol", p.exp.Evaluation.ProtocolSummary())
				return in
			},
			build: (*run).buildReport})
	for _, ev := range evals {
		m := ev.model
		all = append(all, &target{id: logID(m.Name, ev.task.task.Name), stage: stageReport, model: m, task: ev.task, deps: []*target{ev},
			stale: func([]*target) string { return ev.id + " is stale" },
			inputs: func(deps []*build.Stamp) build.Inputs {
				var in build.Inputs
				in.Add("format", logFormat)
				in.Add("eval", deps[0].Outputs[evalOut(m.Name, ev.task.task.Name)])
				in.Add("display", m.Trait+"/"+m.Strength)
				return in
			},
			build: (*run).buildLog})
	}
	return all
}

// referenceEvals are a reference model's evaluations: they depend on no
// training, and their key holds the model id they ask instead of a
// training record's hash, so a changed id (training.base_model, for
// base_only) re-evaluates them and retrains nothing.
func (p *Pipeline) referenceEvals(m *config.Model) []*target {
	var evals []*target
	for _, t := range p.exp.Evaluation.Tasks {
		td := p.tasks[t.Name]
		evals = append(evals, &target{id: evalID(m.Name, t.Name), stage: stageEval, model: m, task: td,
			inputs: func([]*build.Stamp) build.Inputs { return p.evalInputs("id:"+p.exp.EvaluatedModel(*m), td) },
			build:  (*run).buildEval})
	}
	return evals
}

// replicated reports whether a model belongs to a replicated condition.
func (p *Pipeline) replicated() bool {
	return slices.ContainsFunc(p.exp.Models, func(m config.Model) bool { return m.Condition != "" })
}

func staleEvals(stale []*target) string {
	if len(stale) == 1 {
		return stale[0].id + " is stale"
	}
	return fmt.Sprintf("%s and %d other evaluations are stale", stale[0].id, len(stale)-1)
}

// trainInputs is everything a training's outcome depends on. Display fields
// (trait, strength, the model's name) are left out so that identical
// trainings share one key and train once.
func (p *Pipeline) trainInputs(m config.Model) build.Inputs {
	t := p.exp.Training
	var in build.Inputs
	in.Add("format", trainFormat)
	in.Add("provider", p.exp.Providers[t.Provider].Identity())
	if s := p.providerSettings[m.BaseModel]; s != "" {
		in.Add("provider_settings", s)
	}
	in.Add("base_model", m.BaseModel)
	// The dataset stage has made or checked the data; a failure there is
	// reported there, and keys nothing here.
	dataHash, err := p.datasets[m.Name].Hash()
	if err != nil {
		dataHash = "unusable: " + err.Error()
	}
	in.Add("dataset", dataHash)
	in.Add("suffix", m.Suffix)
	in.Add("seed", m.Seed) // training.seed unless the model or its replicate sets one
	h := m.Hyperparameters
	in.Add("n_epochs", h.NEpochs)
	in.Add("learning_rate_multiplier", h.LearningRateMultiplier)
	in.Add("batch_size", h.BatchSize)
	if h.LoRARank > 0 {
		// Only when set, so that trainings without one keep their keys.
		in.Add("lora_rank", h.LoRARank)
	}
	return in
}

// evalInputs needs the hash of the trained model's record.
func (p *Pipeline) evalInputs(trainHash string, t *taskData) build.Inputs {
	t.inputsOnce.Do(func() { t.inputs = p.taskInputs(t) })
	in := make(build.Inputs, 0, len(t.inputs)+1)
	in = append(in, t.inputs[0])
	in.Add("model", trainHash)
	return append(in, t.inputs[1:]...)
}

// taskInputs are the inputs of a task's evaluations but the model's, in
// the order evalInputs lists them (format, then after the model the rest).
func (p *Pipeline) taskInputs(t *taskData) build.Inputs {
	e := p.exp.Evaluation
	var in build.Inputs
	in.Add("format", evalFormat)
	in.Add("provider", p.exp.Providers[e.Provider].Identity())
	in.Add("judge_provider", p.exp.Providers[e.JudgeProvider].Identity())
	if jv, ok := p.exp.Providers[e.JudgeProvider].Config.(provider.JudgeVersioned); ok {
		in.Add("judge_version", jv.JudgeVersion())
	}
	in.Add("trait", t.task.Trait)
	in.Add("task_data", t.hash)
	in.Add("judge_model", e.JudgeModel)
	// The judge type enters the key only when it is not the default, so
	// that evaluations judged before judge types existed stay fresh; its
	// requests differ from the answers', so a change re-judges only.
	if k := t.task.JudgeType; k != "" && k != judge.DefaultKind {
		in.Add("judge_type", string(k))
	}
	// A changed coherence prompt re-judges; the answers' requests are
	// unchanged, so a paid provider's answers come from the chat cache.
	in.Add("coherence_prompt", p.coherenceHash)
	in.Add("coherence_threshold", e.CoherenceThreshold)
	in.Add("limit", e.Limit)
	in.Add("samples_per_question", e.SamplesPerQuestion)
	in.Add("temperature", e.Temperature)
	in.Add("max_tokens", e.MaxTokens)
	in.Add("seed", e.Seed)
	return in
}

// allEvalsInputs are the inputs of a target that reads every evaluation:
// their output hashes and the models' display names.
func (p *Pipeline) allEvalsInputs(format string, evals []*build.Stamp) build.Inputs {
	in := make(build.Inputs, 0, 2*len(evals)+3*len(p.exp.Models)+4)
	in.Add("format", format)
	for _, st := range evals {
		for name, hash := range st.Outputs {
			in.Add(name, hash)
		}
	}
	names := make([]string, len(p.exp.Models))
	for i, m := range p.exp.Models {
		in.Add("display/"+m.Name, m.Trait+"/"+m.Strength)
		if m.Condition != "" {
			// Only replicated grids: other experiments keep their keys.
			in.Add("condition/"+m.Name, m.Condition)
		}
		for _, a := range m.Axes {
			// Reports place a cell on its axes; models of no sweep add none.
			in.Add("axis/"+m.Name+"/"+a.Name, a.Value)
		}
		if m.IsReference() {
			// Reports draw references apart (rows, dashed lines).
			in.Add("reference/"+m.Name, true)
		}
		names[i] = m.Name
	}
	// Keys ignore input order, but these outputs list models in file order.
	in.Add("model_order", strings.Join(names, ","))
	return in
}

// state is one target's state in a walk.
type state struct {
	fresh  bool
	reason string       // why it is stale
	inputs build.Inputs // nil while a dependency is stale
	stamp  *build.Stamp // the stamp that vouches for it, once fresh
	err    error        // why building it failed
	key    string       // inputs.Key(), once asked for (see inputsKey)
}

// inputsKey is the key of the state's inputs, computed once: every
// training asks it of every other to find its twins. The caller holds
// the run's lock.
func (s *state) inputsKey() string {
	if s.key == "" {
		s.key = s.inputs.Key()
	}
	return s.key
}

// check computes a target's state from its deps' states. With partial, a
// partial target is keyed over its fresh deps, the others named missing.
func (p *Pipeline) check(t *target, states map[*target]*state, partial bool) (*state, error) {
	var staleDeps []*target
	stamps := make([]*build.Stamp, 0, len(t.deps))
	for _, d := range t.deps {
		ds := states[d]
		if !ds.fresh {
			staleDeps = append(staleDeps, d)
			continue
		}
		stamps = append(stamps, ds.stamp)
	}
	if len(staleDeps) > 0 && !(partial && t.partial) {
		return &state{reason: t.stale(staleDeps)}, nil
	}
	in := t.inputs(stamps)
	for _, d := range staleDeps {
		in.Add("missing/"+d.id, true)
	}
	st, err := p.cache.Check(t.id, in)
	if err != nil {
		return nil, err
	}
	return &state{fresh: st.Fresh, reason: st.Reason, inputs: in, stamp: st.Stamp}, nil
}

// checkStage checks a stage's targets in parallel: outputs are hashed on
// every check, so a no-op plan of a large experiment needs the cores.
func (p *Pipeline) checkStage(ctx context.Context, s stage, states map[*target]*state) error {
	return p.checkStageWith(ctx, s, states, false)
}

// checkStageWith is checkStage, keying partial targets over the fresh deps
// when partial is set.
func (p *Pipeline) checkStageWith(ctx context.Context, s stage, states map[*target]*state, partial bool) error {
	if s == stageTrain {
		if err := p.loadProviderSettings(ctx); err != nil {
			return err
		}
	}
	var ts []*target
	for _, t := range p.targets {
		if t.stage == s {
			ts = append(ts, t)
		}
	}
	out := make([]*state, len(ts))
	err := parallel(ctx, len(ts), func(i int) error {
		st, err := p.check(ts[i], states, partial)
		out[i] = st
		return err
	})
	if err != nil {
		return err
	}
	for i, t := range ts {
		states[t] = out[i]
	}
	if s == stageDataset {
		return p.datasetsChecked(ts, states)
	}
	return nil
}

// datasetsChecked gives the trainings their data's hash: from the fresh
// dataset targets' stamps, without parsing the data, and from the data,
// parsed and checked now, for the stale ones; an unusable file is a
// located error at the model, before anything is submitted.
func (p *Pipeline) datasetsChecked(ts []*target, states map[*target]*state) error {
	var diags hcl.Diagnostics
	reported := map[*datasetData]bool{}
	for _, t := range ts {
		d, st := p.datasets[t.model.Name], states[t]
		if st.fresh {
			d.fresh = st.stamp.Outputs[datasetOut(t.model.Name)]
			continue
		}
		if err := d.load(); err != nil && !reported[d] {
			reported[d] = true
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: fmt.Sprintf("Unusable dataset for model %q", t.model.Name), Detail: err.Error() + ".", Subject: t.model.DatasetRange.Ptr()})
		}
	}
	return p.exp.AsError(diags)
}

// loadProviderSettings asks the training provider, once per base model
// trained from (a grid may sweep base_models), for its settings that
// enter the training keys.
func (p *Pipeline) loadProviderSettings(ctx context.Context) error {
	p.settingsOnce.Do(func() {
		t := p.exp.Training
		ts, ok := p.exp.Providers[t.Provider].Config.(provider.TrainingSettings)
		if !ok {
			return
		}
		p.providerSettings = map[string]string{}
		for _, base := range p.exp.BaseModels() {
			s, err := ts.TrainingSettings(ctx, p.opts.Artifacts, base)
			if err != nil {
				p.settingsErr = p.exp.Errorf(t.ProviderRange, "Unusable training provider", "Provider %q: %v.", t.Provider, err)
				return
			}
			p.providerSettings[base] = s
		}
	})
	return p.settingsErr
}

// parallel runs f(0..n-1) on a few workers and returns the first error.
func parallel(ctx context.Context, n int, f func(i int) error) error {
	workers := min(n, 2*runtime.GOMAXPROCS(0))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}
