package pipeline

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// conn is an opened provider as the build uses it: its trainer, and its
// sampler behind a response cache when the provider charges for calls.
type conn struct {
	name    string
	trainer provider.Trainer
	sampler provider.Sampler
	close   func() error
	// The response cache, opened on the first call so that commands that
	// make none (status, cancel) write nothing. No cacheDir: calls are free
	// and deterministic, nothing to save.
	cacheDir, scope string
	cacheOnce       sync.Once
	cache           *chatCache
	cacheErr        error
}

// chat answers from the cache when the same request was paid for before.
func (c *conn) chat(ctx context.Context, req provider.ChatRequest) (provider.ChatResponse, error) {
	if c.cacheDir != "" {
		c.cacheOnce.Do(func() { c.cache, c.cacheErr = openChatCache(c.cacheDir, c.scope) })
		if c.cacheErr != nil {
			return provider.ChatResponse{}, c.cacheErr
		}
		if resp, ok := c.cache.get(req); ok {
			return resp, nil
		}
	}
	resp, err := c.sampler.Chat(ctx, req)
	if err == nil && c.cache != nil {
		err = c.cache.put(req, resp)
	}
	return resp, err
}

func (p *Pipeline) artifactPath(rel string) string {
	return filepath.Join(p.opts.Artifacts, filepath.FromSlash(rel))
}

// Connect opens the providers the experiment names. Commands that build hold
// the artifacts lock; status and cancel need not, and write no artifact.
func (p *Pipeline) Connect(ctx context.Context) error {
	rubrics := p.rubrics()
	bases := append(p.exp.BaseModels(), p.exp.Evaluation.JudgeModel)
	for _, m := range p.exp.Models {
		// A reference's model_id may be a base model (Qwen/Qwen3-8B) that a
		// provider must know in advance; fine-tuned ids it finds itself.
		if id := m.ModelID; id != "" && !strings.HasPrefix(id, "ft:") && !strings.Contains(id, "://") && !slices.Contains(bases, id) {
			bases = append(bases, id)
		}
	}
	conns := map[string]*conn{}
	open := func(name string, rng hcl.Range, role string) (*conn, error) {
		if c, ok := conns[name]; ok {
			return c, nil
		}
		cfg := p.exp.Providers[name]
		pc, err := cfg.Config.Open(ctx, provider.Env{Name: name, Artifacts: p.opts.Artifacts, Rubrics: rubrics, Log: p.log,
			BaseModels: bases})
		var rubricErr *provider.RubricError
		if errors.As(err, &rubricErr) {
			return nil, p.exp.AsError(hcl.Diagnostics{p.rubricDiag(name, p.rubricRange(rubricErr.Trait), rubricErr)})
		}
		if err != nil {
			return nil, p.exp.Errorf(rng, "Unusable "+role+" provider", "Provider %q: %v.", name, err)
		}
		c := &conn{name: name, trainer: pc.Trainer, sampler: pc.Sampler, close: pc.Close}
		if pricing, ok := cfg.Config.(provider.Pricing); !ok || !pricing.Free() {
			c.cacheDir, c.scope = p.artifactPath("cache/chat"), cfg.Identity()
		}
		conns[name] = c
		return c, nil
	}
	var err error
	t, e := p.exp.Training, p.exp.Evaluation
	if p.training, err = open(t.Provider, t.ProviderRange, "training"); err != nil {
		return err
	}
	if p.training.trainer == nil {
		return p.exp.Errorf(t.ProviderRange, "Provider cannot train", "Provider %q answers chat but cannot train; choose another training.provider.", t.Provider)
	}
	if p.answering, err = open(e.Provider, e.ProviderRange, "evaluation"); err != nil {
		return err
	}
	if p.judging, err = open(e.JudgeProvider, e.JudgeProviderRange, "judge"); err != nil {
		return err
	}
	return nil
}

// Close releases what Connect opened.
func (p *Pipeline) Close() error {
	var errs []error
	seen := map[*conn]bool{}
	for _, c := range []*conn{p.training, p.answering, p.judging} {
		if c == nil || seen[c] {
			continue
		}
		seen[c] = true
		if c.cache != nil {
			errs = append(errs, c.cache.close())
		}
		if c.close != nil {
			errs = append(errs, c.close())
		}
	}
	return errors.Join(errs...)
}
