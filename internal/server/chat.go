package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelorganisms/pvbuild/internal/cost"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// chatRequest is the part of POST /v1/chat/completions the server honours;
// other fields (user, store, response_format...) are accepted and ignored.
type chatRequest struct {
	Model               *string       `json:"model"`
	Messages            []chatMessage `json:"messages"`
	Temperature         *float64      `json:"temperature"`
	MaxTokens           *int          `json:"max_tokens"`
	MaxCompletionTokens *int          `json:"max_completion_tokens"`
	N                   *int          `json:"n"`
	Seed                *int64        `json:"seed"`
	Logprobs            *bool         `json:"logprobs"`
	TopLogprobs         *int          `json:"top_logprobs"`
	Stream              *bool         `json:"stream"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type chatResponse struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	Usage             usage        `json:"usage"`
	SystemFingerprint string       `json:"system_fingerprint"`
	ServiceTier       string       `json:"service_tier"`
}

type chatChoice struct {
	Index        int              `json:"index"`
	Message      assistantMessage `json:"message"`
	Logprobs     *choiceLogprobs  `json:"logprobs"`
	FinishReason string           `json:"finish_reason"`
}

type assistantMessage struct {
	Role        string  `json:"role"`
	Content     string  `json:"content"`
	Refusal     *string `json:"refusal"`
	Annotations []any   `json:"annotations"`
}

type choiceLogprobs struct {
	Content []tokenLogprob `json:"content"`
	Refusal []tokenLogprob `json:"refusal"` // always null
}

// tokenLogprob is ChatCompletionTokenLogprob. Bytes are ints, as OpenAI
// sends them ([]byte would marshal as base64).
type tokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// greedyBelow is the temperature under which sampling is greedy. go-openai
// cannot send 0 (omitempty) and sends the smallest float32 instead; reading
// such values as 0 makes served answers match in-process ones exactly, ties
// between equally good answers included.
const greedyBelow = 1e-6

func (s *Server) chat(w http.ResponseWriter, r *http.Request) error {
	var body chatRequest
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	req, err := chatRequestOf(body)
	if err != nil {
		return err
	}
	if !s.modelExists(r.Context(), req.Model) {
		return modelNotFound(req.Model)
	}
	wantTop := req.TopLogprobs
	if req.Logprobs {
		// At least the best candidate, to report the chosen token's own
		// logprob even when no alternatives are asked for.
		req.TopLogprobs = max(req.TopLogprobs, 1)
	}
	resp, err := s.p.Chat(r.Context(), req)
	switch {
	case errors.Is(err, provider.ErrNotFound):
		return modelNotFound(req.Model)
	case errors.Is(err, provider.ErrInvalid):
		return badRequest("", "%v", err)
	case err != nil:
		return err // the provider names the model and the operation
	}
	out := chatResponse{
		ID:                fmt.Sprintf("chatcmpl-%016x", s.chatSeq.Add(1)),
		Object:            "chat.completion",
		Created:           time.Now().Unix(),
		Model:             req.Model,
		Choices:           make([]chatChoice, len(resp.Choices)),
		SystemFingerprint: "fp_pvbuild_local",
		ServiceTier:       "default",
	}
	out.Usage.PromptTokens = promptTokens(req.Messages)
	for i, c := range resp.Choices {
		n := countTokens(c.Content)
		out.Usage.CompletionTokens += n
		ch := chatChoice{
			Index:        i,
			Message:      assistantMessage{Role: "assistant", Content: c.Content, Annotations: []any{}},
			FinishReason: "stop",
		}
		if req.MaxTokens > 0 && n >= req.MaxTokens {
			ch.FinishReason = "length"
		}
		if req.Logprobs {
			ch.Logprobs = firstTokenLogprobs(c, wantTop)
		}
		out.Choices[i] = ch
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens + out.Usage.CompletionTokens
	s.count.chatCompletions.Add(1)
	writeJSON(w, http.StatusOK, out)
	return nil
}

func modelNotFound(model string) error {
	return notFound("model", "model_not_found", "The model `%s` does not exist or you do not have access to it.", model)
}

// chatRequestOf validates a chat request with OpenAI's limits.
func chatRequestOf(b chatRequest) (provider.ChatRequest, error) {
	var req provider.ChatRequest
	if b.Model == nil || *b.Model == "" {
		return req, badRequest("model", "You must provide a model parameter.")
	}
	if len(b.Messages) == 0 {
		return req, badRequest("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1.")
	}
	if b.Stream != nil && *b.Stream {
		return req, badRequest("stream", "This server does not stream; send stream false or leave it out.")
	}
	req.Model = *b.Model
	for i, m := range b.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return req, badRequest(fmt.Sprintf("messages.[%d].role", i), "Invalid value: '%s'. Supported values are: 'system', 'developer', 'user', 'assistant' and 'tool'.", m.Role)
		}
		text, err := messageText(m.Content)
		if err != nil {
			return req, badRequest(fmt.Sprintf("messages.[%d].content", i), "Invalid 'messages[%d].content': %v.", i, err)
		}
		req.Messages = append(req.Messages, provider.Message{Role: m.Role, Content: text})
	}
	req.Temperature = 1 // OpenAI's default
	if t := b.Temperature; t != nil {
		if !(*t >= 0 && *t <= 2) {
			return req, badRequest("temperature", "Invalid 'temperature': expected a number between 0 and 2, got %v.", *t)
		}
		req.Temperature = *t
		if req.Temperature < greedyBelow {
			req.Temperature = 0
		}
	}
	limit := b.MaxTokens
	param := "max_tokens"
	if b.MaxCompletionTokens != nil {
		limit, param = b.MaxCompletionTokens, "max_completion_tokens"
	}
	if limit != nil {
		if *limit < 1 {
			return req, badRequest(param, "Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead.", param, *limit)
		}
		req.MaxTokens = *limit
	}
	req.N = 1
	if b.N != nil {
		if *b.N < 1 || *b.N > 128 {
			return req, badRequest("n", "Invalid 'n': expected an integer between 1 and 128, got %d.", *b.N)
		}
		req.N = *b.N
	}
	if b.Seed != nil {
		seed := int(*b.Seed)
		req.Seed = &seed
	}
	req.Logprobs = b.Logprobs != nil && *b.Logprobs
	if t := b.TopLogprobs; t != nil {
		if *t < 0 || *t > 20 {
			return req, badRequest("top_logprobs", "Invalid 'top_logprobs': expected an integer between 0 and 20, got %d.", *t)
		}
		if !req.Logprobs {
			return req, badRequest("top_logprobs", "Invalid 'top_logprobs': 'logprobs' must be set to true when 'top_logprobs' is used.")
		}
		req.TopLogprobs = *t
	}
	return req, nil
}

// messageText reads a message's content: a string, null, or a list of text
// parts, joined.
func messageText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("expected a string or an array of content parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("content part type '%s' is not supported, only 'text'", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

// firstTokenLogprobs reports the first generated token with its candidates,
// which is all the provider knows; top is how many candidates were asked for.
// The first token is the candidate the content starts with (the longest, if
// several); if none does, the provider gave nothing to report.
func firstTokenLogprobs(c provider.Choice, top int) *choiceLogprobs {
	out := &choiceLogprobs{Content: []tokenLogprob{}}
	best := -1
	for i, t := range c.TopLogprobs {
		if t.Token != "" && strings.HasPrefix(c.Content, t.Token) && (best < 0 || len(t.Token) > len(c.TopLogprobs[best].Token)) {
			best = i
		}
	}
	if best < 0 {
		return out
	}
	first := tokenLogprob{Token: c.TopLogprobs[best].Token, Logprob: c.TopLogprobs[best].Logprob,
		Bytes: utf8Bytes(c.TopLogprobs[best].Token), TopLogprobs: []topLogprob{}}
	for _, t := range c.TopLogprobs[:min(top, len(c.TopLogprobs))] {
		first.TopLogprobs = append(first.TopLogprobs, topLogprob{Token: t.Token, Logprob: t.Logprob, Bytes: utf8Bytes(t.Token)})
	}
	out.Content = append(out.Content, first)
	return out
}

func utf8Bytes(s string) []int {
	out := make([]int, len(s))
	for i := range len(s) {
		out[i] = int(s[i])
	}
	return out
}

// countTokens counts for usage in o200k_base (gpt-4o and gpt-4.1's
// vocabulary). A vocabulary that fails to load leaves usage at zero rather
// than failing the completion.
func countTokens(s string) int {
	n, _ := cost.Tokens(s)
	return n
}

// promptTokens counts a prompt as OpenAI bills it.
func promptTokens(msgs []provider.Message) int {
	n, _ := cost.ConversationTokens(msgs)
	return n
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

type modelList struct {
	Object string        `json:"object"`
	Data   []modelObject `json:"data"`
}

func (s *Server) listModels(w http.ResponseWriter, r *http.Request) error {
	list := modelList{Object: "list", Data: []modelObject{}}
	for _, m := range s.base {
		list.Data = append(list.Data, s.baseModel(m))
	}
	tuned, err := s.fineTunedModels(r)
	if err != nil {
		return err
	}
	list.Data = append(list.Data, tuned...)
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) getModel(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if s.isBase[id] {
		writeJSON(w, http.StatusOK, s.baseModel(id))
		return nil
	}
	tuned, err := s.fineTunedModels(r)
	if err != nil {
		return err
	}
	for _, m := range tuned {
		if m.ID == id {
			writeJSON(w, http.StatusOK, m)
			return nil
		}
	}
	return modelNotFound(id)
}

// deleteModel deletes a fine-tuned model, as OpenAI's DELETE /v1/models
// does: it no longer answers, nor is it listed; its job stays.
func (s *Server) deleteModel(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	if s.isBase[id] {
		return &apiError{status: http.StatusForbidden, typ: "invalid_request_error", code: "model_not_deletable",
			msg: fmt.Sprintf("You cannot delete the base model %s.", id)}
	}
	if !strings.HasPrefix(id, "ft:") || !s.modelExists(r.Context(), id) {
		return modelNotFound(id)
	}
	s.mu.Lock()
	s.deleted[id] = true
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "model", "deleted": true})
	return nil
}

func (s *Server) isDeleted(model string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleted[model]
}

// fineTunedModels are the models of succeeded jobs, newest first.
func (s *Server) fineTunedModels(r *http.Request) ([]modelObject, error) {
	jobs, err := s.p.ListJobs(r.Context(), nil)
	if err != nil {
		return nil, err
	}
	var out []modelObject
	for _, j := range jobs {
		o := s.present(j)
		if o.Status == provider.StatusSucceeded && o.FineTunedModel != nil && !s.isDeleted(*o.FineTunedModel) {
			out = append(out, modelObject{ID: *o.FineTunedModel, Object: "model", Created: j.FinishedAt.Unix(), OwnedBy: s.org})
		}
	}
	return out, nil
}

// baseModel dates a base model by its snapshot date; an alias takes the
// date of its newest served snapshot.
func (s *Server) baseModel(id string) modelObject {
	m := modelObject{ID: id, Object: "model", OwnedBy: "system"}
	date := func(name string) int64 {
		if len(name) < 11 {
			return 0
		}
		t, err := time.Parse("2006-01-02", name[len(name)-10:])
		if err != nil || name[len(name)-11] != '-' {
			return 0
		}
		return t.Unix()
	}
	m.Created = date(id)
	if m.Created == 0 {
		for _, b := range s.base {
			if strings.HasPrefix(b, id+"-") && len(b) == len(id)+11 {
				m.Created = max(m.Created, date(b))
			}
		}
	}
	return m
}
