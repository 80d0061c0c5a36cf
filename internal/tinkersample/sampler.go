package tinkersample

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// DefaultMaxExtraRequests bounds the number expansion of one judgement.
const DefaultMaxExtraRequests = 12

// MinExpandProb is the least probability a digit prefix needs to be worth
// one more request.
const MinExpandProb = 1e-3

// Options configure a Sampler. Tokenizer is required.
type Options struct {
	// Tokenizer returns a base model's tokenizer and the name of its
	// cookbook renderer (chatrender.Qwen3DisableThinking, …). The provider
	// kind supplies it; it is called once per base model.
	Tokenizer func(ctx context.Context, baseModel string) (*tokenizer.Tokenizer, string, error)
	// BaseModels are the model names sampled as base models (the judge).
	// Every other name must be a tinker:// sampler path.
	BaseModels []string
	// BaseModelOf names the base model a sampler path was trained from,
	// which decides its tokenizer and renderer. When nil, Tokenizer is
	// asked with the path itself.
	BaseModelOf func(ctx context.Context, modelPath string) (string, error)
	// DisableNumberExpansion reads judge calls from the first token only,
	// even for tokenizers that split numbers into digits.
	DisableNumberExpansion bool
	// MaxExtraRequests bounds the extra requests of one judgement
	// (default DefaultMaxExtraRequests).
	MaxExtraRequests int
	Log              *slog.Logger // default: discard
}

// Sampler is a provider.Sampler over one Tinker session. It is safe for
// concurrent use.
type Sampler struct {
	session *tinker.Session
	opts    Options
	base    map[string]bool

	mu     sync.Mutex
	models map[string]*flight[*model]     // by model name
	toks   map[string]*flight[*tokenInfo] // by base model (or path)
}

var _ provider.Sampler = (*Sampler)(nil)

// New returns a Sampler that samples through session; it sends nothing yet.
func New(session *tinker.Session, opts Options) *Sampler {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxExtraRequests <= 0 {
		opts.MaxExtraRequests = DefaultMaxExtraRequests
	}
	s := &Sampler{session: session, opts: opts, base: map[string]bool{},
		models: map[string]*flight[*model]{}, toks: map[string]*flight[*tokenInfo]{}}
	for _, b := range opts.BaseModels {
		s.base[b] = true
	}
	return s
}

// model is one sampling session and how to talk to it.
type model struct {
	name string
	sc   *tinker.SamplingClient
	tok  *tokenInfo
}

// tokenInfo is what a base model's tokenizer decides.
type tokenInfo struct {
	tok         *tokenizer.Tokenizer
	r           *chatrender.Renderer
	stop        []int32
	placeholder int32
	// splitsNumbers: some integer 0..100 takes more than one token.
	splitsNumbers bool
}

// SingleTokenNumbers reports whether every integer 0..100, written without a
// leading space, is one token of tok, so that the first answer token of a
// judge is its whole number.
func SingleTokenNumbers(tok *tokenizer.Tokenizer) bool {
	for n := 0; n <= 100; n++ {
		if len(tok.Encode(strconv.Itoa(n))) != 1 {
			return false
		}
	}
	return true
}

// flight is a value made once for every caller that asks while it is made.
type flight[T any] struct {
	done chan struct{}
	val  T
	err  error
}

// once returns m[key], making it with mk if no one has or is. A failure is
// not kept, so the next call tries again; a caller whose own context is
// alive retries when the maker's context ended.
func once[T any](ctx context.Context, mu *sync.Mutex, m map[string]*flight[T], key string, mk func(context.Context) (T, error)) (T, error) {
	for {
		mu.Lock()
		f, ok := m[key]
		if !ok {
			f = &flight[T]{done: make(chan struct{})}
			m[key] = f
			mu.Unlock()
			f.val, f.err = mk(ctx)
			if f.err != nil {
				mu.Lock()
				delete(m, key)
				mu.Unlock()
			}
			close(f.done)
			return f.val, f.err
		}
		mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
		if f.err != nil && ctx.Err() == nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
			continue
		}
		return f.val, f.err
	}
}

// forget drops a model whose sampling session the server no longer knows,
// so that the next call opens a new one.
func (s *Sampler) forget(m *model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f, ok := s.models[m.name]
	if !ok {
		return
	}
	select {
	case <-f.done: // f.val is written before done closes
	default:
		return // a new session is already being opened
	}
	if f.val == m {
		delete(s.models, m.name)
	}
}

func (s *Sampler) model(ctx context.Context, name string) (*model, error) {
	return once(ctx, &s.mu, s.models, name, func(ctx context.Context) (*model, error) {
		var path, base, tokKey string
		switch {
		case s.base[name]:
			base, tokKey = name, name
		case strings.HasPrefix(name, "tinker://"):
			path, tokKey = name, name
		default:
			return nil, fmt.Errorf("tinker model %q: %w: neither a tinker:// sampler path nor a configured base model", name, provider.ErrNotFound)
		}
		sc, err := s.session.CreateSamplingSession(ctx, path, base)
		if err != nil {
			return nil, modelError(name, err, true)
		}
		if path != "" && s.opts.BaseModelOf != nil {
			if tokKey, err = s.opts.BaseModelOf(ctx, path); err != nil {
				return nil, fmt.Errorf("tinker model %q: its base model: %w", name, err)
			}
		}
		ti, err := s.tokenInfo(ctx, tokKey)
		if err != nil {
			return nil, fmt.Errorf("tinker model %q: %w", name, err)
		}
		s.opts.Log.Info("tinker: sampling session opened", "model", name, "sampler", sc.ID,
			"renderer", ti.r.Name(), "number_expansion", ti.splitsNumbers && !s.opts.DisableNumberExpansion)
		return &model{name: name, sc: sc, tok: ti}, nil
	})
}

func (s *Sampler) tokenInfo(ctx context.Context, baseModel string) (*tokenInfo, error) {
	return once(ctx, &s.mu, s.toks, baseModel, func(ctx context.Context) (*tokenInfo, error) {
		if s.opts.Tokenizer == nil {
			return nil, errors.New("tinkersample: no Tokenizer option")
		}
		tok, rname, err := s.opts.Tokenizer(ctx, baseModel)
		if err != nil {
			return nil, fmt.Errorf("tokenizer of %s: %w", baseModel, err)
		}
		if tok == nil {
			return nil, fmt.Errorf("tokenizer of %s: none given", baseModel)
		}
		r, err := chatrender.New(rname, tok)
		if err != nil {
			return nil, fmt.Errorf("tokenizer of %s: %w", baseModel, err)
		}
		ti := &tokenInfo{tok: tok, r: r, splitsNumbers: !SingleTokenNumbers(tok)}
		for _, id := range r.StopTokens() {
			ti.stop = append(ti.stop, int32(id))
		}
		// Any id will do: its row is read, never its value.
		ti.placeholder = ti.stop[0]
		return ti, nil
	})
}

// modelError gives a Tinker error the provider's meaning. Only opening the
// sampling session may say that the model is unknown: a 404 while sampling
// means the server lost the session, not the model.
func modelError(name string, err error, opening bool) error {
	var ae *tinker.APIError
	var rf *tinker.RequestFailedError
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("tinker model %q: %w", name, err)
	case opening && errors.Is(err, tinker.ErrNotFound):
		return fmt.Errorf("tinker model %q: %w (%w)", name, provider.ErrNotFound, err)
	case errors.As(err, &rf) && rf.Category == "user":
		return fmt.Errorf("tinker model %q: %w (%w)", name, provider.ErrInvalid, err)
	case errors.Is(err, tinker.ErrBilling):
		return fmt.Errorf("tinker model %q: %w (%w)", name, provider.ErrRefused, err)
	case errors.As(err, &ae):
		switch ae.Status {
		case http.StatusBadRequest, http.StatusUnprocessableEntity:
			return fmt.Errorf("tinker model %q: %w (%w)", name, provider.ErrInvalid, err)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("tinker model %q: %w (%w)", name, provider.ErrRefused, err)
		}
	}
	return fmt.Errorf("tinker model %q: %w", name, err)
}

func invalid(param, format string, args ...any) error {
	return &provider.ParamError{Param: param, Err: fmt.Errorf("%w: "+format, append([]any{provider.ErrInvalid}, args...)...)}
}

// isJudgeCall: one token with its top candidates, the judge's request.
func isJudgeCall(req provider.ChatRequest) bool {
	return req.Logprobs && req.TopLogprobs > 0 && req.MaxTokens == 1
}

func check(req provider.ChatRequest) error {
	switch {
	case req.Model == "":
		return invalid("model", "no model")
	case len(req.Messages) == 0:
		return invalid("messages", "no messages")
	case req.N < 0:
		return invalid("n", "n %d < 0", req.N)
	case req.MaxTokens < 0:
		return invalid("max_tokens", "max_tokens %d < 0", req.MaxTokens)
	case req.Temperature < 0:
		return invalid("temperature", "temperature %g < 0", req.Temperature)
	case req.TopLogprobs < 0:
		return invalid("top_logprobs", "top_logprobs %d < 0", req.TopLogprobs)
	case req.TopLogprobs > 0 && !isJudgeCall(req):
		// Native sampling has top-k only for prompt tokens, which serves
		// the first answer token and nothing later.
		return invalid("top_logprobs", "top_logprobs need logprobs and max_tokens 1 on Tinker native sampling")
	case isJudgeCall(req) && req.N > 1:
		return invalid("n", "a judge call (max_tokens 1 with top_logprobs) answers one choice, not %d", req.N)
	}
	return nil
}

// Chat answers req: N sampled answers, or for a judge call the first answer
// token's top candidates (see the package doc).
func (s *Sampler) Chat(ctx context.Context, req provider.ChatRequest) (provider.ChatResponse, error) {
	if err := check(req); err != nil {
		return provider.ChatResponse{}, err
	}
	m, err := s.model(ctx, req.Model)
	if err != nil {
		return provider.ChatResponse{}, err
	}
	msgs := make([]chatrender.Message, len(req.Messages))
	for i, msg := range req.Messages {
		msgs[i] = chatrender.Message{Role: msg.Role, Content: msg.Content}
	}
	ids, err := m.tok.r.GenerationPrompt(msgs)
	if err != nil {
		return provider.ChatResponse{}, invalid("messages", "%v", err)
	}
	prompt := make([]int32, len(ids))
	for i, id := range ids {
		prompt[i] = int32(id)
	}
	p := tinker.DefaultSamplingParams()
	p.Temperature = req.Temperature
	if req.Seed != nil {
		seed := int64(*req.Seed)
		p.Seed = &seed
	}
	var choices []provider.Choice
	if isJudgeCall(req) {
		choices, err = s.judge(ctx, m, prompt, req.TopLogprobs, p)
	} else {
		choices, err = s.answer(ctx, m, prompt, max(req.N, 1), req.MaxTokens, p)
	}
	if err != nil {
		return provider.ChatResponse{}, err
	}
	return provider.ChatResponse{Model: req.Model, Choices: choices}, nil
}

// sample is one request, with errors given the provider's meaning.
func (s *Sampler) sample(ctx context.Context, m *model, prompt []int32, p tinker.SamplingParams) (*tinker.SampleResult, error) {
	res, err := m.sc.Sample(ctx, prompt, p)
	if err != nil {
		if errors.Is(err, tinker.ErrNotFound) {
			s.forget(m)
		}
		return nil, modelError(m.name, err, false)
	}
	return res, nil
}

func (s *Sampler) answer(ctx context.Context, m *model, prompt []int32, n, maxTokens int, p tinker.SamplingParams) ([]provider.Choice, error) {
	p.NumSamples, p.MaxTokens, p.StopTokens = n, maxTokens, m.tok.stop
	res, err := s.sample(ctx, m, prompt, p)
	if err != nil {
		return nil, err
	}
	if len(res.Sequences) < n {
		return nil, fmt.Errorf("tinker model %q: asked for %d samples, the server sent %d", m.name, n, len(res.Sequences))
	}
	choices := make([]provider.Choice, n)
	for i, seq := range res.Sequences[:n] {
		toks := seq.Tokens
		if k := len(toks); k > 0 && m.tok.isStop(toks[k-1]) {
			toks = toks[:k-1]
		}
		ids := make([]int, len(toks))
		for j, t := range toks {
			ids[j] = int(t)
		}
		choices[i] = provider.Choice{Content: m.tok.tok.Decode(ids)}
	}
	return choices, nil
}

func (ti *tokenInfo) isStop(id int32) bool {
	for _, s := range ti.stop {
		if s == id {
			return true
		}
	}
	return false
}
