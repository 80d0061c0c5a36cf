package provider

import "context"

// Sampler answers chat requests: the trained models answer the evaluation
// questions through one, and the judge scores the answers through one.
type Sampler interface {
	// Chat returns req.N choices (at least one). An unknown model is an
	// error wrapping ErrNotFound.
	Chat(ctx context.Context, req ChatRequest) (ChatResponse, error)
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
	// Weight is OpenAI's per-message training weight of an assistant
	// message in a training file: 0 = context only, 1 (or nil) = learnt.
	// Chat requests leave it nil.
	Weight *int `json:"weight,omitempty"`
}

// ChatRequest is a chat completion request. Seed is optional.
type ChatRequest struct {
	Model       string
	Messages    []Message
	Temperature float64
	MaxTokens   int
	N           int
	Seed        *int
	Logprobs    bool
	TopLogprobs int
}

// TokenLogprob is one candidate token and its log probability.
type TokenLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
}

// Choice is one completion. TopLogprobs holds, when requested, the top
// candidates for the first generated token.
type Choice struct {
	Content     string
	TopLogprobs []TokenLogprob
}

// ChatResponse holds N choices. Usage is the provider's count of the
// call's tokens, zero when the provider gives none.
type ChatResponse struct {
	Model   string
	Choices []Choice
	Usage   Usage `json:",omitzero"`
}

// Usage is a chat call's token count as the provider reports it: the
// prompt's tokens and the tokens of all the call's choices.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}
