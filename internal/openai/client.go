// Package openai implements provider.JobAPI and provider.Sampler over
// OpenAI's API.
//
// Files and chat go through github.com/sashabaranov/go-openai. That SDK has
// no fine-tuning job metadata, error, method or seed, no metadata filter on
// listing, and no purpose filter or paging on file listing, so a small typed
// client in this package makes those calls. Both send through one transport
// (same base URL, key, organisation/project headers and *http.Client) that
// retries transient failures and returns error answers as *APIError.
package openai

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	goopenai "github.com/sashabaranov/go-openai"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// Config configures a Client. Zero values take the defaults shown.
type Config struct {
	APIKey       string
	BaseURL      string // default "https://api.openai.com/v1"
	Organization string
	Project      string
	HTTPClient   *http.Client // default: 5-minute timeout per attempt, MaxConns connections kept open
	// MaxConns is how many connections to keep open for reuse: the caller's
	// concurrency, so that concurrent calls do not each pay a new TCP and TLS
	// handshake. Default 32.
	MaxConns int
	// MaxRetries caps how many times a failed request is sent again;
	// 0 (the default) leaves it to the outage policy alone, negative for
	// none.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries; defaults 500ms and 30s. A server's Retry-After overrides them.
	MinBackoff, MaxBackoff time.Duration
	// MaxOutage is how long the provider may fail without a break before
	// a call gives up with a *provider.OutageError; default
	// provider.DefaultMaxOutage.
	MaxOutage time.Duration
	// Outage, if set, is the provider's shared outage tracker (so its job
	// calls and chat calls see one outage); it overrides MinBackoff,
	// MaxBackoff and MaxOutage. Default: one of its own, named "openai".
	Outage *provider.Outage
}

const (
	defaultBaseURL    = "https://api.openai.com/v1"
	defaultMinBackoff = 500 * time.Millisecond
	defaultMaxBackoff = 30 * time.Second
	// A long chat completion or a large upload can take minutes; without a
	// bound a silently dead connection would hang the build.
	defaultTimeout = 5 * time.Minute
)

// Client is an OpenAI provider. It is safe for concurrent use.
type Client struct {
	baseURL string
	tr      *transport
	sdk     *goopenai.Client

	uploadMu sync.Mutex
	uploads  map[string]*uploadSlot // by content sha256
}

// uploadSlot serialises uploads of the same bytes and remembers the result.
// Its lock is a channel so that waiting for it honours the context.
type uploadSlot struct {
	lock chan struct{}
	file *provider.File
}

var (
	_ provider.JobAPI      = (*Client)(nil)
	_ provider.Sampler     = (*Client)(nil)
	_ provider.EventLister = (*Client)(nil)
)

// Format prints the client without its credentials, whatever the verb:
// fmt would otherwise walk into go-openai's config and print the key.
func (c *Client) Format(f fmt.State, verb rune) {
	if c == nil {
		fmt.Fprint(f, "<nil>")
		return
	}
	base := c.baseURL
	if u, err := url.Parse(base); err == nil {
		base = u.Redacted()
	}
	fmt.Fprintf(f, "openai.Client{%s}", base)
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.APIKey) == "" {
		return nil, errors.New("openai: no API key: set OPENAI_API_KEY")
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = defaultBaseURL
	}
	if err := CheckBaseURL(base); err != nil {
		return nil, fmt.Errorf("openai: base URL %w", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		conns := cfg.MaxConns
		if conns <= 0 {
			conns = 32
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = max(t.MaxIdleConns, conns)
		t.MaxIdleConnsPerHost = conns
		hc = &http.Client{Timeout: defaultTimeout, Transport: t}
	}
	retries := cfg.MaxRetries
	if retries < 0 {
		// No retries: the cap is the first attempt.
		retries = -1
	}
	outage := cfg.Outage
	if outage == nil {
		outage = provider.NewOutage("openai", provider.OutagePolicy{
			Max: cfg.MaxOutage, MinBackoff: cfg.MinBackoff, MaxBackoff: cfg.MaxBackoff}, nil)
	}
	tr := &transport{
		hc:           hc,
		key:          cfg.APIKey,
		organization: cfg.Organization,
		project:      cfg.Project,
		maxRetries:   retries,
		outage:       outage,
	}
	sdkCfg := goopenai.DefaultConfig(cfg.APIKey)
	sdkCfg.BaseURL = base
	sdkCfg.OrgID = cfg.Organization
	sdkCfg.HTTPClient = tr
	return &Client{
		baseURL: base,
		tr:      tr,
		sdk:     goopenai.NewClientWithConfig(sdkCfg),
		uploads: map[string]*uploadSlot{},
	}, nil
}

// CheckBaseURL reports why raw cannot be a base URL: not http(s), no host,
// or a query, fragment or user:password, which every path appended to it
// would break and which would carry a secret into error messages. The error
// never repeats the URL.
func CheckBaseURL(raw string) error {
	u, err := url.Parse(strings.TrimSpace(raw))
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("is not an http(s) URL with a host")
	case u.User != nil:
		return errors.New("must not hold a user name or password (user:password@); give the key as api_key")
	case u.RawQuery != "" || u.ForceQuery:
		return errors.New("must not hold a query string (?...); give the key as api_key")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return errors.New("must not hold a fragment (#...)")
	}
	return nil
}

// UploadFile uploads data for fine-tuning, or returns a file already
// uploaded with the same bytes. The uploaded name embeds the content's
// sha256 ("pvbuild-<sha256[:16]>.jsonl"), which is what identifies it; name
// is not sent.
func (c *Client) UploadFile(ctx context.Context, name string, data []byte) (provider.File, error) {
	if len(data) == 0 {
		return provider.File{}, fmt.Errorf("openai: upload %s: empty file", name)
	}
	sum := sha256.Sum256(data)
	hash := hex.EncodeToString(sum[:])
	filename := "pvbuild-" + hash[:16] + ".jsonl"

	// Builds upload the same training set for several seeds at once; one
	// upload should serve them all.
	c.uploadMu.Lock()
	slot := c.uploads[hash]
	if slot == nil {
		slot = &uploadSlot{lock: make(chan struct{}, 1)}
		c.uploads[hash] = slot
	}
	c.uploadMu.Unlock()
	select {
	case slot.lock <- struct{}{}:
		defer func() { <-slot.lock }()
	case <-ctx.Done():
		return provider.File{}, fmt.Errorf("openai: upload %s: %w", name, ctx.Err())
	}
	if slot.file != nil {
		return *slot.file, nil
	}

	existing, err := c.findFile(ctx, filename, int64(len(data)))
	if err != nil {
		return provider.File{}, fmt.Errorf("openai: upload %s: look for an earlier upload: %w", name, err)
	}
	if existing != nil {
		slot.file = existing
		return *existing, nil
	}
	// A retried upload can leave a duplicate file behind; harmless, as the
	// next run reuses the newest.
	f, err := c.sdk.CreateFileBytes(ctx, goopenai.FileBytesRequest{
		Name:    filename,
		Bytes:   data,
		Purpose: goopenai.PurposeFineTune,
	})
	if err != nil {
		return provider.File{}, fmt.Errorf("openai: upload %s as %s: %w", name, filename, err)
	}
	file := provider.File{ID: f.ID, Name: f.FileName, Bytes: int64(f.Bytes)}
	slot.file = &file
	return file, nil
}

// Chat runs one chat completion. Zero MaxTokens and N leave OpenAI's
// defaults; Temperature is always sent, 0 included.
func (c *Client) Chat(ctx context.Context, req provider.ChatRequest) (provider.ChatResponse, error) {
	if err := validateChat(req); err != nil {
		return provider.ChatResponse{}, fmt.Errorf("openai: chat completion: %w", err)
	}
	msgs := make([]goopenai.ChatCompletionMessage, len(req.Messages))
	for i, m := range req.Messages {
		msgs[i] = goopenai.ChatCompletionMessage{Role: m.Role, Content: m.Content}
	}
	temp := float32(req.Temperature)
	if temp == 0 {
		// go-openai drops a zero temperature (omitempty), which OpenAI
		// reads as 1; the smallest positive float is greedy in effect.
		temp = math.SmallestNonzeroFloat32
	}
	creq := goopenai.ChatCompletionRequest{
		Model:    req.Model,
		Messages: msgs,
		// max_tokens is deprecated and refused by reasoning models;
		// max_completion_tokens is accepted by all current chat models.
		MaxCompletionTokens: req.MaxTokens,
		Temperature:         temp,
		N:                   req.N,
		Seed:                req.Seed,
		LogProbs:            req.Logprobs,
		TopLogProbs:         req.TopLogprobs,
	}
	resp, err := c.sdk.CreateChatCompletion(ctx, creq)
	if err != nil {
		classifyChatRefusal(err, req.Model)
		return provider.ChatResponse{}, fmt.Errorf("openai: chat completion with %s: %w", req.Model, err)
	}
	choices := resp.Choices
	sort.SliceStable(choices, func(i, j int) bool { return choices[i].Index < choices[j].Index })
	out := provider.ChatResponse{Model: resp.Model, Choices: make([]provider.Choice, len(choices))}
	for i, ch := range choices {
		out.Choices[i] = provider.Choice{Content: ch.Message.Content, TopLogprobs: firstTokenLogprobs(ch.LogProbs)}
	}
	if u := resp.Usage; u.PromptTokens > 0 || u.CompletionTokens > 0 {
		out.Usage = provider.Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}
	}
	return out, nil
}

// firstTokenLogprobs returns the candidates for the first generated token;
// with logprobs on but top_logprobs 0 that is just the sampled token.
func firstTokenLogprobs(lp *goopenai.LogProbs) []provider.TokenLogprob {
	if lp == nil || len(lp.Content) == 0 {
		return nil
	}
	first := lp.Content[0]
	if len(first.TopLogProbs) == 0 {
		return []provider.TokenLogprob{{Token: first.Token, Logprob: first.LogProb}}
	}
	out := make([]provider.TokenLogprob, len(first.TopLogProbs))
	for i, t := range first.TopLogProbs {
		out[i] = provider.TokenLogprob{Token: t.Token, Logprob: t.LogProb}
	}
	return out
}

// validateChat rejects what OpenAI would refuse, before spending a request.
func validateChat(req provider.ChatRequest) error {
	switch {
	case req.Model == "":
		return errors.New("no model")
	case len(req.Messages) == 0:
		return errors.New("no messages")
	case req.Temperature < 0 || req.Temperature > 2 || math.IsNaN(req.Temperature):
		return fmt.Errorf("temperature %v outside [0, 2]", req.Temperature)
	case req.MaxTokens < 0:
		return fmt.Errorf("max tokens %d is negative", req.MaxTokens)
	case req.N < 0 || req.N > 128:
		return fmt.Errorf("n %d outside [1, 128]", req.N)
	case req.TopLogprobs < 0 || req.TopLogprobs > 20:
		return fmt.Errorf("top_logprobs %d outside [0, 20]", req.TopLogprobs)
	case req.TopLogprobs > 0 && !req.Logprobs:
		return errors.New("top_logprobs needs logprobs")
	}
	return nil
}
