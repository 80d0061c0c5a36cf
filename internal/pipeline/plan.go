package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/cost"
	"github.com/modelorganisms/pvbuild/internal/dataset"
)

// Step is one target's state in a plan.
type Step struct {
	Target string // e.g. "train/evil_severe"
	Fresh  bool
	Reason string // why it is stale
	Submit string // for a stale training target: the job it would submit
	Cost   cost.Estimate
	Calls  int // for a stale evaluation: the chat calls it would make
	status build.Status
	model  string // of a log target
	task   string
	inputs build.Inputs
}

// Plan is the state of every target, in build order.
type Plan struct {
	Datasets []Step
	Train    []Step
	Evals    []Step
	Results  Step
	Reports  []Step // the report, then one Inspect log per evaluation
}

// Steps lists every target in build order.
func (pl *Plan) Steps() []Step {
	var all []Step
	all = append(all, pl.Datasets...)
	all = append(all, pl.Train...)
	all = append(all, pl.Evals...)
	all = append(all, pl.Results)
	return append(all, pl.Reports...)
}

// Cost sums the estimated cost of the distinct training jobs a build would
// submit, and the chat calls its evaluations would make.
func (pl *Plan) Cost() (usd float64, unpriced, calls int) {
	seen := map[string]bool{}
	for _, s := range pl.Train {
		if s.Fresh || seen[s.inputs.Key()] {
			continue
		}
		seen[s.inputs.Key()] = true
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

// Stale counts stale targets and distinct training jobs a build would submit.
func (pl *Plan) Stale() (targets, jobs int) {
	keys := map[string]bool{}
	for _, s := range pl.Steps() {
		if !s.Fresh {
			targets++
		}
	}
	for _, s := range pl.Train {
		if !s.Fresh {
			keys[s.inputs.Key()] = true
		}
	}
	return targets, len(keys)
}

// Plan checks every target without building anything.
func (p *Pipeline) Plan(ctx context.Context) (*Plan, error) {
	models := p.exp.Models
	pl := &Plan{
		Datasets: make([]Step, len(models)),
		Train:    make([]Step, len(models)),
		Evals:    make([]Step, len(models)*len(p.exp.Evaluation.Tasks)),
	}
	// Targets are independent to check; outputs are hashed in parallel so a
	// no-op plan of a large experiment stays fast.
	err := parallel(ctx, len(models), func(i int) error {
		m := models[i]
		d := p.datasets[m.Name]
		ds, err := p.check(datasetID(m.Name), d.inputs)
		if err != nil {
			return err
		}
		pl.Datasets[i] = ds
		tin := p.trainInputs(m)
		tr, err := p.check(trainID(m.Name), tin)
		if err != nil {
			return err
		}
		if !tr.Fresh {
			if tr.Cost, err = p.estimate(m); err != nil {
				return err
			}
			tr.Submit = p.describeJob(m, tr.Cost)
		}
		pl.Train[i] = tr
		for j, t := range p.exp.Evaluation.Tasks {
			pl.Evals[i*len(p.exp.Evaluation.Tasks)+j], err = p.planEval(m, t, tr)
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	pl.Results = Step{Target: resultsID}
	in, missing := p.allEvalsInputs(resultsFormat, pl.Evals)
	if missing != "" {
		pl.Results.Reason = missing
	} else if pl.Results, err = p.check(resultsID, in); err != nil {
		return nil, err
	}
	pl.Reports, err = p.planReports(ctx, pl.Evals)
	return pl, err
}

func (p *Pipeline) check(target string, in build.Inputs) (Step, error) {
	st, err := p.store.Check(target, in)
	if err != nil {
		return Step{}, err
	}
	return Step{Target: target, Fresh: st.Fresh, Reason: st.Reason, status: st, inputs: in}, nil
}

func (p *Pipeline) planEval(m config.Model, t config.Task, train Step) (Step, error) {
	id := evalID(m.Name, t.Name)
	td := p.tasks[t.Name]
	calls := len(td.questions) * (1 + p.exp.Evaluation.SamplesPerQuestion)
	if !train.Fresh {
		return Step{Target: id, Reason: "training " + m.Name + " is stale", Calls: calls}, nil
	}
	s, err := p.check(id, p.evalInputs(train.status.Stamp.Outputs[trainOut(m.Name)], td))
	if !s.Fresh {
		s.Calls = calls
	}
	return s, err
}

// allEvalsInputs are the inputs of a target that reads every evaluation:
// their output hashes and the models' display names. When an evaluation is
// stale such a target cannot be keyed yet, and missing says which.
func (p *Pipeline) allEvalsInputs(format string, evals []Step) (in build.Inputs, missing string) {
	in.Add("format", format)
	stale := 0
	first := ""
	for _, s := range evals {
		if !s.Fresh {
			if stale == 0 {
				first = s.Target
			}
			stale++
			continue
		}
		for name, hash := range s.status.Stamp.Outputs {
			in.Add(name, hash)
		}
	}
	names := make([]string, len(p.exp.Models))
	for i, m := range p.exp.Models {
		in.Add("display/"+m.Name, m.Trait+"/"+m.Strength)
		names[i] = m.Name
	}
	// Keys ignore input order, but these outputs list models in file order.
	in.Add("model_order", strings.Join(names, ","))
	if stale > 0 {
		missing = fmt.Sprintf("%s is stale", first)
		if stale > 1 {
			missing = fmt.Sprintf("%s and %d other evaluations are stale", first, stale-1)
		}
	}
	return in, missing
}

func (p *Pipeline) describeJob(m config.Model, est cost.Estimate) string {
	t := p.exp.Training
	h := m.Hyperparameters
	s := fmt.Sprintf("%s job: %s, suffix %s, %d examples, n_epochs %d", t.Provider, t.BaseModel, m.Suffix,
		countLines(p.datasets[m.Name].data), h.NEpochs)
	if h.LearningRateMultiplier > 0 {
		s += fmt.Sprintf(", learning_rate_multiplier %g", h.LearningRateMultiplier)
	}
	if h.BatchSize > 0 {
		s += fmt.Sprintf(", batch_size %d", h.BatchSize)
	}
	if p.exp.Providers[t.Provider].Kind == config.KindLocal {
		return s + "; free (local engine)"
	}
	return s + "; " + est.String()
}

// estimate prices a model's fine-tune; the local engine is free.
func (p *Pipeline) estimate(m config.Model) (cost.Estimate, error) {
	t := p.exp.Training
	if p.exp.Providers[t.Provider].Kind == config.KindLocal {
		return cost.Estimate{Epochs: m.Hyperparameters.NEpochs, Priced: true}, nil
	}
	d := p.datasets[m.Name]
	examples, err := dataset.Parse(datasetOut(m.Name), d.data)
	if err != nil {
		return cost.Estimate{}, err
	}
	tokens, err := cost.TrainingTokens(examples)
	if err != nil {
		return cost.Estimate{}, err
	}
	epochs := m.Hyperparameters.NEpochs
	if epochs == 0 {
		epochs = config.DefaultNEpochs
	}
	return cost.Training(t.BaseModel, tokens, epochs, t.PricePerMillion), nil
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
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

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
