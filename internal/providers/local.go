package providers

import (
	"context"
	"errors"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/jobs"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// Local is the embedded engine's kind: offline, free, deterministic. Its
// state lives under artifacts/local-engine, its job records under
// artifacts/jobs.
type Local struct {
	// JobDuration is a job's simulated run time; 0 = the engine's default.
	// Tests shorten it rather than wait on the wall clock.
	JobDuration time.Duration
	// Now is the engine's clock; nil = time.Now. A job's state follows
	// from its age, so a test can move it along without waiting.
	Now func() time.Time
	// Jobs tunes the job trainer (poll interval, test hooks); Provider, Dir,
	// Limiter and Log are set by Open.
	Jobs jobs.Options
}

type localBlock struct {
	Concurrency *int `hcl:"concurrency,optional"`
}

// Decode implements provider.Kind.
func (k *Local) Decode(s provider.Settings) (provider.Config, hcl.Diagnostics) {
	var b localBlock
	if diags := decodeBody(s, &b); diags.HasErrors() {
		return nil, diags
	}
	n, diags := concurrency(s, b.Concurrency, 32)
	return &localConfig{kind: k, concurrency: n}, diags
}

type localConfig struct {
	kind        *Local
	concurrency int
}

func (c *localConfig) Identity() string { return "local" }

// JudgeVersion implements provider.JudgeVersioned: the judge's algorithm
// and the embedded data it learns from.
func (c *localConfig) JudgeVersion() string {
	return local.JudgeAlgorithm + "@" + sampledata.Hash()[:16]
}

// Free implements provider.Pricing: the local engine costs nothing.
func (c *localConfig) Free() bool { return true }

func (c *localConfig) EstimateTraining(_ context.Context, req provider.EstimateRequest) (provider.Estimate, error) {
	return provider.Estimate{Epochs: req.Epochs, Priced: true, Free: true}, nil
}

// Open implements provider.Config. The judge learns the experiment's
// rubrics from the project's labeled answers; a trait without any is a
// RubricError.
func (c *localConfig) Open(_ context.Context, env provider.Env) (*provider.Conn, error) {
	opts, err := local.DefaultOptions(filepath.Join(env.Artifacts, "local-engine"))
	if err != nil {
		return nil, err
	}
	opts.JobDuration, opts.Now = c.kind.JobDuration, c.kind.Now
	eng, err := local.Open(opts)
	if err != nil {
		return nil, err
	}
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		return nil, err
	}
	for _, r := range env.Rubrics {
		if err := eng.AddJudge(local.Judge{Trait: r.Trait, Template: r.Template, Examples: labeled}); err != nil {
			return nil, &provider.RubricError{Trait: r.Trait, Err: errors.Unwrap(err)}
		}
	}
	lim := provider.NewLimiter(c.concurrency)
	jo := c.kind.Jobs
	jo.Provider, jo.Dir, jo.Limiter, jo.Log = env.Name, filepath.Join(env.Artifacts, "jobs"), lim, env.Log
	if jo.PollInterval <= 0 {
		jo.PollInterval = 200 * time.Millisecond
	}
	// Local jobs take seconds: poll at most 8x the first interval apart.
	jo.MaxPollInterval = 8 * jo.PollInterval
	return &provider.Conn{Sampler: provider.LimitSampler(eng, lim), Trainer: jobs.New(eng, jo)}, nil
}
