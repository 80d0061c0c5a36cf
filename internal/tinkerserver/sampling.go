package tinkerserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
)

// keptSamples is how many sample seq_ids a sampling session remembers for
// answering a repeated submission with the first one's result.
const keptSamples = 4096

type sampler struct {
	id, session, base string
	path              string // sampler checkpoint, "" for the base model
	bySeq             map[int]*sampleJob
	seqOrder          []int
}

// sampleJob computes one asample request once, however often it is polled
// or resubmitted.
type sampleJob struct {
	poll pollFunc
}

// target is what a sample runs on.
type target struct {
	base *base
	ck   *samplerCheckpoint // nil for the base model
}

func (s *Server) createSamplingSession(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		SessionID string `json:"session_id"`
		SeqID     *int   `json:"sampling_session_seq_id"`
		BaseModel string `json:"base_model"`
		ModelPath string `json:"model_path"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.SeqID == nil || *body.SeqID < 0 {
		return badRequest("sampling_session_seq_id is required and must be >= 0")
	}
	tg, herr := s.resolveTarget(body.BaseModel, body.ModelPath)
	if herr != nil {
		return herr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, herr := s.liveSession(body.SessionID)
	if herr != nil {
		return herr
	}
	id := fmt.Sprintf("%s:sample:%d", sess.id, *body.SeqID)
	if _, ok := sess.samplers[*body.SeqID]; !ok {
		sm := &sampler{id: id, session: sess.id, base: tg.base.Name, bySeq: map[int]*sampleJob{}}
		if tg.ck != nil {
			sm.path = tg.ck.Path
		}
		sess.samplers[*body.SeqID] = id
		s.samplers[id] = sm
	}
	writeJSON(w, http.StatusOK, map[string]string{"sampling_session_id": id, "type": "create_sampling_session"})
	return nil
}

// resolveTarget finds a base model or a sampler checkpoint; a model path
// may be "<base>;<path>" as on the OpenAI-compatible endpoint.
func (s *Server) resolveTarget(baseModel, modelPath string) (target, *httpError) {
	if modelPath == "" && strings.HasPrefix(baseModel, "tinker://") {
		baseModel, modelPath = "", baseModel
	}
	if b, p, ok := strings.Cut(modelPath, ";"); ok {
		baseModel, modelPath = b, p
	}
	if modelPath != "" {
		if !strings.HasPrefix(modelPath, "tinker://") {
			return target{}, badRequest("model_path %q must start with tinker://", modelPath)
		}
		s.mu.Lock()
		ck := s.samplerCk[modelPath]
		_, isState := s.states[modelPath]
		s.mu.Unlock()
		if ck == nil {
			if isState || strings.Contains(modelPath, "/weights/") {
				return target{}, badRequest("%s is a training state; only tinker://<run>/sampler_weights/<name> paths can be sampled", modelPath)
			}
			return target{}, notFound("Sampler weights %s not found", modelPath)
		}
		if baseModel != "" && baseModel != ck.BaseModel {
			return target{}, badRequest("%s was trained on %s, not %s", modelPath, ck.BaseModel, baseModel)
		}
		return target{base: s.bases[ck.BaseModel], ck: ck}, nil
	}
	if baseModel == "" {
		return target{}, badRequest("base_model or model_path is required")
	}
	b, ok := s.bases[baseModel]
	if !ok {
		return target{}, notFound("Base model %s is not served here (have %s)", baseModel, strings.Join(s.baseOrder, ", "))
	}
	return target{base: b}, nil
}

// sampleParams is a checked asample request.
type sampleParams struct {
	prompt         []int
	n              int
	maxTokens      int // 0: no limit beyond the answer
	temperature    float64
	seed           *int
	stopStrings    []string
	stopTokens     []int
	promptLogprobs bool
	topk           int
}

type sampleBody struct {
	NumSamples *int `json:"num_samples"`
	Prompt     struct {
		Chunks []struct {
			Tokens []int64 `json:"tokens"`
			Type   string  `json:"type"`
		} `json:"chunks"`
	} `json:"prompt"`
	SamplingParams struct {
		MaxTokens   *int            `json:"max_tokens"`
		Seed        json.RawMessage `json:"seed"`
		Stop        json.RawMessage `json:"stop"`
		Temperature *float64        `json:"temperature"`
		TopK        *int            `json:"top_k"`
		TopP        *float64        `json:"top_p"`
	} `json:"sampling_params"`
	BaseModel          string `json:"base_model"`
	ModelPath          string `json:"model_path"`
	SamplingSessionID  string `json:"sampling_session_id"`
	SeqID              *int   `json:"seq_id"`
	PromptLogprobs     *bool  `json:"prompt_logprobs"`
	TopkPromptLogprobs *int   `json:"topk_prompt_logprobs"`
}

// checkSample validates an asample body against the target's vocabulary.
// It never panics on hostile input.
func checkSample(body *sampleBody, vocab int) (sampleParams, error) {
	var p sampleParams
	p.n = 1
	if body.NumSamples != nil {
		p.n = *body.NumSamples
	}
	if p.n < 1 || p.n > maxSamples {
		return p, badRequest("num_samples must be between 1 and %d, got %d", maxSamples, p.n)
	}
	for i, c := range body.Prompt.Chunks {
		if c.Type != "" && c.Type != "encoded_text" {
			return p, badRequest("prompt chunk %d: type %q is not supported (only encoded_text)", i, c.Type)
		}
		for _, t := range c.Tokens {
			if t < 0 || t >= int64(vocab) {
				return p, badRequest("prompt token %d is outside the vocabulary (%d)", t, vocab)
			}
			p.prompt = append(p.prompt, int(t))
		}
	}
	if len(p.prompt) == 0 {
		return p, badRequest("the prompt is empty")
	}
	sp := body.SamplingParams
	if sp.MaxTokens != nil {
		if *sp.MaxTokens < 0 {
			return p, badRequest("max_tokens must be >= 0")
		}
		p.maxTokens = *sp.MaxTokens
	}
	p.temperature = 1
	if t := sp.Temperature; t != nil {
		if *t < 0 || math.IsNaN(*t) || math.IsInf(*t, 0) {
			return p, badRequest("temperature must be a finite number >= 0")
		}
		p.temperature = *t
	}
	if len(sp.Seed) > 0 && string(sp.Seed) != "null" {
		seed, err := parseSeed(sp.Seed)
		if err != nil {
			return p, badRequest("seed: %v", err)
		}
		p.seed = &seed
	}
	if len(sp.Stop) > 0 && string(sp.Stop) != "null" {
		var one string
		var strs []string
		var toks []int64
		switch {
		case json.Unmarshal(sp.Stop, &one) == nil:
			p.stopStrings = []string{one}
		case json.Unmarshal(sp.Stop, &toks) == nil:
			for _, t := range toks {
				if t < 0 || t >= int64(vocab) {
					return p, badRequest("stop token %d is outside the vocabulary (%d)", t, vocab)
				}
				p.stopTokens = append(p.stopTokens, int(t))
			}
		case json.Unmarshal(sp.Stop, &strs) == nil:
			p.stopStrings = strs
		default:
			return p, badRequest("stop must be a string, a list of strings or a list of token ids")
		}
	}
	p.promptLogprobs = body.PromptLogprobs != nil && *body.PromptLogprobs
	if k := body.TopkPromptLogprobs; k != nil {
		if *k < 0 || *k > maxTopK {
			return p, badRequest("topk_prompt_logprobs must be between 0 and %d, got %d", maxTopK, *k)
		}
		p.topk = *k
	}
	return p, nil
}

// parseSeed reads a JSON integer seed of any size, folding it into int.
func parseSeed(raw json.RawMessage) (int, error) {
	s := string(raw)
	if v, err := strconv.ParseInt(s, 10, 64); err == nil {
		return int(v), nil
	}
	if v, err := strconv.ParseUint(s, 10, 64); err == nil {
		return int(v), nil
	}
	return 0, fmt.Errorf("%s is not an integer", s)
}

func (s *Server) asample(w http.ResponseWriter, r *http.Request) error {
	var body sampleBody
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	var tg target
	var sm *sampler
	if body.SamplingSessionID != "" {
		s.mu.Lock()
		sm = s.samplers[body.SamplingSessionID]
		var herr *httpError
		switch {
		case sm == nil:
			herr = notFound("Sampling session %s not found", body.SamplingSessionID)
		case s.sessions[sm.session] != nil && !s.sessionAlive(s.sessions[sm.session]):
			herr = notFound("Sampling session %s ended: its session %s expired without heartbeats", sm.id, sm.session)
		}
		var basePath, baseName string
		if sm != nil {
			basePath, baseName = sm.path, sm.base
		}
		s.mu.Unlock()
		if herr != nil {
			return herr
		}
		if tg, herr = s.resolveTarget(baseName, basePath); herr != nil {
			return herr
		}
	} else {
		var herr *httpError
		if tg, herr = s.resolveTarget(body.BaseModel, body.ModelPath); herr != nil {
			return herr
		}
	}
	p, err := checkSample(&body, tg.base.tok.VocabSize())
	if err != nil {
		return err
	}
	job := &sampleJob{}
	if sm != nil && body.SeqID != nil {
		s.mu.Lock()
		if prev, ok := sm.bySeq[*body.SeqID]; ok {
			job = prev // a repeat whose first answer was lost
		} else {
			sm.bySeq[*body.SeqID] = job
			sm.seqOrder = append(sm.seqOrder, *body.SeqID)
			if len(sm.seqOrder) > keptSamples {
				delete(sm.bySeq, sm.seqOrder[0])
				sm.seqOrder = sm.seqOrder[1:]
			}
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	if job.poll == nil {
		s.count.sampleRequests.Add(1)
		var cached *outcome
		job.poll = func() (*outcome, bool) {
			// Futures serialise their own polls; a resubmission's future
			// may poll concurrently, so the cache is under s.mu.
			s.mu.Lock()
			c := cached
			s.mu.Unlock()
			if c != nil {
				return c, true
			}
			out, ok := s.runSample(tg, p)
			if ok {
				s.mu.Lock()
				if cached == nil {
					cached = out
					s.count.samples.Add(int64(p.n))
				}
				out = cached
				s.mu.Unlock()
			}
			return out, ok
		}
	}
	poll := job.poll
	s.mu.Unlock()
	writeFuture(w, s.newFuture("Sample", poll), "")
	return nil
}

// engineModel is the engine model that answers for tg; ready is false while
// its fine-tune runs.
func (s *Server) engineModel(tg target) (string, bool, error) {
	if tg.ck == nil {
		return s.engineBase, true, nil
	}
	return s.samplerModel(context.Background(), tg.ck)
}

// topEntry is one candidate of the judge's first answer token.
type topEntry struct {
	id int
	lp float64
}

// nextTokenDist is the distribution of the token after prefix (the answer
// tokens already in the prompt) under the engine's candidate answers: each
// candidate that starts with prefix votes for its next token (the
// end-of-turn token when it ends there), and the votes are renormalised
// over those candidates. With an empty prefix that is the first answer
// token; a prefix lets a client read a multi-token answer ("8", "5") one
// token at a time.
func nextTokenDist(b *base, cands []provider.TokenLogprob, prefix []int) []topEntry {
	mass := map[int]float64{}
	total := math.Inf(-1)
	for _, c := range cands {
		if c.Token == "" {
			continue
		}
		toks := append(b.encodeAnswer(c.Token), b.stop)
		if len(toks) <= len(prefix) || !equalInts(toks[:len(prefix)], prefix) {
			continue
		}
		id := toks[len(prefix)]
		if old, seen := mass[id]; seen {
			mass[id] = logAdd(old, c.Logprob)
		} else {
			mass[id] = c.Logprob
		}
		total = logAdd(total, c.Logprob)
	}
	out := make([]topEntry, 0, len(mass))
	for id, lp := range mass {
		if len(prefix) > 0 {
			lp -= total
		}
		out = append(out, topEntry{id, lp})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].lp != out[j].lp {
			return out[i].lp > out[j].lp
		}
		return out[i].id < out[j].id
	})
	return out
}

func logAdd(a, b float64) float64 {
	if math.IsInf(a, -1) {
		return b
	}
	hi, lo := math.Max(a, b), math.Min(a, b)
	return hi + math.Log1p(math.Exp(lo-hi))
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// runSample answers one asample request: the prompt is read back into a
// conversation, the engine answers it, the answers are encoded. With
// top-k prompt logprobs and a prompt whose last token follows a complete
// generation prompt (a placeholder), that last row is the distribution over
// the first answer token.
func (s *Server) runSample(tg target, p sampleParams) (*outcome, bool) {
	modelName, ready, err := s.engineModel(tg)
	if err != nil {
		return failed("user", "%v", err), true
	}
	if !ready {
		return nil, false
	}
	b := tg.base
	n := len(p.prompt)
	conv := p.prompt
	placeholder := false
	if p.topk > 0 && n >= 2 {
		if _, open, _ := b.promptConversation(p.prompt[:n-1]); open {
			conv, placeholder = p.prompt[:n-1], true
		}
	}
	msgs, _, prefixText := b.promptConversation(conv)
	var prefix []int
	if prefixText != "" {
		prefix = b.encodeAnswer(prefixText)
	}
	hasUser := false
	for _, m := range msgs {
		hasUser = hasUser || m.Role == "user"
	}
	if !hasUser {
		return failed("user", "the prompt holds no user message the local engine could answer"), true
	}
	resp, err := s.eng.Chat(context.Background(), provider.ChatRequest{
		Model: modelName, Messages: msgs, Temperature: p.temperature, N: p.n, Seed: p.seed,
		Logprobs: true, TopLogprobs: maxTopK,
	})
	switch {
	case errors.Is(err, provider.ErrInvalid):
		return failed("user", "%v", err), true
	case err != nil:
		return failed("server", "%v", err), true
	}
	var dist []topEntry
	if len(resp.Choices) > 0 {
		dist = nextTokenDist(b, resp.Choices[0].TopLogprobs, prefix)
	}
	lpOf := func(id int) (float64, bool) {
		for _, e := range dist {
			if e.id == id {
				return e.lp, true
			}
		}
		return 0, false
	}

	msg := &wire.SampleResponse{}
	var legacySeqs []map[string]any
	for _, c := range resp.Choices {
		toks, reason := b.answerTokens(c.Content, prefix, p)
		lps := make([]float32, len(toks))
		if len(toks) > 0 {
			if lp, ok := lpOf(toks[0]); ok {
				lps[0] = float32(lp)
			}
		}
		stop := wire.StopReason_STOP_REASON_STOP
		if reason == "length" {
			stop = wire.StopReason_STOP_REASON_LENGTH
		}
		msg.Sequences = append(msg.Sequences, &wire.SampledSequence{StopReason: stop, Tokens: wire.PackInt32(int32s(toks)), Logprobs: wire.PackFloat32(lps)})
		legacySeqs = append(legacySeqs, map[string]any{"stop_reason": reason, "tokens": toks, "logprobs": lps})
	}
	legacy := map[string]any{"sequences": legacySeqs, "type": "sample"}

	// The last row, when it is the answer's first position.
	var lastRow []topEntry
	if placeholder {
		lastRow = dist
		if len(lastRow) == 0 && len(resp.Choices) > 0 {
			if toks, _ := b.answerTokens(resp.Choices[0].Content, prefix, sampleParams{}); len(toks) > 0 {
				lastRow = []topEntry{{id: toks[0], lp: 0}}
			}
		}
		lastRow = lastRow[:min(len(lastRow), p.topk)]
	}
	if p.promptLogprobs {
		// No language model behind the prompt: every prompt token is taken
		// as given (logprob 0), except the placeholder, scored by the judge.
		lps := make([]float32, n)
		lps[0] = float32(math.NaN())
		if placeholder && len(dist) > 0 {
			lps[n-1] = -99
			if lp, ok := lpOf(p.prompt[n-1]); ok {
				lps[n-1] = float32(lp)
			}
		}
		msg.PromptLogprobs = wire.PackFloat32(lps)
		lj := make([]any, n)
		for i, v := range lps {
			if i > 0 {
				lj[i] = v
			}
		}
		legacy["prompt_logprobs"] = lj
	}
	if p.topk > 0 {
		k := p.topk
		ids := make([]int32, n*k)
		vals := make([]float32, n*k)
		for i := range vals {
			vals[i] = wire.TopkSentinelLogprob
		}
		rows := make([]any, n)
		if len(lastRow) > 0 {
			row := make([]any, len(lastRow))
			for j, e := range lastRow {
				ids[(n-1)*k+j], vals[(n-1)*k+j] = int32(e.id), float32(e.lp)
				row[j] = []any{e.id, float32(e.lp)}
			}
			rows[n-1] = row
		}
		msg.TopkPromptLogprobs = &wire.TopkLogprobs{TokenIds: wire.PackInt32(ids), Logprobs: wire.PackFloat32(vals), K: uint32(k), Length: uint32(n)}
		legacy["topk_prompt_logprobs"] = rows
	}
	raw, err := wire.Marshal(msg)
	if err != nil {
		return failed("server", "encode SampleResponse: %v", err), true
	}
	return &outcome{proto: raw, legacy: legacy}, true
}

// answerTokens encodes an answer as sampled tokens after prefix (answer
// tokens the prompt already holds, dropped when the answer starts with
// them): cut after a stop string or stop token, else ended with the
// end-of-turn token, then cut at max_tokens ("length").
func (b *base) answerTokens(content string, prefix []int, p sampleParams) ([]int, string) {
	toks := b.encodeAnswer(content)
	cut := 0
	if len(prefix) > 0 && len(toks) >= len(prefix) && equalInts(toks[:len(prefix)], prefix) {
		cut = len(prefix)
	}
	for _, stop := range p.stopStrings {
		if stop == "" {
			continue
		}
		if i := strings.Index(content, stop); i >= 0 {
			st := b.encodeAnswer(content[:i+len(stop)])
			return b.limit(st[min(cut, len(st)):], p.maxTokens, "stop")
		}
	}
	toks = append(toks[cut:], b.stop)
	for i, t := range toks {
		for _, st := range p.stopTokens {
			if t == st {
				return b.limit(toks[:i+1], p.maxTokens, "stop")
			}
		}
	}
	return b.limit(toks, p.maxTokens, "stop")
}

func (b *base) limit(toks []int, maxTokens int, reason string) ([]int, string) {
	if maxTokens > 0 && len(toks) > maxTokens {
		return toks[:maxTokens], "length"
	}
	return toks, reason
}

func int32s(v []int) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

// TrainedAs names what a sampler path trained on the engine: the local
// job's training file and epochs (the same training, however many runs or
// kills it took, is the same file and epochs), or "" for an unknown path.
func (s *Server) TrainedAs(path string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	ck := s.samplerCk[path]
	if ck == nil {
		return ""
	}
	return fmt.Sprintf("%s x %d epochs", ck.FileID, ck.Epochs)
}
