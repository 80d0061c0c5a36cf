package pipeline

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/upstream"
)

// Env locates an experiment and its artifacts.
type Env struct {
	Experiment string // path of the .hcl file
	Artifacts  string // artifacts directory
	Log        io.Writer
}

// EnvFromOS reads EXPERIMENT (default ./experiment.hcl); artifacts live in
// ./artifacts.
func EnvFromOS(log io.Writer) Env {
	path := os.Getenv("EXPERIMENT")
	if path == "" {
		path = "experiment.hcl"
	}
	return Env{Experiment: path, Artifacts: "artifacts", Log: log}
}

// Load reads the experiment and its data. It writes nothing under
// artifacts/ except, for upstream data, the download cache.
func Load(ctx context.Context, env Env) (*Pipeline, error) {
	exp, err := config.Load(env.Experiment)
	if err != nil {
		return nil, err
	}
	store := &build.Store{Root: env.Artifacts}
	src, err := openSource(ctx, exp, store)
	if err != nil {
		return nil, err
	}
	return New(exp, Options{Store: store, Source: src, Log: env.Log})
}

func openSource(ctx context.Context, exp *config.Experiment, store *build.Store) (Source, error) {
	ds := exp.Training.Dataset
	if ds.Source != "upstream" {
		return SampleSource{}, nil
	}
	loc := ds.Archive
	if v := os.Getenv(upstream.EnvArchive); v != "" {
		loc = v
	}
	a, err := upstream.Source{Location: loc, SHA256: ds.SHA256, CacheDir: store.Path("cache/upstream")}.Open(ctx)
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

// Connect opens the providers the experiment names. Call it while holding
// the store's lock: the local engine keeps its state under artifacts/.
func (p *Pipeline) Connect() error {
	var err error
	cache := map[string]provider.Provider{}
	open := func(name string) (provider.Provider, error) {
		if pr, ok := cache[name]; ok {
			return pr, nil
		}
		var pr provider.Provider
		switch name {
		case "local":
			pr, err = p.openLocal()
		default:
			return nil, fmt.Errorf("provider %q is not available; use \"local\"", name)
		}
		if err != nil {
			return nil, err
		}
		cache[name] = pr
		return pr, nil
	}
	if p.opts.Training, err = open(p.exp.Training.Provider); err != nil {
		return p.exp.Errorf(p.exp.Training.ProviderRange, "Unusable training provider", "%v.", err)
	}
	if p.opts.Evaluation, err = open(p.exp.Evaluation.Provider); err != nil {
		return p.exp.Errorf(p.exp.Evaluation.ProviderRange, "Unusable evaluation provider", "%v.", err)
	}
	return nil
}

func (p *Pipeline) openLocal() (provider.Provider, error) {
	eng, err := local.Default(filepath.Join(p.store.Root, "local-engine"))
	if err != nil {
		return nil, err
	}
	// The judge recognises rubrics by their text: teach it this experiment's
	// rubrics (upstream ones differ from the sample's) with the labeled answers.
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		return nil, err
	}
	for _, td := range p.tasks {
		if err := eng.AddJudge(local.Judge{Trait: td.task.Trait, Template: td.prompt, Examples: labeled}); err != nil {
			return nil, fmt.Errorf("task %s: %w", td.task.Name, err)
		}
	}
	return eng, nil
}

// Lock takes the artifacts lock for a run that writes.
func (p *Pipeline) Lock() (*build.Lock, error) { return p.store.Lock() }

// Experiment is the decoded configuration.
func (p *Pipeline) Experiment() *config.Experiment { return p.exp }
