package local

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/cost"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// baseKey caches the one index every base model shares.
const baseKey = ""

// maxChoices bounds N, as upstream does, so a bad request cannot exhaust memory.
const maxChoices = provider.OpenAIMaxN

// indexEntry builds a model's index once, however many callers ask at once.
type indexEntry struct {
	once   sync.Once
	corpus *corpus
	ix     *index
	err    error
}

// Chat answers a conversation: as a judge when the last user message fills
// a registered judge template, otherwise by retrieval from the model's corpus.
func (e *Engine) Chat(ctx context.Context, req provider.ChatRequest) (provider.ChatResponse, error) {
	if err := ctx.Err(); err != nil {
		return provider.ChatResponse{}, err
	}
	if req.Model == "" {
		return provider.ChatResponse{}, fmt.Errorf("chat: %w: no model", ErrBadRequest)
	}
	if req.N < 0 || req.Temperature < 0 || req.MaxTokens < 0 || req.TopLogprobs < 0 {
		return provider.ChatResponse{}, fmt.Errorf("chat: %w: negative N, temperature, max tokens or top logprobs", ErrBadRequest)
	}
	if req.N > maxChoices {
		return provider.ChatResponse{}, fmt.Errorf("chat: %w: N %d above %d", ErrBadRequest, req.N, maxChoices)
	}
	query, ok := lastUser(req.Messages)
	if !ok {
		return provider.ChatResponse{}, fmt.Errorf("chat: %w: no user message", ErrBadRequest)
	}
	n := max(req.N, 1)

	var entry *indexEntry
	if strings.HasPrefix(req.Model, "ft:") {
		// Even as a judge, a fine-tuned model must exist.
		var err error
		if entry, err = e.indexFor(req.Model); err != nil {
			return provider.ChatResponse{}, fmt.Errorf("chat: %w", err)
		}
	}

	if jm, question, answer := e.findJudge(query); jm != nil {
		return e.judgeChat(ctx, req, jm, question, answer, n)
	}

	if entry == nil {
		var err error
		if entry, err = e.indexFor(baseKey); err != nil {
			return provider.ChatResponse{}, fmt.Errorf("chat with %s: %w", req.Model, err)
		}
	}
	h := requestHash(req)
	cands := entry.ix.top(query, topK, h)
	if len(cands) == 0 {
		return provider.ChatResponse{}, fmt.Errorf("chat with %s: empty corpus", req.Model)
	}
	resp := provider.ChatResponse{Model: req.Model, Choices: make([]provider.Choice, n)}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return provider.ChatResponse{}, err
		}
		c := pick(cands, req.Temperature, mix(h^mix(uint64(i)+1)))
		resp.Choices[i].Content = truncateWords(entry.ix.docs[c.doc].response, req.MaxTokens)
	}
	resp.Usage = usage(req, resp)
	return resp, nil
}

func (e *Engine) judgeChat(ctx context.Context, req provider.ChatRequest, jm *judgeModel, question, answer string, n int) (provider.ChatResponse, error) {
	lps := jm.logProbs(question, answer)
	if err := ctx.Err(); err != nil {
		return provider.ChatResponse{}, err
	}
	var top []provider.TokenLogprob
	if req.Logprobs {
		top = lps[:min(req.TopLogprobs, maxTopLogs, len(lps))]
	}
	resp := provider.ChatResponse{Model: req.Model, Choices: make([]provider.Choice, n)}
	for i := range resp.Choices {
		// Each choice gets its own slice so callers may modify one freely.
		resp.Choices[i] = provider.Choice{Content: lps[0].Token, TopLogprobs: append([]provider.TokenLogprob(nil), top...)}
	}
	resp.Usage = usage(req, resp)
	return resp, nil
}

// usage counts a call's tokens as OpenAI bills them: the conversation's
// prompt tokens and the tokens of every choice.
func usage(req provider.ChatRequest, resp provider.ChatResponse) provider.Usage {
	var u provider.Usage
	u.PromptTokens, _ = cost.ConversationTokens(req.Messages)
	for _, c := range resp.Choices {
		n, _ := cost.Tokens(c.Content)
		u.CompletionTokens += n
	}
	return u
}

func lastUser(msgs []provider.Message) (string, bool) {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == "user" {
			return msgs[i].Content, true
		}
	}
	return "", false
}

// indexFor returns the cached index of a model (baseKey for base models),
// building it on first use. Failures are not cached: a fine-tuned model that
// is still training will exist later.
func (e *Engine) indexFor(model string) (*indexEntry, error) {
	e.idxMu.Lock()
	ent, ok := e.indexes[model]
	if !ok {
		ent = &indexEntry{}
		e.indexes[model] = ent
	}
	e.idxMu.Unlock()
	ent.once.Do(func() {
		ent.corpus, ent.err = e.buildCorpus(model)
		if ent.err == nil {
			ent.ix = newIndex(ent.corpus)
		}
	})
	if ent.err != nil {
		e.idxMu.Lock()
		if e.indexes[model] == ent {
			delete(e.indexes, model)
		}
		e.idxMu.Unlock()
		return nil, ent.err
	}
	return ent, nil
}

func (e *Engine) buildCorpus(model string) (*corpus, error) {
	if model == baseKey {
		e.baseOnce.Do(func() {
			if e.loadBase == nil {
				return
			}
			ex, err := e.loadBase()
			if err != nil {
				e.baseErr = fmt.Errorf("local engine base corpus: %w", err)
			} else if len(ex) > 0 {
				e.base = baseCorpus(ex)
			}
		})
		if e.baseErr != nil {
			return nil, e.baseErr
		}
		if e.base == nil {
			return nil, errors.New("the local base model has no corpus (Options.Base is empty)")
		}
		return e.base, nil
	}
	job, err := e.findModel(model)
	if err != nil {
		return nil, err
	}
	train, err := e.trainingExamples(job.TrainingFile)
	if err != nil {
		return nil, fmt.Errorf("model %s training file: %w", model, err)
	}
	parentKey := baseKey
	if strings.HasPrefix(job.Model, "ft:") {
		parentKey = job.Model
	}
	parent, err := e.indexFor(parentKey)
	if err != nil {
		return nil, fmt.Errorf("model %s: parent %q: %w", model, job.Model, err)
	}
	hp := job.Hyperparameters
	return fineTuned(train, parent.corpus, hp.NEpochs, hp.LearningRateMultiplier), nil
}

// requestHash seeds sampling from the request alone (each choice mixes in
// its index), so the same request gives the same answers whatever else runs
// concurrently or ran before.
func requestHash(req provider.ChatRequest) uint64 {
	h := fnvOffset
	writeInt := func(v uint64) {
		for range 8 {
			h = (h ^ (v & 0xff)) * fnvPrime
			v >>= 8
		}
	}
	// Length-prefixed, so ("ab","c") and ("a","bc") differ.
	writeStr := func(s string) {
		writeInt(uint64(len(s)))
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * fnvPrime
		}
	}
	writeStr(req.Model)
	for _, m := range req.Messages {
		writeStr(m.Role)
		writeStr(m.Content)
	}
	if req.Seed != nil {
		writeStr("seed")
		writeInt(uint64(*req.Seed))
	}
	return h
}

// FNV-1a, inlined so hashing a long judge prompt allocates nothing.
const (
	fnvOffset uint64 = 14695981039346656037
	fnvPrime  uint64 = 1099511628211
)

// pick samples a candidate by softmax(score/temperature); temperature 0 is
// greedy.
func pick(cands []candidate, temperature float64, seed uint64) candidate {
	if temperature == 0 || len(cands) == 1 {
		return cands[0]
	}
	cands = cands[:min(len(cands), topK)]
	best := cands[0].score // candidates are sorted, best first
	var ws [topK]float64
	var sum float64
	for i, c := range cands {
		ws[i] = math.Exp((c.score - best) / temperature)
		sum += ws[i]
	}
	r := rand.New(rand.NewPCG(seed, mix(seed))).Float64() * sum
	for i, c := range cands {
		r -= ws[i]
		if r < 0 {
			return c
		}
	}
	return cands[len(cands)-1]
}
