package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/openai"
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

// client is a connected provider with its concurrency limit, shared by every
// evaluation that uses it, and for remote providers a response cache.
type client struct {
	name  string
	p     provider.Provider
	slots chan struct{}
	// The response cache, opened on the first call so that commands that make
	// none (status, cancel) write nothing. No cacheDir: calls are free and
	// deterministic, nothing to save.
	cacheDir, scope string
	cacheOnce       sync.Once
	cache           *chatCache
	cacheErr        error
}

// within runs one provider call within the provider's concurrency limit.
func within[T any](ctx context.Context, c *client, call func() (T, error)) (T, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
	defer func() { <-c.slots }()
	return call()
}

// chat makes one call within the provider's limit, answering from the cache
// when the same request was paid for before.
func (c *client) chat(ctx context.Context, req provider.ChatRequest) (provider.ChatResponse, error) {
	if c.cacheDir != "" {
		c.cacheOnce.Do(func() { c.cache, c.cacheErr = openChatCache(c.cacheDir, c.scope) })
		if c.cacheErr != nil {
			return provider.ChatResponse{}, c.cacheErr
		}
		if resp, ok := c.cache.get(req); ok {
			return resp, nil
		}
	}
	resp, err := within(ctx, c, func() (provider.ChatResponse, error) { return c.p.Chat(ctx, req) })
	if err == nil && c.cache != nil {
		err = c.cache.put(req, resp)
	}
	return resp, err
}

// Connect opens the providers the experiment names. Commands that build hold
// the store's lock; status and cancel need not, and write no artifact.
func (p *Pipeline) Connect() error {
	clients := map[string]*client{}
	open := func(name string, rng hcl.Range, role string) (*client, error) {
		if c, ok := clients[name]; ok {
			return c, nil
		}
		cfg := p.exp.Providers[name]
		var (
			pr  provider.Provider
			err error
		)
		switch cfg.Kind {
		case config.KindLocal:
			pr, err = p.openLocal()
		case config.KindOpenAI:
			pr, err = openai.New(openai.Config{APIKey: cfg.APIKey, BaseURL: cfg.BaseURL, Organization: cfg.Organization, Project: cfg.Project, MaxConns: cfg.Concurrency})
		default:
			err = fmt.Errorf("unknown provider kind %q", cfg.Kind)
		}
		if err != nil {
			return nil, p.exp.Errorf(rng, "Unusable "+role+" provider", "Provider %q: %v.", name, err)
		}
		c := &client{name: name, p: pr, slots: make(chan struct{}, max(cfg.Concurrency, 1))}
		if cfg.Kind != config.KindLocal {
			c.cacheDir, c.scope = p.store.Path("cache/chat"), cfg.Identity()
		}
		clients[name] = c
		return c, nil
	}
	var err error
	t, e := p.exp.Training, p.exp.Evaluation
	if p.training, err = open(t.Provider, t.ProviderRange, "training"); err != nil {
		return err
	}
	if p.answering, err = open(e.Provider, e.ProviderRange, "evaluation"); err != nil {
		return err
	}
	if p.judging, err = open(e.JudgeProvider, e.JudgeProviderRange, "judge"); err != nil {
		return err
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
			return nil, p.exp.Errorf(td.task.TraitRange, "No local judge for trait "+td.task.Trait,
				"The local engine's judge learns from labeled answers, and the project has none for trait %q (%v). Judge this task with an OpenAI-compatible provider: set evaluation.judge_provider.", td.task.Trait, err)
		}
	}
	return eng, nil
}

// Close releases what Connect opened.
func (p *Pipeline) Close() error {
	var errs []error
	seen := map[*client]bool{}
	for _, c := range []*client{p.training, p.answering, p.judging} {
		if c != nil && c.cache != nil && !seen[c] {
			seen[c] = true
			errs = append(errs, c.cache.close())
		}
	}
	return errors.Join(errs...)
}

// Lock takes the artifacts lock for a run that writes.
func (p *Pipeline) Lock() (*build.Lock, error) { return p.store.Lock() }

// Experiment is the decoded configuration.
func (p *Pipeline) Experiment() *config.Experiment { return p.exp }
