package tinkerserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// oaiError answers in OpenAI's error envelope, which OpenAI's clients
// parse on this endpoint.
func oaiError(w http.ResponseWriter, status int, typ, code, format string, args ...any) {
	var c any
	if code != "" {
		c = code
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"message": fmt.Sprintf(format, args...), "type": typ, "param": nil, "code": c}})
}

type oaiRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Temperature         *float64        `json:"temperature"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	N                   *int            `json:"n"`
	Seed                json.RawMessage `json:"seed"`
	Logprobs            bool            `json:"logprobs"`
	TopLogprobs         *int            `json:"top_logprobs"`
	Stream              bool            `json:"stream"`
}

// oaiText reads message content: a string or a list of text parts.
func oaiText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content must be a string or a list of text parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part type %q is not supported", p.Type)
		}
		sb.WriteString(p.Text)
	}
	return sb.String(), nil
}

// openAIChat is POST /oai/api/v1/chat/completions: a base model, a
// sampler path, or "<base>;<path>" as the model.
func (s *Server) openAIChat(w http.ResponseWriter, r *http.Request) {
	var body oaiRequest
	raw, err := readBody(w, r, maxJSONBytes)
	if err == nil {
		err = json.Unmarshal(raw, &body)
	}
	if err != nil {
		oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "We could not parse the JSON body of your request: %v", err)
		return
	}
	if body.Model == "" || len(body.Messages) == 0 {
		oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "model and messages are required")
		return
	}
	if body.Stream {
		oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "streaming is not supported here; send stream false")
		return
	}
	tg, herr := s.resolveTarget(body.Model, "")
	if herr != nil {
		code := ""
		if herr.status == http.StatusNotFound {
			code = "model_not_found"
		}
		oaiError(w, herr.status, "invalid_request_error", code, "%s", herr.msg)
		return
	}
	req := provider.ChatRequest{Temperature: 1, N: 1}
	for i, m := range body.Messages {
		text, err := oaiText(m.Content)
		if err != nil {
			oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "messages[%d]: %v", i, err)
			return
		}
		req.Messages = append(req.Messages, provider.Message{Role: chatRole(m.Role), Content: text})
	}
	if t := body.Temperature; t != nil {
		if *t < 0 || *t > 2 || math.IsNaN(*t) {
			oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "temperature must be between 0 and 2")
			return
		}
		req.Temperature = *t
	}
	if body.N != nil {
		if *body.N < 1 || *body.N > maxSamples {
			oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "n must be between 1 and %d", maxSamples)
			return
		}
		req.N = *body.N
	}
	limit := body.MaxTokens
	if body.MaxCompletionTokens != nil {
		limit = body.MaxCompletionTokens
	}
	maxTokens := 0
	if limit != nil {
		if *limit < 1 {
			oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "max_tokens must be >= 1")
			return
		}
		maxTokens = *limit
	}
	if len(body.Seed) > 0 && string(body.Seed) != "null" {
		seed, err := parseSeed(body.Seed)
		if err != nil {
			oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "seed: %v", err)
			return
		}
		req.Seed = &seed
	}
	top := 0
	if body.TopLogprobs != nil {
		if *body.TopLogprobs < 0 || *body.TopLogprobs > maxTopK {
			oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "top_logprobs must be between 0 and %d", maxTopK)
			return
		}
		top = *body.TopLogprobs
	}
	req.Logprobs, req.TopLogprobs = body.Logprobs, max(top, 1)
	modelName, ready, err := s.engineModel(tg)
	switch {
	case err != nil:
		oaiError(w, http.StatusNotFound, "invalid_request_error", "model_not_found", "%v", err)
		return
	case !ready:
		w.Header().Set("Retry-After", "1")
		oaiError(w, http.StatusServiceUnavailable, "server_error", "", "the sampler weights %s are still being saved; retry shortly", body.Model)
		return
	}
	req.Model = modelName
	resp, err := s.eng.Chat(r.Context(), req)
	switch {
	case errors.Is(err, provider.ErrInvalid):
		oaiError(w, http.StatusBadRequest, "invalid_request_error", "", "%v", err)
		return
	case err != nil:
		if r.Context().Err() == nil {
			s.log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
		}
		oaiError(w, http.StatusInternalServerError, "server_error", "", "the engine failed: %v", err)
		return
	}
	b := tg.base
	promptTokens := 0
	for _, m := range req.Messages {
		promptTokens += len(b.tok.Encode(m.Content)) + 4
	}
	type choice struct {
		Index        int            `json:"index"`
		Message      map[string]any `json:"message"`
		Logprobs     any            `json:"logprobs"`
		FinishReason string         `json:"finish_reason"`
	}
	completion := 0
	choices := make([]choice, len(resp.Choices))
	for i, c := range resp.Choices {
		toks := b.encodeAnswer(c.Content)
		content, reason := c.Content, "stop"
		if maxTokens > 0 && len(toks) > maxTokens {
			toks, reason = toks[:maxTokens], "length"
			content = b.tok.Decode(toks)
		}
		completion += len(toks)
		ch := choice{Index: i, Message: map[string]any{"role": "assistant", "content": content}, FinishReason: reason}
		if body.Logprobs {
			ch.Logprobs = oaiLogprobs(c, top)
		}
		choices[i] = ch
	}
	s.count.openAIChats.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"id": "chatcmpl-" + randomHex(8), "object": "chat.completion", "created": time.Now().Unix(),
		"model": body.Model, "choices": choices,
		"usage": map[string]int{"prompt_tokens": promptTokens, "completion_tokens": completion, "total_tokens": promptTokens + completion},
	})
}

// oaiLogprobs reports the first token's candidates, as the engine knows
// them (the judge's distribution); other answers get the chosen text at 0.
func oaiLogprobs(c provider.Choice, top int) map[string]any {
	tok, lp := c.Content, 0.0
	if len(c.TopLogprobs) > 0 {
		tok, lp = c.TopLogprobs[0].Token, c.TopLogprobs[0].Logprob
	}
	tops := []map[string]any{}
	for _, t := range c.TopLogprobs[:min(top, len(c.TopLogprobs))] {
		tops = append(tops, map[string]any{"token": t.Token, "logprob": t.Logprob, "bytes": tokenBytes(t.Token)})
	}
	return map[string]any{"content": []map[string]any{{"token": tok, "logprob": lp, "bytes": tokenBytes(tok), "top_logprobs": tops}}}
}

// hfTokenizer serves a base model's tokenizer.json under its tokenizer id,
// in the hub's layout, for tokenizer.Fetch.
func (s *Server) hfTokenizer(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("name")
	if owner := r.PathValue("owner"); owner != "" {
		id = owner + "/" + id
	}
	b, ok := s.byTokID[id]
	if !ok {
		http.Error(w, "Repository Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("ETag", `"`+b.tok.SHA256()+`"`)
	w.Write(b.TokenizerJSON)
}

// tokenBytes is OpenAI's "bytes": the UTF-8 bytes as integers.
func tokenBytes(s string) []int {
	out := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int(s[i])
	}
	return out
}
