package providers

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/cost"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/jobs"
	"github.com/modelorganisms/pvbuild/internal/openai"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// DefaultOpenAIBaseURL is where kind "openai" goes without a base_url.
const DefaultOpenAIBaseURL = "https://api.openai.com/v1"

// OpenAI is the kind of any OpenAI-compatible API: OpenAI itself, vLLM,
// Ollama, `mage serve`. Undeclared, the built-in "openai" provider reads
// OPENAI_API_KEY and OPENAI_BASE_URL.
type OpenAI struct {
	// Jobs tunes the job trainer; Provider, Dir, Limiter, Log and Outage
	// are set by Open.
	Jobs jobs.Options
	// Outage tunes the outage policy that chat and job calls share; Max
	// comes from max_outage. Tests inject Sleep and Now to live through a
	// long outage in virtual time.
	Outage provider.OutagePolicy
	// HTTPClient is the client for the API; nil = a default one.
	HTTPClient *http.Client
}

type openaiBlock struct {
	APIKey       *string `hcl:"api_key,optional"`
	BaseURL      *string `hcl:"base_url,optional"`
	Organization *string `hcl:"organization,optional"`
	Project      *string `hcl:"project,optional"`
	Concurrency  *int    `hcl:"concurrency,optional"`
	MaxOutage    *string `hcl:"max_outage,optional"`
}

// Decode implements provider.Kind.
func (k *OpenAI) Decode(s provider.Settings) (provider.Config, hcl.Diagnostics) {
	var b openaiBlock
	if diags := decodeBody(s, &b); diags.HasErrors() {
		return nil, diags
	}
	getenv := s.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	c := &openaiConfig{kind: k, apiKey: getenv("OPENAI_API_KEY"), baseURL: getenv("OPENAI_BASE_URL")}
	if c.baseURL == "" {
		c.baseURL = DefaultOpenAIBaseURL
	}
	for _, v := range []struct {
		dst *string
		src *string
	}{{&c.apiKey, b.APIKey}, {&c.baseURL, b.BaseURL}, {&c.organization, b.Organization}, {&c.project, b.Project}} {
		if v.src != nil {
			*v.dst = *v.src
		}
	}
	var diags hcl.Diagnostics
	c.concurrency, diags = concurrency(s, b.Concurrency, 32)
	var d hcl.Diagnostics
	c.maxOutage, d = maxOutage(s, b.MaxOutage)
	diags = append(diags, d...)
	// A URL from the environment is checked when the provider is opened:
	// a shell's OPENAI_BASE_URL must not break a build that never uses it.
	if b.BaseURL != nil {
		diags = append(diags, checkURL(s, "base_url", *b.BaseURL)...)
	}
	return c, diags
}

type openaiConfig struct {
	kind                           *OpenAI
	apiKey                         string // never written anywhere
	baseURL, organization, project string
	concurrency                    int
	maxOutage                      time.Duration
}

// Identity is the endpoint and the account that owns the fine-tunes: a
// model trained in one organization or project is not served by another.
func (c *openaiConfig) Identity() string {
	id := "openai " + normalizeURL(c.baseURL)
	if c.organization != "" {
		id += " organization=" + c.organization
	}
	if c.project != "" {
		id += " project=" + c.project
	}
	return id
}

// Free implements provider.Pricing.
func (c *openaiConfig) Free() bool { return false }

// EstimateTraining counts the training tokens with o200k_base, as OpenAI
// bills them, times epochs times the price per 1M tokens.
func (c *openaiConfig) EstimateTraining(_ context.Context, req provider.EstimateRequest) (provider.Estimate, error) {
	examples, err := dataset.Parse("training data", req.Data)
	if err != nil {
		return provider.Estimate{}, err
	}
	tokens, err := cost.TrainingTokens(examples)
	if err != nil {
		return provider.Estimate{}, err
	}
	return cost.Training(req.BaseModel, tokens, req.Epochs, req.Overrides), nil
}

// EstimateSampling implements provider.SamplingPricing: each prompt counted
// with o200k_base as OpenAI bills chat, once a call however many samples it
// asks for, and MaxTokens generated for each of them. The answers come from
// a model fine-tuned from BaseModel, the judge is BaseModel itself.
func (c *openaiConfig) EstimateSampling(_ context.Context, req provider.SamplingEstimate) (provider.Estimate, error) {
	prompt := 0
	for _, msgs := range req.Prompts {
		n, err := cost.ConversationTokens(msgs)
		if err != nil {
			return provider.Estimate{}, fmt.Errorf("price sampling on %s: %w", req.BaseModel, err)
		}
		prompt += n + req.PromptExtra
	}
	generated := len(req.Prompts) * max(req.N, 1) * req.MaxTokens
	return cost.OpenAISampling(req.BaseModel, !req.Judge, prompt, generated), nil
}

// Open implements provider.Config.
func (c *openaiConfig) Open(_ context.Context, env provider.Env) (*provider.Conn, error) {
	policy := c.kind.Outage
	policy.Max = c.maxOutage
	// One tracker for chat and job calls: the provider is down or not.
	outage := provider.NewOutage(env.Name, policy, env.Log)
	client, err := openai.New(openai.Config{APIKey: c.apiKey, BaseURL: c.baseURL, Organization: c.organization, Project: c.project,
		MaxConns: c.concurrency, HTTPClient: c.kind.HTTPClient, Outage: outage})
	if err != nil {
		return nil, err
	}
	lim := provider.NewLimiter(c.concurrency)
	jo := c.kind.Jobs
	jo.Provider, jo.Dir, jo.Limiter, jo.Log, jo.Outage = env.Name, filepath.Join(env.Artifacts, "jobs"), lim, env.Log, outage
	return &provider.Conn{Sampler: provider.LimitSampler(client, lim), Trainer: jobs.New(client, jo)}, nil
}
