// Package pipeline is the Persona Vectors experiment as a build graph:
// dataset(model) -> train(model) -> eval(model, task) -> results. It computes
// each target's inputs, asks the build store what is stale, and rebuilds only
// that, through a provider.
package pipeline

import (
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// Format versions enter every key: bump one when a step's output changes shape
// or meaning, and exactly the targets of that step (and what follows) rebuild.
const (
	datasetFormat = "dataset/1"
	trainFormat   = "train/1"
	evalFormat    = "eval/2"
	resultsFormat = "results/1"
)

// Options configure a pipeline run.
type Options struct {
	Store *build.Store
	// Source of datasets and tasks; nil means the embedded sample data.
	Source Source
	// PollInterval is the first wait between job polls; it grows to 8x.
	PollInterval time.Duration
	// Log receives progress lines; nil discards them.
	Log io.Writer
}

// Pipeline is one experiment bound to its data and providers.
type Pipeline struct {
	exp   *config.Experiment
	opts  Options
	store *build.Store
	log   io.Writer

	datasets map[string]*datasetTarget // by model name
	tasks    map[string]*taskData      // by task name

	// Set by Connect: who trains, who answers, who judges.
	training, answering, judging *client
}

type datasetTarget struct {
	model  config.Model
	data   []byte // the sampled JSONL the model trains on
	hash   string // of data
	inputs build.Inputs
}

type taskData struct {
	task      config.Task
	questions []string
	prompt    string
	hash      string // of the limited questions and the judge prompt
}

// New validates the experiment against its data source and prepares the
// graph. Names of unknown traits, strengths or tasks come back as located
// configuration errors.
func New(exp *config.Experiment, opts Options) (*Pipeline, error) {
	if opts.Source == nil {
		opts.Source = SampleSource{}
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	// Progress comes from many goroutines at once; one line at a time.
	opts.Log = &lockedWriter{w: opts.Log}
	p := &Pipeline{exp: exp, opts: opts, store: opts.Store, log: opts.Log,
		datasets: map[string]*datasetTarget{}, tasks: map[string]*taskData{}}

	var diags hcl.Diagnostics
	// Many models may share a dataset: parse and sample each one once.
	type prepared struct {
		data   []byte
		hash   string
		inputs build.Inputs
		err    error
	}
	byDataset := map[string]prepared{}
	for _, m := range exp.Models {
		id := m.DatasetTrait + "/" + m.DatasetStrength
		pr, ok := byDataset[id]
		if !ok {
			pr.data, pr.inputs, pr.err = p.prepareDataset(m.DatasetTrait, m.DatasetStrength)
			pr.hash = build.Hash(pr.data)
			byDataset[id] = pr
		}
		d, err := &datasetTarget{model: m, data: pr.data, hash: pr.hash, inputs: pr.inputs}, pr.err
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: fmt.Sprintf("Unusable dataset for model %q", m.Name), Detail: err.Error() + ".", Subject: m.DatasetRange.Ptr()})
			continue
		}
		p.datasets[m.Name] = d
	}
	for _, t := range exp.Evaluation.Tasks {
		td, err := p.prepareTask(t)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: fmt.Sprintf("Unusable task %q", t.Name), Detail: err.Error() + ".", Subject: t.TraitRange.Ptr()})
			continue
		}
		p.tasks[t.Name] = td
	}
	if err := exp.AsError(diags); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Pipeline) prepareDataset(trait, strength string) ([]byte, build.Inputs, error) {
	raw, err := p.opts.Source.Training(trait, strength)
	if err != nil {
		return nil, nil, err
	}
	ds := p.exp.Training.Dataset
	examples, err := dataset.Parse(trait+"/"+strength+".jsonl", raw)
	if err != nil {
		return nil, nil, err
	}
	data := dataset.Encode(dataset.Sample(examples, ds.SampleSize, ds.Seed))
	var in build.Inputs
	in.Add("format", datasetFormat)
	in.Add("source", p.opts.Source.ID())
	in.Add("dataset", trait+"/"+strength)
	in.Add("data", build.Hash(raw))
	in.Add("sample_size", ds.SampleSize)
	in.Add("sample_seed", ds.Seed)
	return data, in, nil
}

func (p *Pipeline) prepareTask(t config.Task) (*taskData, error) {
	var task sampledata.Task
	if custom, ok := p.exp.Traits[t.Trait]; ok {
		task = sampledata.Task{Questions: custom.Questions, EvalPrompt: custom.JudgePrompt}
	} else {
		var err error
		if task, err = p.opts.Source.Task(t.Trait); err != nil {
			return nil, err
		}
	}
	if !strings.Contains(task.EvalPrompt, "{question}") || !strings.Contains(task.EvalPrompt, "{answer}") {
		return nil, fmt.Errorf("the judge prompt of trait %q lacks {question} or {answer}", t.Trait)
	}
	qs := task.Questions
	if len(qs) == 0 {
		return nil, fmt.Errorf("trait %q has no evaluation questions", t.Trait)
	}
	if n := p.exp.Evaluation.Limit; n < len(qs) {
		qs = qs[:n]
	}
	h, _ := json.Marshal(struct {
		Q []string
		P string
	}{qs, task.EvalPrompt})
	return &taskData{task: t, questions: qs, prompt: task.EvalPrompt, hash: build.Hash(h)}, nil
}

// Target names, also the stamps' names.
func datasetID(model string) string     { return "dataset/" + model }
func trainID(model string) string       { return "train/" + model }
func evalID(model, task string) string  { return path.Join("eval", model, task) }
func datasetOut(model string) string    { return "datasets/" + model + ".jsonl" }
func trainOut(model string) string      { return "train/" + model + ".json" }
func evalOut(model, task string) string { return path.Join("evals", model, task+".json") }

const resultsID, resultsOut = "results", "eval_results.json"

// trainInputs is everything a fine-tune's outcome depends on. Display fields
// (trait, strength, the model's name) are left out so that identical
// fine-tunes share one key and train once.
func (p *Pipeline) trainInputs(m config.Model) build.Inputs {
	t := p.exp.Training
	var in build.Inputs
	in.Add("format", trainFormat)
	in.Add("provider", p.exp.Providers[t.Provider].Identity())
	in.Add("base_model", t.BaseModel)
	in.Add("dataset", p.datasets[m.Name].hash)
	in.Add("suffix", m.Suffix)
	in.Add("seed", t.Seed)
	h := m.Hyperparameters
	in.Add("n_epochs", h.NEpochs)
	in.Add("learning_rate_multiplier", h.LearningRateMultiplier)
	in.Add("batch_size", h.BatchSize)
	return in
}

// evalInputs needs the hash of the trained model's record.
func (p *Pipeline) evalInputs(trainHash string, t *taskData) build.Inputs {
	e := p.exp.Evaluation
	var in build.Inputs
	in.Add("format", evalFormat)
	in.Add("model", trainHash)
	in.Add("provider", p.exp.Providers[e.Provider].Identity())
	in.Add("judge_provider", p.exp.Providers[e.JudgeProvider].Identity())
	in.Add("trait", t.task.Trait)
	in.Add("task_data", t.hash)
	in.Add("judge_model", e.JudgeModel)
	in.Add("limit", e.Limit)
	in.Add("samples_per_question", e.SamplesPerQuestion)
	in.Add("temperature", e.Temperature)
	in.Add("max_tokens", e.MaxTokens)
	in.Add("seed", e.Seed)
	return in
}

// TrainedModel is what a finished training target records.
type TrainedModel struct {
	Model           string                   `json:"model"`
	Provider        string                   `json:"provider"`
	JobID           string                   `json:"job_id"`
	BaseModel       string                   `json:"base_model"`
	FineTunedModel  string                   `json:"fine_tuned_model"`
	Hyperparameters provider.Hyperparameters `json:"hyperparameters"`
	Key             string                   `json:"key"`
}

func (p *Pipeline) readTrained(model string) (TrainedModel, error) {
	var tm TrainedModel
	err := readJSON(p.store.Path(trainOut(model)), &tm)
	return tm, err
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
