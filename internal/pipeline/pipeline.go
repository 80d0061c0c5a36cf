// Package pipeline is the Persona Vectors experiment as a build graph:
// dataset(model) -> train(model) -> eval(model, task) -> results, report
// and one Inspect log per evaluation. Each target is declared once (graph.go)
// with its key, outputs and build step; plan, the building commands and
// status walk that one graph, ask the build cache what is stale, and rebuild
// only that, through the providers the experiment names.
package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/inputfile"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/upstream"
)

// Format versions enter every key: bump one when a step's output changes shape
// or meaning, and exactly the targets of that step (and what follows) rebuild.
const (
	datasetFormat = "dataset/1"
	trainFormat   = "train/1"
	evalFormat    = "eval/3"
	resultsFormat = "results/2" // 2: results.txt, the terminal tables, beside eval_results.json
	// conditionsFormat is the shape of eval_results.json's aggregated
	// conditions, in the results key of replicated experiments only.
	conditionsFormat = "conditions/1"
	reportFormat     = "report/1"
	logFormat        = "log/1"
)

// CommandGCPercent is the garbage collector's pace in the commands (unless
// GOGC is set): a command's heap is mostly built once and kept to its end.
const CommandGCPercent = 400

// Env locates an experiment, its artifacts and the providers it may use.
type Env struct {
	Experiment string // path of the .hcl file
	Artifacts  string // artifacts directory
	Log        io.Writer
	// Providers are the kinds the experiment may name; see package providers.
	Providers provider.Registry
	// Getenv is what the experiment's env() reads; nil means os.Getenv.
	Getenv func(string) string
	// Now is the clock that times evaluations; nil means time.Now.
	Now func() time.Time
	// StoreClock is the one the freshness index judges by whether a file
	// has settled (build.Store.Clock); nil is the wall clock.
	StoreClock func() time.Time

	program string // the program's file, for tests; "" is the running one
}

// EnvFromOS reads EXPERIMENT (default ./experiment.hcl); artifacts live in
// ./artifacts.
func EnvFromOS(log io.Writer, providers provider.Registry) Env {
	path := os.Getenv("EXPERIMENT")
	if path == "" {
		path = "experiment.hcl"
	}
	return Env{Experiment: path, Artifacts: "artifacts", Log: log, Providers: providers}
}

// Load reads the experiment and its data. It writes nothing under
// artifacts/ except, for upstream data, the download cache.
func Load(ctx context.Context, env Env) (*Pipeline, error) {
	store := &build.Store{Root: env.Artifacts, Clock: env.StoreClock}
	// The freshness index loads while the experiment is decoded: a no-op
	// plan of a large experiment waits on both.
	go store.Preload()
	src, err := inputfile.Read(env.Experiment, config.MaxExperimentBytes)
	if err != nil {
		return nil, fmt.Errorf("read experiment: %w", err)
	}
	vars := &envRecorder{getenv: env.getenv(), names: map[string]bool{}}
	exp, err := config.Parse(env.Experiment, src, config.Options{Kinds: env.Providers, Getenv: vars.Getenv})
	if err != nil {
		return nil, err
	}
	source, err := openSource(ctx, exp, store)
	if err != nil {
		return nil, err
	}
	p, err := New(exp, Options{Cache: store, Artifacts: env.Artifacts, Source: source, Log: env.Log, Now: env.Now})
	if err != nil {
		return nil, err
	}
	p.envNames = vars.Names()
	if id, ok := planIdentity(env, src, p.envNames); ok {
		p.identity = id
	}
	return p, nil
}

func openSource(ctx context.Context, exp *config.Experiment, store *build.Store) (Source, error) {
	ds := exp.Training.Dataset
	if ds.Source != "upstream" {
		return SampleSource{}, nil
	}
	a, err := upstream.Source{Location: ds.Archive, SHA256: ds.SHA256, CacheDir: store.Path("cache/upstream")}.Open(ctx)
	if err != nil {
		return nil, fmt.Errorf("upstream data: %w", err)
	}
	return upstreamSource{a}, nil
}

type upstreamSource struct{ a *upstream.Archive }

func (u upstreamSource) ID() string { return "upstream@" + u.a.SHA256() }
func (u upstreamSource) Training(trait, strength string) ([]byte, error) {
	return u.a.Training(trait, strength)
}
func (u upstreamSource) Task(trait string) (sampledata.Task, error) { return u.a.Task(trait) }
func (u upstreamSource) CoherencePrompt() (string, error)           { return u.a.CoherencePrompt() }

// Options configure a pipeline.
type Options struct {
	Cache build.Cache
	// Artifacts is the directory the cache keeps its files in; providers
	// keep their records and local state under it.
	Artifacts string
	// Source of datasets and tasks; nil means the embedded sample data.
	Source Source
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Now is the clock that times evaluations; nil means time.Now.
	Now func() time.Time
}

// Pipeline is one experiment bound to its data and, once connected, its
// providers.
type Pipeline struct {
	exp   *config.Experiment
	opts  Options
	cache build.Cache
	log   io.Writer
	now   func() time.Time

	datasets map[string]*datasetData // by model name
	tasks    map[string]*taskData    // by task name
	// coherence is the coherence judge's template: evaluation.coherence_prompt,
	// else the data source's.
	coherence, coherenceHash string
	targets                  []*target // the graph, in build order
	trainTargets             []*target // its trainings, in build order

	// The training provider's own settings that enter training keys, asked
	// once (they may need a download).
	settingsOnce     sync.Once
	providerSettings map[string]string // by base model
	settingsErr      error

	// trainSlots bounds the trainings in flight (max_parallel); nil
	// runs them all at once.
	trainSlots provider.Limiter

	// Set by Connect: who trains, who answers, who judges.
	training, answering, judging *conn

	// Set by Load: what a plan derives from besides the artifacts, and
	// the environment variables the experiment read; see snapshot.go.
	identity build.Inputs
	envNames []string
}

// datasetData is a model's training file. Its inputs need only the raw
// file's hash; parsing, checking and sampling wait until something needs
// the data, and a no-op run takes the data's hash from the dataset
// target's fresh stamp instead (dataset.Parse costs most of a small
// experiment's no-op plan).
type datasetData struct {
	name   string // trait/strength
	inputs build.Inputs
	make   func() ([]byte, error)
	// planned is how many examples the file will hold, from the raw
	// file's lines and the sample size, for checks that need no parse.
	planned int
	// fresh is the data's hash as the dataset target's fresh stamp
	// records it, set by the walk's dataset stage before any training is
	// keyed; "" when the target is stale.
	fresh string

	once     sync.Once
	data     []byte // the sampled JSONL the model trains on
	hash     string // of data
	examples int    // lines of data
	err      error
}

func (d *datasetData) load() error {
	d.once.Do(func() {
		if d.data, d.err = d.make(); d.err == nil {
			d.hash, d.examples = build.Hash(d.data), countLines(d.data)
		}
	})
	return d.err
}

// Data is the training file, made on first use.
func (d *datasetData) Data() ([]byte, error) { return d.data, d.load() }

// Hash is the training file's content hash: the fresh stamp's, or made.
func (d *datasetData) Hash() (string, error) {
	if d.fresh != "" {
		return d.fresh, nil
	}
	return d.hash, d.load()
}

// Examples is the number of training examples.
func (d *datasetData) Examples() (int, error) { return d.examples, d.load() }

type taskData struct {
	task      config.Task
	questions []string
	prompt    string
	hash      string // of the limited questions and the judge prompt

	// inputs are the task's evaluation inputs but the model, made once:
	// a plan keys every model's evaluation of the task.
	inputsOnce sync.Once
	inputs     build.Inputs
}

// New validates the experiment against its data source and declares the
// graph. Names of unknown traits, strengths or tasks come back as located
// configuration errors.
func New(exp *config.Experiment, opts Options) (*Pipeline, error) {
	if opts.Source == nil {
		opts.Source = SampleSource{}
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	// Progress comes from many goroutines at once; one line at a time.
	opts.Log = &lockedWriter{w: opts.Log}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Pipeline{exp: exp, opts: opts, cache: opts.Cache, log: opts.Log, now: opts.Now,
		datasets: map[string]*datasetData{}, tasks: map[string]*taskData{}}

	var diags hcl.Diagnostics
	// Many models may share a dataset: parse and sample each one once.
	type prepared struct {
		d   *datasetData
		err error
	}
	byDataset := map[string]prepared{}
	for _, m := range exp.Models {
		if m.IsReference() {
			continue // trains nothing, so has no dataset
		}
		id := fmt.Sprintf("%s/%s %d", m.DatasetTrait, m.DatasetStrength, m.SampleSize)
		pr, ok := byDataset[id]
		if !ok {
			pr.d, pr.err = p.prepareDataset(m.DatasetTrait, m.DatasetStrength, m.SampleSize)
			byDataset[id] = pr
		}
		if pr.err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError,
				Summary: fmt.Sprintf("Unusable dataset for model %q", m.Name), Detail: pr.err.Error() + ".", Subject: m.DatasetRange.Ptr()})
			continue
		}
		p.datasets[m.Name] = pr.d
	}
	if p.coherence = exp.Evaluation.CoherencePrompt; p.coherence == "" {
		var err error
		if p.coherence, err = opts.Source.CoherencePrompt(); err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No coherence judge prompt",
				Detail:  err.Error() + "; or set coherence_prompt in the evaluation block.",
				Subject: exp.Evaluation.CoherencePromptRange.Ptr()})
		}
	}
	p.coherenceHash = build.Hash([]byte(p.coherence))
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
	p.targets = p.graph()
	for _, t := range p.targets {
		if t.stage == stageTrain {
			p.trainTargets = append(p.trainTargets, t)
		}
	}
	p.trainSlots = p.trainingLimit()
	return p, nil
}

// prepareDataset samples sampleSize examples (0 = all) of a persona
// dataset: a model's own sample size (a grid's sample_sizes) or the
// training block's.
func (p *Pipeline) prepareDataset(trait, strength string, sampleSize int) (*datasetData, error) {
	raw, err := p.opts.Source.Training(trait, strength)
	if err != nil {
		return nil, err
	}
	ds := p.exp.Training.Dataset
	make := func() ([]byte, error) {
		examples, err := dataset.Parse(trait+"/"+strength+".jsonl", raw)
		if err != nil {
			return nil, err
		}
		return dataset.Encode(dataset.Sample(examples, sampleSize, ds.Seed)), nil
	}
	var in build.Inputs
	in.Add("format", datasetFormat)
	in.Add("source", p.opts.Source.ID())
	in.Add("dataset", trait+"/"+strength)
	in.Add("data", build.Hash(raw))
	in.Add("sample_size", sampleSize)
	in.Add("sample_seed", ds.Seed)
	planned := dataset.Lines(raw)
	if sampleSize > 0 {
		planned = min(planned, sampleSize)
	}
	return &datasetData{name: trait + "/" + strength, inputs: in, make: make, planned: planned}, nil
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

// Experiment is the decoded configuration.
func (p *Pipeline) Experiment() *config.Experiment { return p.exp }

// Lock takes the artifacts lock for a run that writes.
func (p *Pipeline) Lock() (*build.Lock, error) { return p.cache.Lock() }

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

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}
