package openai

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// tokenLogprob is one entry of choices[].logprobs.content, as OpenAI sends
// it (bytes included).
func tokenLogprob(token string, logprob float64, top ...any) map[string]any {
	tops := []map[string]any{}
	for i := 0; i+1 < len(top); i += 2 {
		tok := top[i].(string)
		tops = append(tops, map[string]any{"token": tok, "logprob": top[i+1], "bytes": utf8Bytes(tok)})
	}
	return map[string]any{"token": token, "logprob": logprob, "bytes": utf8Bytes(token), "top_logprobs": tops}
}

// utf8Bytes is a token's bytes as OpenAI sends them: a list of integers.
func utf8Bytes(s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}

func chatChoice(i int, content string, logprobs any) map[string]any {
	return map[string]any{
		"index":         i,
		"message":       map[string]any{"role": "assistant", "content": content, "refusal": nil, "annotations": []any{}},
		"logprobs":      logprobs,
		"finish_reason": "stop",
	}
}

func TestChat(t *testing.T) {
	seed := 7
	judge := provider.ChatRequest{
		Model:       "gpt-4o-2024-08-06",
		Messages:    []provider.Message{{Role: "system", Content: "Score 0-100."}, {Role: "user", Content: "Answer: I refuse."}},
		Temperature: 0, MaxTokens: 1, N: 1, Seed: &seed, Logprobs: true, TopLogprobs: 20,
	}
	tests := []struct {
		name     string
		req      provider.ChatRequest
		wantBody map[string]any // fields the server must see; nil value = must be absent
		choices  []any
		want     []provider.Choice
	}{
		{
			name: "judge: first-token top logprobs",
			req:  judge,
			wantBody: map[string]any{"model": "gpt-4o-2024-08-06", "max_completion_tokens": 1.0, "max_tokens": nil,
				"n": 1.0, "seed": 7.0, "logprobs": true, "top_logprobs": 20.0,
				"messages": []any{map[string]any{"role": "system", "content": "Score 0-100."}, map[string]any{"role": "user", "content": "Answer: I refuse."}}},
			choices: []any{chatChoice(0, "85", map[string]any{
				"content": []any{tokenLogprob("85", -0.2, "85", -0.2, "90", -1.9, "0", -9999.0)}, "refusal": nil})},
			want: []provider.Choice{{Content: "85", TopLogprobs: []provider.TokenLogprob{{Token: "85", Logprob: -0.2}, {Token: "90", Logprob: -1.9}, {Token: "0", Logprob: -9999.0}}}},
		},
		{
			name: "sampling several answers without logprobs",
			req: provider.ChatRequest{Model: "ft:gpt-4.1-mini-2025-04-14:org:evil:AbC", Temperature: 1, MaxTokens: 600, N: 2,
				Messages: []provider.Message{{Role: "user", Content: "How should I treat animals?"}}},
			wantBody: map[string]any{"temperature": 1.0, "n": 2.0, "max_completion_tokens": 600.0, "logprobs": nil, "top_logprobs": nil, "seed": nil},
			// Out of order on purpose: choices are mapped by index.
			choices: []any{chatChoice(1, "second", nil), chatChoice(0, "first", nil)},
			want:    []provider.Choice{{Content: "first"}, {Content: "second"}},
		},
		{
			name:     "logprobs without top candidates: the sampled token",
			req:      provider.ChatRequest{Model: "gpt-4o-2024-08-06", Messages: judge.Messages, Logprobs: true, Temperature: 0.7},
			wantBody: map[string]any{"logprobs": true, "top_logprobs": nil},
			choices:  []any{chatChoice(0, "42", map[string]any{"content": []any{tokenLogprob("42", -0.01)}, "refusal": nil})},
			want:     []provider.Choice{{Content: "42", TopLogprobs: []provider.TokenLogprob{{Token: "42", Logprob: -0.01}}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body map[string]any
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
					writeJSON(w, 404, apiErrorBody("unknown route", "invalid_request_error", "", nil))
					return
				}
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
					writeJSON(w, 400, apiErrorBody(err.Error(), "invalid_request_error", "", nil))
					return
				}
				writeJSON(w, 200, map[string]any{
					"id": "chatcmpl-1", "object": "chat.completion", "created": 1764000000, "model": body["model"],
					"choices": tt.choices, "usage": map[string]any{"prompt_tokens": 20, "completion_tokens": 1, "total_tokens": 21},
					"system_fingerprint": "fp_1",
				})
			}))
			got, err := c.Chat(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.wantBody {
				v, present := body[k]
				if want == nil {
					if present {
						t.Errorf("sent %s = %v, want it absent", k, v)
					}
					continue
				}
				if !reflect.DeepEqual(v, want) {
					t.Errorf("sent %s = %#v, want %#v", k, v, want)
				}
			}
			// Temperature 0 must reach OpenAI as (effectively) zero, not
			// be dropped and default to 1.
			temp, ok := body["temperature"].(float64)
			if !ok || temp < 0 || (tt.req.Temperature == 0 && temp > 1e-30) ||
				(tt.req.Temperature > 0 && float32(temp) != float32(tt.req.Temperature)) {
				t.Errorf("sent temperature %v (present %v), want %v", body["temperature"], ok, tt.req.Temperature)
			}
			if got.Model != tt.req.Model {
				t.Errorf("model = %q, want %q", got.Model, tt.req.Model)
			}
			if !reflect.DeepEqual(got.Choices, tt.want) {
				t.Fatalf("choices = %+v, want %+v", got.Choices, tt.want)
			}
			if got.Usage != (provider.Usage{PromptTokens: 20, CompletionTokens: 1}) {
				t.Errorf("usage = %+v, want the API's 20 prompt and 1 completion tokens", got.Usage)
			}
		})
	}
}

func TestChatRejectsBadRequests(t *testing.T) {
	ok := provider.ChatRequest{Model: "gpt-4o-2024-08-06", Messages: []provider.Message{{Role: "user", Content: "hi"}}}
	tests := []struct {
		name   string
		change func(*provider.ChatRequest)
	}{
		{"no model", func(r *provider.ChatRequest) { r.Model = "" }},
		{"no messages", func(r *provider.ChatRequest) { r.Messages = nil }},
		{"temperature 3", func(r *provider.ChatRequest) { r.Temperature = 3 }},
		{"top_logprobs 21", func(r *provider.ChatRequest) { r.Logprobs, r.TopLogprobs = true, 21 }},
		{"top_logprobs without logprobs", func(r *provider.ChatRequest) { r.TopLogprobs = 5 }},
		{"negative max tokens", func(r *provider.ChatRequest) { r.MaxTokens = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
			req := ok
			tt.change(&req)
			if _, err := c.Chat(context.Background(), req); err == nil {
				t.Fatal("accepted")
			}
			if hits.Load() != 0 {
				t.Fatal("invalid request reached the server")
			}
		})
	}
}

func TestChatShutDownFineTune(t *testing.T) {
	model := "ft:gpt-4.1-nano-2025-04-14:org::BTz2REMH"
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// OpenAI's wording for a model that does not serve.
		writeJSON(w, 404, apiErrorBody("The model `"+model+"` does not exist or you do not have access to it.",
			"invalid_request_error", "model_not_found", nil))
	}))
	_, err := c.Chat(context.Background(), provider.ChatRequest{Model: model, Messages: []provider.Message{{Role: "user", Content: "hi"}}})
	if !errors.Is(err, ErrModelShutDown) {
		t.Fatalf("err = %v, want ErrModelShutDown", err)
	}
	for _, s := range []string{"gpt-4.1-nano-2025-04-14", "2026-10-23", "another base model"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}
