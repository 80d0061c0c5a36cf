package providers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/cost"
	"github.com/modelorganisms/pvbuild/internal/inputfile"
	"github.com/modelorganisms/pvbuild/internal/openai"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tinkersample"
	"github.com/modelorganisms/pvbuild/internal/tinkertrain"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// Tinker is the kind of Thinking Machines' Tinker: LoRA training of open
// weights in a loop this client drives, sampling, and judging by a base
// model's first-token distribution. Undeclared, the built-in "tinker"
// provider reads TINKER_API_KEY, TINKER_BASE_URL and HF_ENDPOINT.
type Tinker struct {
	// HTTPClient is the client for Tinker and for tokenizer downloads;
	// nil = a default one.
	HTTPClient *http.Client
	// Client tunes the Tinker client (sleep, clock); APIKey, BaseURL and
	// Outage come from the settings.
	Client tinker.Options
	// Outage tunes the outage policy every Tinker call shares; Max comes
	// from max_outage. Tests inject Sleep and Now.
	Outage provider.OutagePolicy
}

type tinkerBlock struct {
	APIKey          *string  `hcl:"api_key,optional"`
	BaseURL         *string  `hcl:"base_url,optional"`
	TokenizerHub    *string  `hcl:"tokenizer_hub,optional"`
	Tokenizer       *string  `hcl:"tokenizer,optional"`
	LoRARank        *int     `hcl:"lora_rank,optional"`
	LearningRate    *float64 `hcl:"learning_rate,optional"`
	BatchSize       *int     `hcl:"batch_size,optional"`
	Schedule        *string  `hcl:"lr_schedule,optional"`
	CheckpointEvery *int     `hcl:"checkpoint_every,optional"`
	Renderer        *string  `hcl:"renderer,optional"`
	MaxLength       *int     `hcl:"max_length,optional"`
	Concurrency     *int     `hcl:"concurrency,optional"`
	MaxOutage       *string  `hcl:"max_outage,optional"`
}

// Decode implements provider.Kind.
func (k *Tinker) Decode(s provider.Settings) (provider.Config, hcl.Diagnostics) {
	var b tinkerBlock
	if diags := decodeBody(s, &b); diags.HasErrors() {
		return nil, diags
	}
	getenv := s.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	c := &tinkerConfig{kind: k, apiKey: getenv("TINKER_API_KEY"), baseURL: getenv("TINKER_BASE_URL"), hub: getenv("HF_ENDPOINT")}
	if c.baseURL == "" {
		c.baseURL = tinker.DefaultBaseURL
	}
	if c.hub == "" {
		c.hub = tokenizer.DefaultHubURL
	}
	for _, v := range []struct {
		dst *string
		src *string
	}{{&c.apiKey, b.APIKey}, {&c.baseURL, b.BaseURL}, {&c.hub, b.TokenizerHub}, {&c.tokenizerPath, b.Tokenizer},
		{&c.settings.Schedule, b.Schedule}, {&c.settings.Renderer, b.Renderer}} {
		if v.src != nil {
			*v.dst = *v.src
		}
	}
	for _, v := range []struct {
		dst *int
		src *int
	}{{&c.settings.LoRARank, b.LoRARank}, {&c.settings.BatchSize, b.BatchSize}, {&c.settings.CheckpointEvery, b.CheckpointEvery}, {&c.settings.MaxLength, b.MaxLength}} {
		if v.src != nil {
			*v.dst = *v.src
		}
	}
	if b.LearningRate != nil {
		c.settings.LearningRate = *b.LearningRate
	}
	var diags hcl.Diagnostics
	if b.Tokenizer != nil {
		// The experiment's one rule for the files it names.
		path, err := inputfile.Resolve(s.Dir, *b.Tokenizer)
		if err == nil {
			_, err = inputfile.CheckRegular(path)
		}
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unusable tokenizer", Detail: err.Error() + ".", Subject: attrRange(s, "tokenizer")})
		}
		c.tokenizerPath = path
	}
	if err := c.settings.Validate(); err != nil {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid Tinker setting",
			Detail: fmt.Sprintf("Provider %q: %v.", s.Name, err), Subject: s.Range.Ptr()})
	}
	n, d := concurrency(s, b.Concurrency, 32)
	c.concurrency = n
	diags = append(diags, d...)
	c.maxOutage, d = maxOutage(s, b.MaxOutage)
	diags = append(diags, d...)
	for _, u := range []struct {
		attr string
		v    *string
	}{{"base_url", b.BaseURL}, {"tokenizer_hub", b.TokenizerHub}} {
		if u.v != nil {
			diags = append(diags, checkURL(s, u.attr, *u.v)...)
		}
	}
	return c, diags
}

type tinkerConfig struct {
	kind          *Tinker
	apiKey        string // never written anywhere
	baseURL, hub  string
	tokenizerPath string // a local tokenizer.json instead of the hub's
	settings      tinkertrain.Settings
	concurrency   int
	maxOutage     time.Duration
}

// Identity is the service's endpoint; the key never enters it.
func (c *tinkerConfig) Identity() string { return "tinker " + normalizeURL(c.baseURL) }

// TrainingSettings implements provider.TrainingSettings: everything that
// changes the trained model, the tokenizer's hash among them (fetched once
// and cached, as training would). checkpoint_every does not.
func (c *tinkerConfig) TrainingSettings(ctx context.Context, artifacts, baseModel string) (string, error) {
	tok, err := c.tokenizer(ctx, artifacts, baseModel)
	if err != nil {
		return "", err
	}
	s := c.settings
	return fmt.Sprintf("lora_rank=%d learning_rate=%g batch_size=%d lr_schedule=%s renderer=%s max_length=%d tokenizer=sha256:%s",
		s.LoRARank, s.LearningRate, s.BatchSize, s.Schedule, s.Renderer, s.MaxLength, tok.SHA256()), nil
}

// Free implements provider.Pricing.
func (c *tinkerConfig) Free() bool { return false }

// TrainsLoRA implements provider.LoRATrainer: a model's lora_rank replaces
// the block's for its training.
func (c *tinkerConfig) TrainsLoRA() bool { return true }

// EstimateTraining counts the training tokens as Tinker bills them: each
// conversation rendered with the base model's chat template and encoded by
// its real tokenizer, times epochs, times the price per 1M tokens.
func (c *tinkerConfig) EstimateTraining(ctx context.Context, req provider.EstimateRequest) (provider.Estimate, error) {
	tok, err := c.tokenizer(ctx, req.Artifacts, req.BaseModel)
	if err != nil {
		return provider.Estimate{}, err
	}
	tokens, err := tinkertrain.EstimateTokens(req.Data, tok, c.renderer(req.BaseModel))
	if err != nil {
		return provider.Estimate{}, err
	}
	return cost.TinkerTraining(req.BaseModel, tokens, req.Epochs, req.Overrides), nil
}

func (c *tinkerConfig) renderer(baseModel string) string {
	if c.settings.Renderer != "" {
		return c.settings.Renderer
	}
	r, _ := tinkertrain.DefaultRenderer(baseModel)
	return r
}

// tokenizer loads a model's tokenizer: the configured file, or the hub's
// tokenizer.json for id, downloaded once into artifacts/cache/tokenizers.
func (c *tinkerConfig) tokenizer(ctx context.Context, artifacts, id string) (*tokenizer.Tokenizer, error) {
	path := c.tokenizerPath
	if path == "" {
		name, _, _ := strings.Cut(id, ":") // a context suffix is not part of the hub id
		var err error
		path, err = tokenizer.Fetch(ctx, c.kind.HTTPClient, c.hub, name, filepath.Join(artifacts, "cache", "tokenizers"))
		if err != nil {
			return nil, err // names the tokenizer and the address
		}
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("tokenizer of %s: %w", id, err)
	}
	tok, err := tokenizer.Load(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer of %s: %w", id, err)
	}
	return tok, nil
}

// samplingRenderer is the chat format a base model answers in. Qwen3's
// hybrid models are asked without thinking, so that the first answer token
// is the answer (the judge reads its distribution); its training tokens are
// the same either way.
func (c *tinkerConfig) samplingRenderer(baseModel string) string {
	r := c.renderer(baseModel)
	if r == chatrender.Qwen3 {
		return chatrender.Qwen3DisableThinking
	}
	return r
}

// Open implements provider.Config. The session starts on the first call
// that needs it, so status and cancel, which read records only, make no
// request; its heartbeat runs until Close.
func (c *tinkerConfig) Open(_ context.Context, env provider.Env) (*provider.Conn, error) {
	if c.apiKey == "" {
		return nil, fmt.Errorf("no API key: set TINKER_API_KEY (or api_key in the provider block)")
	}
	// The environment's URLs are checked here, not when decoding, so that
	// they never break a build that does not use Tinker.
	if err := openai.CheckBaseURL(c.baseURL); err != nil {
		return nil, fmt.Errorf("tinker: base URL (base_url or TINKER_BASE_URL) %w", err)
	}
	if err := openai.CheckBaseURL(c.hub); err != nil {
		return nil, fmt.Errorf("tinker: tokenizer hub (tokenizer_hub or HF_ENDPOINT) %w", err)
	}
	opts := c.kind.Client
	opts.APIKey, opts.BaseURL = c.apiKey, c.baseURL
	if opts.Outage == nil {
		policy := c.kind.Outage
		policy.Max = c.maxOutage
		// A client's injected clock keeps ruling its waits.
		if policy.Sleep == nil {
			policy.Sleep = opts.Sleep
		}
		if policy.Now == nil {
			policy.Now = opts.Now
		}
		opts.Outage = provider.NewOutage(env.Name, policy, env.Log)
	}
	if c.kind.HTTPClient != nil {
		opts.HTTPClient = c.kind.HTTPClient
	}
	client, err := tinker.New(opts)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(env.Artifacts, "tinker")
	s := &tinkerSession{client: client}
	trainerOpts := tinkertrain.Options{Provider: env.Name, Dir: dir, Settings: c.settings, Log: env.Log,
		Tokenizer: func(ctx context.Context, id string) (*tokenizer.Tokenizer, error) {
			return c.tokenizer(ctx, env.Artifacts, id)
		}}
	lim := provider.NewLimiter(c.concurrency)
	conn := &provider.Conn{
		Trainer: &tinkerTrainer{Trainer: tinkertrain.New(nil, trainerOpts), s: s, opts: trainerOpts},
		Sampler: provider.LimitSampler(&tinkerSampler{s: s, opts: tinkersample.Options{
			BaseModels: env.BaseModels,
			Tokenizer: func(ctx context.Context, base string) (*tokenizer.Tokenizer, string, error) {
				tok, err := c.tokenizer(ctx, env.Artifacts, base)
				return tok, c.samplingRenderer(base), err
			},
			BaseModelOf: func(_ context.Context, path string) (string, error) { return baseModelOf(dir, path) },
		}}, lim),
		Close: s.close,
	}
	return conn, nil
}

// tinkerSession starts one client session on first use and keeps it alive.
type tinkerSession struct {
	client *tinker.Client
	once   sync.Once
	sess   *tinker.Session
	err    error
	stop   context.CancelFunc
}

func (s *tinkerSession) get(ctx context.Context) (*tinker.Session, error) {
	s.once.Do(func() {
		s.sess, s.err = s.client.Start(ctx)
		if s.err != nil {
			s.err = fmt.Errorf("start a Tinker session: %w", s.err)
			return
		}
		hb, stop := context.WithCancel(context.Background())
		s.stop = stop
		go s.sess.Heartbeat(hb) // its failure shows as the session's Err on the next request
	})
	return s.sess, s.err
}

func (s *tinkerSession) close() error {
	if s.stop != nil {
		s.stop()
	}
	return nil
}

// tinkerTrainer trains through the shared session, started on the first
// training; records are read without one.
type tinkerTrainer struct {
	*tinkertrain.Trainer // records only (no session)
	s                    *tinkerSession
	opts                 tinkertrain.Options
	once                 sync.Once
	live                 *tinkertrain.Trainer
}

func (t *tinkerTrainer) Train(ctx context.Context, req provider.TrainRequest) (provider.Trained, error) {
	sess, err := t.s.get(ctx)
	if err != nil {
		return provider.Trained{}, err
	}
	t.once.Do(func() { t.live = tinkertrain.New(sess, t.opts) })
	return t.live.Train(ctx, req)
}

// tinkerSampler samples through the shared session.
type tinkerSampler struct {
	s    *tinkerSession
	opts tinkersample.Options
	once sync.Once
	live *tinkersample.Sampler
}

func (t *tinkerSampler) Chat(ctx context.Context, req provider.ChatRequest) (provider.ChatResponse, error) {
	sess, err := t.s.get(ctx)
	if err != nil {
		return provider.ChatResponse{}, err
	}
	t.once.Do(func() { t.live = tinkersample.New(sess, t.opts) })
	return t.live.Chat(ctx, req)
}

// baseModelOf finds the base model a sampler path was trained from, in the
// trainer's records.
func baseModelOf(dir, path string) (string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return "", err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var rec tinkertrain.Record
		if json.Unmarshal(b, &rec) == nil && rec.Model == path {
			return rec.BaseModel, nil
		}
	}
	return "", fmt.Errorf("model %s: no training of this experiment made it: %w", path, provider.ErrNotFound)
}

// EstimateSampling implements provider.SamplingPricing: each prompt
// rendered as the sampler sends it and counted with the real tokenizer, at
// the base model's prefill rate, and MaxTokens per sample at its sampling
// rate. A judge whose tokenizer splits numbers into digits may send up to
// tinkersample.DefaultMaxExtraRequests more prompts a judgement to read
// them; at most, they are counted too.
func (c *tinkerConfig) EstimateSampling(ctx context.Context, req provider.SamplingEstimate) (provider.Estimate, error) {
	tok, err := c.tokenizer(ctx, req.Artifacts, req.BaseModel)
	if err != nil {
		return provider.Estimate{}, err
	}
	r, err := chatrender.New(c.samplingRenderer(req.BaseModel), tok)
	if err != nil {
		return provider.Estimate{}, fmt.Errorf("price sampling on %s: %w", req.BaseModel, err)
	}
	requests := 1
	if req.Judge && !tinkersample.SingleTokenNumbers(tok) {
		requests += tinkersample.DefaultMaxExtraRequests
	}
	prompt := 0
	for _, msgs := range req.Prompts {
		cm := make([]chatrender.Message, len(msgs))
		for i, m := range msgs {
			cm[i] = chatrender.Message{Role: m.Role, Content: m.Content}
		}
		ids, err := r.GenerationPrompt(cm)
		if err != nil {
			return provider.Estimate{}, fmt.Errorf("price sampling on %s: %w", req.BaseModel, err)
		}
		prompt += (len(ids) + req.PromptExtra) * requests
	}
	sampled := len(req.Prompts) * max(req.N, 1) * req.MaxTokens
	est := provider.Estimate{Tokens: prompt + sampled}
	name, _, _ := strings.Cut(req.BaseModel, ":")
	if rates, ok := cost.TinkerSamplingPricePerMillion[name]; ok {
		est.USD = (float64(prompt)*rates.Prefill + float64(sampled)*rates.Sample) / 1e6
		est.Priced = true
	}
	return est, nil
}
