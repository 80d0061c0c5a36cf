package tinkersample

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
)

// judge answers a judge call with the top candidates of the first answer
// token, or for digit-splitting tokenizers of the answer's number.
func (s *Sampler) judge(ctx context.Context, m *model, prompt []int32, k int, p tinker.SamplingParams) ([]provider.Choice, error) {
	first, err := s.nextTopK(ctx, m, prompt, nil, k, p)
	if err != nil {
		return nil, err
	}
	var top []provider.TokenLogprob
	if m.tok.splitsNumbers && !s.opts.DisableNumberExpansion {
		if top, err = s.expand(ctx, m, prompt, first, k, p); err != nil {
			return nil, err
		}
	} else {
		top = make([]provider.TokenLogprob, len(first))
		for i, e := range first {
			top[i] = provider.TokenLogprob{Token: m.tok.decode(e.TokenID), Logprob: float64(e.Logprob)}
		}
	}
	// The content is what a greedy judge would have said first.
	var c provider.Choice
	c.TopLogprobs = top
	best := math.Inf(-1)
	for _, t := range top {
		if t.Logprob > best {
			best, c.Content = t.Logprob, t.Token
		}
	}
	return []provider.Choice{c}, nil
}

// nextTopK returns the top k of the token that follows prompt+answer: the
// row of a placeholder appended after them.
func (s *Sampler) nextTopK(ctx context.Context, m *model, prompt, answer []int32, k int, p tinker.SamplingParams) ([]wire.TopkEntry, error) {
	in := make([]int32, 0, len(prompt)+len(answer)+1)
	in = append(append(append(in, prompt...), answer...), m.tok.placeholder)
	p.NumSamples, p.MaxTokens, p.TopkPromptLogprobs = 1, 1, k
	p.StopTokens = nil
	res, err := s.sample(ctx, m, in, p)
	if err != nil {
		return nil, err
	}
	pos := len(in) - 1
	if pos >= len(res.TopkPromptLogprobs) || len(res.TopkPromptLogprobs[pos]) == 0 {
		return nil, fmt.Errorf("tinker model %q: the server sent no top-k logprobs for prompt position %d of %d", m.name, pos, len(in))
	}
	return res.TopkPromptLogprobs[pos], nil
}

func (ti *tokenInfo) decode(ids ...int32) string {
	v := make([]int, len(ids))
	for i, id := range ids {
		v[i] = int(id)
	}
	return ti.tok.Decode(v)
}

// prefix is an answer that so far is the start of a number.
type prefix struct {
	answer []int32 // its tokens
	digits string  // a number 0..100 that a further digit can extend
	p      float64
}

// tally is the distribution of answers being built.
type tally struct {
	numbers  [101]float64
	other    map[string]float64 // non-number answers by text
	order    []string           // other's texts in first-seen order
	frontier []prefix           // prefixes still to expand
	leftOut  float64            // mass of prefixes not expanded
}

func (t *tally) addOther(text string, p float64) {
	if _, ok := t.other[text]; !ok {
		t.order = append(t.order, text)
	}
	t.other[text] += p
}

// expand turns the first-token distribution of a digit-splitting tokenizer
// into one over the numbers 0..100 and the non-number answers, asking for
// the next token after each likely digit prefix (see the package doc).
func (s *Sampler) expand(ctx context.Context, m *model, prompt []int32, first []wire.TopkEntry, k int, p tinker.SamplingParams) ([]provider.TokenLogprob, error) {
	t := &tally{other: map[string]float64{}}
	for _, e := range first {
		t.book(m.tok, prefix{p: 1}, e, true)
	}
	budget, requests := s.opts.MaxExtraRequests, 0
	for len(t.frontier) > 0 {
		front := t.frontier
		t.frontier = nil
		sort.SliceStable(front, func(i, j int) bool { return front[i].p > front[j].p })
		var todo []prefix
		for _, x := range front {
			if x.p >= MinExpandProb && len(todo) < budget {
				todo = append(todo, x)
			} else {
				t.leftOut += x.p
			}
		}
		budget -= len(todo)
		requests += len(todo)
		dists, err := s.nextTopKs(ctx, m, prompt, todo, k, p)
		if err != nil {
			return nil, err
		}
		for i, x := range todo {
			var cont float64
			for _, e := range dists[i] {
				cont += t.book(m.tok, x, e, false)
			}
			// Non-digits, and the tail beyond the top k, end the number.
			v, _ := number(x.digits)
			t.numbers[v] += max(0, x.p-cont)
		}
	}
	s.opts.Log.Debug("tinker: judge number expansion", "model", m.name, "extra_requests", requests, "left_out_mass", t.leftOut)
	var out []provider.TokenLogprob
	for v, q := range t.numbers {
		if q > 0 {
			out = append(out, provider.TokenLogprob{Token: strconv.Itoa(v), Logprob: math.Log(q)})
		}
	}
	for _, text := range t.order {
		if q := t.other[text]; q > 0 {
			out = append(out, provider.TokenLogprob{Token: text, Logprob: math.Log(q)})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Logprob > out[j].Logprob })
	return out, nil
}

// nextTopKs asks for the next-token distributions of the prefixes at once.
func (s *Sampler) nextTopKs(ctx context.Context, m *model, prompt []int32, todo []prefix, k int, p tinker.SamplingParams) ([][]wire.TopkEntry, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dists := make([][]wire.TopkEntry, len(todo))
	errs := make([]error, len(todo))
	var wg sync.WaitGroup
	for i, x := range todo {
		wg.Go(func() {
			dists[i], errs[i] = s.nextTopK(ctx, m, prompt, x.answer, k, p)
			if errs[i] != nil {
				cancel() // the judgement has failed; spare the others
			}
		})
	}
	wg.Wait()
	// The cause, not the cancellations it caused.
	var first error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
		if first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	return dists, nil
}

// book records candidate e after prefix x (at the root, x is the empty
// answer with probability 1) and returns its probability when it continues
// x's digits, 0 when it ends the number.
func (t *tally) book(ti *tokenInfo, x prefix, e wire.TopkEntry, root bool) float64 {
	q := x.p * math.Exp(float64(e.Logprob))
	text := ti.decode(e.TokenID)
	s := text
	if root {
		// judge.Score trims a number token, so " 85" is 85.
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	ds := s[:len(s)-len(strings.TrimLeft(s, "0123456789"))]
	if ds == "" {
		if root {
			t.addOther(text, q)
		}
		return 0
	}
	answer := append(slices.Clip(x.answer), e.TokenID)
	digits, rest := x.digits+ds, s[len(ds):]
	v, ok := number(digits)
	switch {
	case !ok || strings.TrimSpace(rest) != "":
		// "05", "853", "8.": what judge.Score would not count either.
		t.addOther(ti.decode(answer...), q)
	case rest == "" && extendable(digits):
		t.frontier = append(t.frontier, prefix{answer: answer, digits: digits, p: q})
	default:
		t.numbers[v] += q
	}
	return q
}

// number parses s as judge.Score counts numbers: 0..100 without leading
// zeros.
func number(s string) (int, bool) {
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 || v > 100 || strconv.Itoa(v) != s {
		return 0, false
	}
	return v, true
}

// extendable: another digit can make a longer number of 0..100.
func extendable(s string) bool {
	for c := '0'; c <= '9'; c++ {
		if _, ok := number(s + string(c)); ok {
			return true
		}
	}
	return false
}
