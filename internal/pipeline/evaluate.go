package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// errReported marks an error already told to the user once (a model the
// provider lost, met by each of its evaluations); joins leave it out.
var errReported = errors.New("already reported")

// dropReported removes the errors already reported from a join.
func dropReported(err error) error {
	if err == nil {
		return nil
	}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var kept []error
	for _, e := range errs {
		if !errors.Is(e, errReported) {
			kept = append(kept, e)
		}
	}
	return errors.Join(kept...)
}

func (r *run) buildEval(ctx context.Context, t *target, in build.Inputs) error {
	m, td := t.model, t.task
	var tm TrainedModel
	if m.IsReference() {
		tm = TrainedModel{Model: m.Name, FineTunedModel: r.p.exp.EvaluatedModel(*m)}
	} else if err := readJSON(r.p.cache, r.stamp(t.deps[0]), trainOut(m.Name), &tm); err != nil {
		return fmt.Errorf("model %s: %w", m.Name, err)
	}
	res, err := r.p.evaluate(ctx, t, tm, r.check)
	var gone *modelGoneError
	if errors.As(err, &gone) && m.IsReference() {
		return r.referenceUnknown(t, tm, gone.err)
	}
	if errors.As(err, &gone) {
		return r.modelGone(t, tm, gone.err)
	}
	if err != nil {
		return fmt.Errorf("model %s, task %s: %w", m.Name, td.task.Name, err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := r.commit(t, in, map[string][]byte{evalOut(m.Name, td.task.Name): append(b, '\n')}, nil); err != nil {
		return fmt.Errorf("model %s, task %s: %w", m.Name, td.task.Name, err)
	}
	r.mu.Lock()
	r.evals[t] = res
	r.mu.Unlock()
	mt := res.Metric
	line := fmt.Sprintf("eval %s/%s: %s score %.1f ± %.1f (n=%d, no answer %d)", m.Name, td.task.Name, td.task.Trait, mt.Mean, mt.Stderr, mt.N, mt.NoAnswer)
	if mt.Clustered() {
		line = fmt.Sprintf("eval %s/%s: %s score %.1f ± %.1f clustered by question, ± %.1f plain (n=%d over %d questions, no answer %d)",
			m.Name, td.task.Name, td.task.Trait, mt.Mean, mt.SE(), mt.Stderr, mt.N, mt.Clusters, mt.NoAnswer)
	}
	if c := res.Coherence; c != nil && c.Metric.N > 0 {
		line += fmt.Sprintf("; coherence %.1f, %.0f%% coherent", c.Metric.Mean, 100*c.Share)
	}
	fmt.Fprintln(r.p.log, line)
	return nil
}

// modelGoneError is the provider's answer that a trained model is unknown.
type modelGoneError struct{ err error }

func (e *modelGoneError) Error() string { return e.err.Error() }
func (e *modelGoneError) Unwrap() error { return e.err }

// modelGone handles a trained model its provider no longer has: it says so
// once, naming the model and what to do, and marks the training stale so
// that the next plan and build redo it.
func (r *run) modelGone(t *target, tm TrainedModel, err error) error {
	m := t.model
	if _, seen := r.gone.LoadOrStore(m.Name, true); seen {
		return errReported
	}
	reason := fmt.Sprintf("provider %s no longer has trained model %s", r.p.exp.Evaluation.Provider, tm.FineTunedModel)
	if ierr := r.p.cache.Invalidate(t.deps[0].id, reason); ierr != nil {
		return errors.Join(err, ierr)
	}
	return fmt.Errorf("model %s: %s (%w); its training is now stale: run `go run mage.go plan` to see what it costs, then train again", m.Name, reason, err)
}

// referenceUnknown reports, once for all its tasks and at its block, a
// reference model the evaluation provider does not know. Nothing here
// trained it, so there is no training to mark stale.
func (r *run) referenceUnknown(t *target, tm TrainedModel, err error) error {
	m := t.model
	if _, seen := r.gone.LoadOrStore(m.Name, true); seen {
		return errReported
	}
	what, fix := "model_id", "Set model_id to a model the provider serves."
	if m.BaseOnly {
		what, fix = "training.base_model (base_only = true)", "Set training.base_model to a model the provider serves."
	}
	return r.p.exp.Errorf(m.RefRange, "Unknown reference model",
		"Model %q: evaluation provider %q does not know model %s, its %s (%v). %s",
		m.Name, r.p.exp.Evaluation.Provider, tm.FineTunedModel, what, err, fix)
}

// evaluate asks the model every question, samples_per_question times, and
// has the judge score each answer. Every failed call's error, with its
// model, task and question, goes through check, which may stop the run; a
// stopped run (ctx cancelled) starts no more calls.
func (p *Pipeline) evaluate(ctx context.Context, t *target, tm TrainedModel, check func(error) error) (*report.Eval, error) {
	e := p.exp.Evaluation
	td := t.task
	kind := td.task.JudgeType
	if kind == "" {
		kind = judge.DefaultKind
	}
	now := p.now
	created := now().UTC().Truncate(time.Second)
	samples := make([]report.Sample, len(td.questions)*e.SamplesPerQuestion)
	errs := make([]error, len(td.questions))
	var wg sync.WaitGroup
	for qi, q := range td.questions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ctx.Err() != nil {
				errs[qi] = fmt.Errorf("question %d: %w", qi+1, context.Cause(ctx))
				return
			}
			seed := e.Seed
			asked := now().UTC()
			resp, err := p.answering.chat(ctx, provider.ChatRequest{
				Model:       tm.FineTunedModel,
				Messages:    []provider.Message{{Role: "user", Content: q}},
				Temperature: e.Temperature,
				MaxTokens:   e.MaxTokens,
				N:           e.SamplesPerQuestion,
				Seed:        &seed,
			})
			answered := now().UTC()
			if errors.Is(err, provider.ErrNotFound) {
				errs[qi] = &modelGoneError{err}
				return
			}
			if err != nil {
				check(fmt.Errorf("model %s, task %s, question %d: %w", t.model.Name, td.task.Name, qi+1, err))
				errs[qi] = fmt.Errorf("question %d: %w", qi+1, err)
				return
			}
			if len(resp.Choices) != e.SamplesPerQuestion {
				errs[qi] = fmt.Errorf("question %d: asked for %d samples, got %d", qi+1, e.SamplesPerQuestion, len(resp.Choices))
				return
			}
			// Each answer is judged twice, as in the paper: for the task's
			// trait, and for coherence by the 0..100 rule. Every judgement
			// of the question's answers is independent: all go at once, so
			// that a question takes two calls' time, not 1 + 2n.
			type judged struct {
				resp provider.ChatResponse
				call *report.Call
				err  error
			}
			trait := make([]judged, len(resp.Choices))
			coh := make([]judged, len(resp.Choices))
			var jwg sync.WaitGroup
			for si, c := range resp.Choices {
				jwg.Add(2)
				go func() {
					defer jwg.Done()
					j := &trait[si]
					j.resp, j.call, j.err = p.judge(ctx, kind.Request(e.JudgeModel, judge.Prompt(td.prompt, q, c.Content)))
				}()
				go func() {
					defer jwg.Done()
					j := &coh[si]
					j.resp, j.call, j.err = p.judge(ctx, judge.Request(e.JudgeModel, judge.Prompt(p.coherence, q, c.Content)))
				}()
			}
			jwg.Wait()
			for si, c := range resp.Choices {
				s := report.Sample{ID: fmt.Sprintf("q%03d", qi+1), Question: q, Epoch: si + 1, Answer: c.Content,
					AnswerCall: &report.Call{Started: asked, Completed: answered}}
				if si == 0 {
					// One call drew every sample of the question.
					s.AnswerCall.Usage = usage(resp)
				}
				for _, f := range []struct {
					name string
					err  error
				}{{"judge", trait[si].err}, {"coherence judge", coh[si].err}} {
					if f.err != nil {
						check(fmt.Errorf("model %s, task %s, question %d: %s: %w", t.model.Name, td.task.Name, qi+1, f.name, f.err))
						errs[qi] = fmt.Errorf("question %d: %s: %w", qi+1, f.name, f.err)
						return
					}
				}
				jr, cr := trait[si].resp, coh[si].resp
				s.JudgeCall, s.CoherenceCall = trait[si].call, coh[si].call
				if len(jr.Choices) > 0 {
					s.Judge = jr.Choices[0].TopLogprobs
					if !kind.Logprobs() {
						s.JudgeText = jr.Choices[0].Content
					}
					if v, ok := kind.Score(jr.Choices[0]); ok {
						s.Score = &v
					}
				}
				if len(cr.Choices) > 0 {
					s.CoherenceJudge = cr.Choices[0].TopLogprobs
					if v, ok := judge.Score(s.CoherenceJudge); ok {
						s.Coherence = &v
					}
				}
				samples[qi*e.SamplesPerQuestion+si] = s
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		var gone *modelGoneError
		if errors.As(err, &gone) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res := &report.Eval{
		Model: t.model.Name, ModelID: tm.FineTunedModel, Task: td.task.Name, Trait: td.task.Trait,
		JudgeModel: e.JudgeModel, JudgePrompt: td.prompt, Created: created, Completed: now().UTC(),
		Metric:    metric(samples, e.SamplesPerQuestion, traitScore, nil),
		Coherence: coherenceOf(samples, e.SamplesPerQuestion, p.coherence, e.CoherenceThreshold),
		Samples:   samples,
	}
	if kind != judge.DefaultKind {
		res.JudgeType = string(kind)
	}
	return res, nil
}

// usage is a response's token count, nil when the provider gave none.
func usage(r provider.ChatResponse) *provider.Usage {
	if r.Usage == (provider.Usage{}) {
		return nil
	}
	u := r.Usage
	return &u
}

// judge makes one judge call, timed, unless the run has stopped.
func (p *Pipeline) judge(ctx context.Context, req provider.ChatRequest) (provider.ChatResponse, *report.Call, error) {
	if err := ctx.Err(); err != nil {
		return provider.ChatResponse{}, nil, context.Cause(ctx)
	}
	started := p.now().UTC()
	resp, err := p.judging.chat(ctx, req)
	if err != nil {
		return resp, nil, err
	}
	return resp, &report.Call{Started: started, Completed: p.now().UTC(), Usage: usage(resp)}, nil
}

func traitScore(s report.Sample) *float64     { return s.Score }
func coherenceScore(s report.Sample) *float64 { return s.Coherence }

// metric summarises score over an evaluation's samples, laid out question by
// question, perQuestion of each, keeping only the samples keep accepts (all
// when nil). With more than one sample a question the standard error is also
// clustered by question, and that is the one reported; with one, the plain
// standard error is, and the metric has the original shape.
func metric(samples []report.Sample, perQuestion int, score func(report.Sample) *float64, keep func(report.Sample) bool) judge.Metric {
	perQuestion = max(perQuestion, 1)
	var all []*float64
	var questions [][]*float64
	for i := 0; i < len(samples); i += perQuestion {
		var q []*float64
		for _, s := range samples[i:min(i+perQuestion, len(samples))] {
			if keep == nil || keep(s) {
				q = append(q, score(s))
			}
		}
		all = append(all, q...)
		questions = append(questions, q)
	}
	if perQuestion == 1 {
		return judge.Summarise(all)
	}
	return judge.SummariseClustered(questions)
}

// coherenceOf summarises the samples' coherence judgements: the coherence
// score, the share of answers scored above threshold, and the trait score
// over those answers alone.
func coherenceOf(samples []report.Sample, perQuestion int, prompt string, threshold float64) *report.Coherence {
	coherent := func(s report.Sample) bool { return s.Coherent(threshold) }
	c := &report.Coherence{Prompt: prompt, Threshold: threshold,
		Metric: metric(samples, perQuestion, coherenceScore, nil),
		Trait:  metric(samples, perQuestion, traitScore, coherent)}
	for _, s := range samples {
		if coherent(s) {
			c.Coherent++
		}
	}
	if c.Metric.N > 0 {
		c.Share = float64(c.Coherent) / float64(c.Metric.N)
	}
	return c
}

// estimateSampling prices an evaluation's calls, answers and judgements,
// where their providers price calls by the token.
func (p *Pipeline) estimateSampling(ctx context.Context, t *target) (provider.Estimate, error) {
	e := p.exp.Evaluation
	var total provider.Estimate
	add := func(providerName string, req provider.SamplingEstimate) error {
		sp, ok := p.exp.Providers[providerName].Config.(provider.SamplingPricing)
		if !ok {
			return nil
		}
		req.Artifacts = p.opts.Artifacts
		est, err := sp.EstimateSampling(ctx, req)
		if err != nil {
			return fmt.Errorf("model %s, task %s: %w", t.model.Name, t.task.task.Name, err)
		}
		total.Tokens += est.Tokens
		total.USD += est.USD
		total.Priced = total.Priced || est.Priced
		return nil
	}
	var answers, judgements, coherence [][]provider.Message
	kind := t.task.task.JudgeType
	for _, q := range t.task.questions {
		answers = append(answers, []provider.Message{{Role: "user", Content: q}})
		for range e.SamplesPerQuestion {
			// The answer is not written yet: max_tokens stand in for it.
			judgements = append(judgements, kind.Request(e.JudgeModel, judge.Prompt(t.task.prompt, q, "")).Messages)
			coherence = append(coherence, judge.Request(e.JudgeModel, judge.Prompt(p.coherence, q, "")).Messages)
		}
	}
	// The judge writes one token, but for binary_text a reply of no set
	// length: the evaluation's max_tokens stand in for it.
	judgeOut := 1
	if kind != "" && !kind.Logprobs() {
		judgeOut = e.MaxTokens
	}
	if err := add(e.Provider, provider.SamplingEstimate{BaseModel: p.samplingBase(t.model), Prompts: answers,
		N: e.SamplesPerQuestion, MaxTokens: e.MaxTokens}); err != nil {
		return total, err
	}
	if err := add(e.JudgeProvider, provider.SamplingEstimate{BaseModel: e.JudgeModel, Prompts: judgements,
		PromptExtra: e.MaxTokens, N: 1, MaxTokens: judgeOut, Judge: true}); err != nil {
		return total, err
	}
	// The coherence judge answers every sample with one token too.
	err := add(e.JudgeProvider, provider.SamplingEstimate{BaseModel: e.JudgeModel, Prompts: coherence,
		PromptExtra: e.MaxTokens, N: 1, MaxTokens: 1, Judge: true})
	return total, err
}

// samplingBase is the base model a model's answers are priced at: the one
// it was trained from, else (a reference) training.base_model.
func (p *Pipeline) samplingBase(m *config.Model) string {
	if m.BaseModel != "" {
		return m.BaseModel
	}
	return p.exp.Training.BaseModel
}
