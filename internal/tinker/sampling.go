package tinker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
)

// SampleResult is the decoded SampleResponse.
type SampleResult = wire.SampleResult

// SamplingClient samples from one sampling session (a base model or a
// tinker://…/sampler_weights/… checkpoint).
type SamplingClient struct {
	c  *Client
	ID string // sampling_session_id

	mu  sync.Mutex
	seq int // next seq_id; sampling counts from 0
}

// CreateSamplingSession opens a sampling session on modelPath (a
// tinker://<run>/sampler_weights/<name> path) or, when modelPath is empty,
// on baseModel (POST /api/v1/create_sampling_session).
func (s *Session) CreateSamplingSession(ctx context.Context, modelPath, baseModel string) (*SamplingClient, error) {
	const route = "/api/v1/create_sampling_session"
	req := map[string]any{"session_id": s.ID, "type": "create_sampling_session"}
	switch {
	case modelPath != "":
		if !strings.HasPrefix(modelPath, "tinker://") {
			return nil, fmt.Errorf("tinker %s: model path %q must start with tinker://", route, modelPath)
		}
		req["model_path"] = modelPath
	case baseModel != "":
		req["base_model"] = baseModel
	default:
		return nil, fmt.Errorf("tinker %s: need a model path or a base model", route)
	}
	req["sampling_session_seq_id"] = s.nextSamplerSeq()
	var out struct {
		ID string `json:"sampling_session_id"`
	}
	if err := s.c.postJSON(ctx, route, req, &out, reqInfo{modelID: modelPath + baseModel}); err != nil {
		return nil, err
	}
	if out.ID == "" {
		return nil, fmt.Errorf("tinker %s: answer has no sampling_session_id", route)
	}
	return &SamplingClient{c: s.c, ID: out.ID}, nil
}

// SamplingParams are the native sampler's settings. Start from
// DefaultSamplingParams: the zero Temperature means greedy.
type SamplingParams struct {
	NumSamples  int     // default 1
	MaxTokens   int     // 0: server default
	Temperature float64 // SDK default 1.0
	TopK        int     // -1 or 0: no limit
	TopP        float64 // 0 is sent as 1.0 (no nucleus cut)
	Seed        *int64
	// Stop sequences: strings or token ids (not both).
	Stop       []string
	StopTokens []int32
	// PromptLogprobs asks for one logprob per prompt token (NaN at 0).
	PromptLogprobs bool
	// TopkPromptLogprobs asks for the k most likely tokens per prompt
	// position.
	TopkPromptLogprobs int
}

// DefaultSamplingParams are the SDK defaults.
func DefaultSamplingParams() SamplingParams {
	return SamplingParams{NumSamples: 1, Temperature: 1, TopK: -1, TopP: 1}
}

func (p SamplingParams) body(sessionID string, seq int, prompt []int32) (map[string]any, error) {
	if len(p.Stop) > 0 && len(p.StopTokens) > 0 {
		return nil, errors.New("stop strings and stop tokens are exclusive")
	}
	if p.TopkPromptLogprobs < 0 {
		return nil, fmt.Errorf("topk_prompt_logprobs %d < 0", p.TopkPromptLogprobs)
	}
	n := p.NumSamples
	if n <= 0 {
		n = 1
	}
	sp := map[string]any{"temperature": p.Temperature, "top_k": p.TopK, "top_p": p.TopP}
	if p.TopK == 0 {
		sp["top_k"] = -1
	}
	if p.TopP == 0 {
		sp["top_p"] = 1.0
	}
	if p.MaxTokens > 0 {
		sp["max_tokens"] = p.MaxTokens
	}
	if p.Seed != nil {
		sp["seed"] = *p.Seed
	}
	if len(p.Stop) > 0 {
		sp["stop"] = p.Stop
	} else if len(p.StopTokens) > 0 {
		sp["stop"] = p.StopTokens
	}
	tokens := prompt
	if tokens == nil {
		tokens = []int32{}
	}
	return map[string]any{
		"num_samples":          n,
		"prompt":               map[string]any{"chunks": []any{map[string]any{"tokens": tokens, "type": "encoded_text"}}},
		"sampling_params":      sp,
		"sampling_session_id":  sessionID,
		"seq_id":               seq,
		"prompt_logprobs":      p.PromptLogprobs,
		"topk_prompt_logprobs": p.TopkPromptLogprobs,
		"type":                 "sample",
	}, nil
}

func (s *SamplingClient) nextSeq() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.seq
	s.seq++
	return n
}

// Sample generates continuations of prompt (POST /api/v1/asample, result in
// protobuf). 429 is the server's normal backpressure: the SDK waits 1 s
// (5 s for prompts estimated above 128 KiB) and resends without limit; we
// wait it out as any 429, under the provider's outage policy (Retry-After
// honoured), and give up with provider.ErrUnreachable past its maximum,
// as max_outage says. A 410 on the future
// resends the request with a fresh seq_id, as the SDK's retry does.
func (s *SamplingClient) Sample(ctx context.Context, prompt []int32, p SamplingParams) (*SampleResult, error) {
	const route = "/api/v1/asample"
	if _, err := p.body(s.ID, 0, prompt); err != nil {
		return nil, fmt.Errorf("tinker %s: %w", route, err)
	}
	submit := func(ctx context.Context) (string, error) {
		body, _ := p.body(s.ID, s.nextSeq(), prompt)
		raw, err := jsonBody(body)
		if err != nil {
			return "", err
		}
		// do waits backpressure (429) out as the outage policy says; past
		// max_outage it gives up with provider.ErrUnreachable.
		r, _, err := s.c.do(ctx, http.MethodPost, route, "application/json", raw,
			reqInfo{modelID: s.ID, headers: map[string]string{"X-Tinker-Sampling-Backpressure": "1"}})
		if err != nil {
			return "", err
		}
		fut, err := decodeJSON[untypedFuture](r.body)
		if err != nil || fut.RequestID == "" {
			return "", fmt.Errorf("tinker %s (sampler %s): answer has no request_id", route, s.ID)
		}
		return fut.RequestID, nil
	}
	f, err := newFuture(ctx, s.c, route, s.ID, "Sample", true, submit, wire.DecodeSampleResponse)
	if err != nil {
		return nil, err
	}
	return f.Wait(ctx)
}
