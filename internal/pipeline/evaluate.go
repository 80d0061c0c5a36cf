package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// Skipped is a model that could not be evaluated, and why.
type Skipped struct {
	Model, Reason string
}

// Evaluate scores every trained model on every task. Models whose training is
// not finished are skipped and returned with the reason. All stale
// evaluations run at once, their chat calls bounded by each provider's
// concurrency limit.
func (p *Pipeline) Evaluate(ctx context.Context) ([]Skipped, error) {
	var skipped []Skipped
	type job struct {
		model config.Model
		task  *taskData
		step  Step
		tm    TrainedModel
	}
	var jobs []job
	for _, m := range p.exp.Models {
		train, err := p.check(trainID(m.Name), p.trainInputs(m))
		if err != nil {
			return nil, err
		}
		if !train.Fresh {
			skipped = append(skipped, Skipped{m.Name, p.whyUntrained(m, train)})
			continue
		}
		tm, err := p.readTrained(m.Name)
		if err != nil {
			return nil, fmt.Errorf("model %s: %w", m.Name, err)
		}
		for _, t := range p.exp.Evaluation.Tasks {
			step, err := p.planEval(m, t, train)
			if err != nil {
				return nil, err
			}
			if !step.Fresh {
				jobs = append(jobs, job{m, p.tasks[t.Name], step, tm})
			}
		}
	}
	if len(jobs) == 0 {
		fmt.Fprintln(p.log, "evaluation: every trained model is up to date")
		return skipped, nil
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := p.evaluate(ctx, j.model, j.task, j.tm)
			if err == nil {
				err = p.commitEval(j.model, j.task, j.step, res)
			}
			if err != nil {
				errs[i] = fmt.Errorf("model %s, task %s: %w", j.model.Name, j.task.task.Name, err)
				return
			}
			m := res.Metric
			fmt.Fprintf(p.log, "eval %s/%s: %s score %.1f ± %.1f (n=%d, no answer %d)\n",
				j.model.Name, j.task.task.Name, j.task.task.Trait, m.Mean, m.Stderr, m.N, m.NoAnswer)
		}()
	}
	wg.Wait()
	return skipped, errors.Join(errs...)
}

func (p *Pipeline) whyUntrained(m config.Model, train Step) string {
	if rec, err := p.readJobRecord(train.inputs.Key()); err == nil && rec != nil {
		if rec.Status == provider.StatusFailed && rec.Error != nil {
			return fmt.Sprintf("job %s failed: %s", rec.JobID, rec.Error.Error())
		}
		return fmt.Sprintf("job %s is %s", rec.JobID, rec.Status)
	}
	return "training is not done (" + train.Reason + "); run train first"
}

func (p *Pipeline) commitEval(m config.Model, t *taskData, step Step, res *report.Eval) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	_, err = p.store.Commit(step.Target, step.inputs, map[string][]byte{evalOut(m.Name, t.task.Name): append(b, '\n')})
	return err
}

// evaluate asks the model every question, samples_per_question times, and
// has the judge score each answer.
func (p *Pipeline) evaluate(ctx context.Context, m config.Model, t *taskData, tm TrainedModel) (*report.Eval, error) {
	e := p.exp.Evaluation
	created := time.Now().UTC().Truncate(time.Second)
	samples := make([]report.Sample, len(t.questions)*e.SamplesPerQuestion)
	errs := make([]error, len(t.questions))
	var wg sync.WaitGroup
	for qi, q := range t.questions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seed := e.Seed
			resp, err := p.answering.chat(ctx, provider.ChatRequest{
				Model:       tm.FineTunedModel,
				Messages:    []provider.Message{{Role: "user", Content: q}},
				Temperature: e.Temperature,
				MaxTokens:   e.MaxTokens,
				N:           e.SamplesPerQuestion,
				Seed:        &seed,
			})
			if err != nil {
				errs[qi] = fmt.Errorf("question %d: %w", qi+1, err)
				return
			}
			if len(resp.Choices) != e.SamplesPerQuestion {
				errs[qi] = fmt.Errorf("question %d: asked for %d samples, got %d", qi+1, e.SamplesPerQuestion, len(resp.Choices))
				return
			}
			for si, c := range resp.Choices {
				jr, err := p.judging.chat(ctx, judge.Request(e.JudgeModel, judge.Prompt(t.prompt, q, c.Content)))
				if err != nil {
					errs[qi] = fmt.Errorf("question %d: judge: %w", qi+1, err)
					return
				}
				s := report.Sample{ID: fmt.Sprintf("q%03d", qi+1), Question: q, Epoch: si + 1, Answer: c.Content}
				if len(jr.Choices) > 0 {
					s.Judge = jr.Choices[0].TopLogprobs
					if v, ok := judge.Score(s.Judge); ok {
						s.Score = &v
					}
				}
				samples[qi*e.SamplesPerQuestion+si] = s
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	scores := make([]*float64, len(samples))
	for i, s := range samples {
		scores[i] = s.Score
	}
	return &report.Eval{
		Model: m.Name, ModelID: tm.FineTunedModel, Task: t.task.Name, Trait: t.task.Trait,
		JudgeModel: e.JudgeModel, Created: created, Metric: judge.Summarise(scores), Samples: samples,
	}, nil
}
