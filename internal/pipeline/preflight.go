package pipeline

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// preflight checks the experiment against what its providers will refuse,
// before plan says anything and before a building command submits anything:
// every problem comes back at once, located in experiment.hcl. It asks no
// service and writes nothing.
func (p *Pipeline) preflight() error {
	var diags hcl.Diagnostics
	add := func(rng hcl.Range, summary, detail string, args ...any) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary,
			Detail: fmt.Sprintf(detail, args...), Subject: rng.Ptr()})
	}
	t, e := p.exp.Training, p.exp.Evaluation
	if lim, ok := p.exp.Providers[e.Provider].Config.(provider.Limited); ok {
		if max := lim.Limits().MaxN; max > 0 && e.SamplesPerQuestion > max {
			add(e.SamplesPerQuestionRange, "Too many samples per question",
				"samples_per_question = %d: provider %q answers at most %d samples a question (n in [1, %d]); every evaluation would fail after training. Set samples_per_question to %d or less.",
				e.SamplesPerQuestion, e.Provider, max, max, max)
		}
	}
	if lim, ok := p.exp.Providers[t.Provider].Config.(provider.Limited); ok {
		l := lim.Limits()
		// Models whose files are too small, by the place that decides their
		// size: sample_size for all of them, or each model's dataset.
		type bad struct {
			rng    hcl.Range
			models []string
			n      int
		}
		var few []*bad
		for _, m := range p.exp.Models {
			if m.IsReference() {
				continue
			}
			// The count from the raw file's lines: no parse for a no-op.
			n := p.datasets[m.Name].planned
			if l.MinTrainingExamples <= 0 || n >= l.MinTrainingExamples {
				continue
			}
			rng := m.DatasetRange
			if m.SampleSize > 0 {
				rng = m.SampleSizeRange // the training block's, a grid's sample_sizes, or the model's
			}
			if i := slices.IndexFunc(few, func(b *bad) bool { return b.rng == rng }); i >= 0 {
				few[i].models, few[i].n = append(few[i].models, m.Name), max(few[i].n, n)
			} else {
				few = append(few, &bad{rng, []string{m.Name}, n})
			}
		}
		for _, b := range few {
			add(b.rng, "Too few training examples",
				"model %s would train on %d examples or fewer, but provider %q requires at least %d (its jobs would fail invalid_n_examples).",
				strings.Join(b.models, ", "), b.n, t.Provider, l.MinTrainingExamples)
		}
	}
	if rc, ok := p.exp.Providers[e.JudgeProvider].Config.(provider.RubricChecker); ok {
		for _, task := range e.Tasks {
			err := rc.CheckRubric(provider.Rubric{Trait: task.Trait, Template: p.tasks[task.Name].prompt, JudgeType: string(task.JudgeType)})
			var re *provider.RubricError
			if errors.As(err, &re) && errors.Is(err, provider.ErrJudgeType) {
				add(task.JudgeTypeRange, "No "+e.JudgeProvider+" judge for judge_type "+string(task.JudgeType),
					"Task %q: provider %q cannot judge with judge_type %q (%v). Use judge_type \"0_100\", or judge this task with another provider: set evaluation.judge_provider to an OpenAI-compatible one.",
					task.Name, e.JudgeProvider, task.JudgeType, re.Err)
			} else if errors.As(err, &re) {
				diags = append(diags, p.rubricDiag(e.JudgeProvider, task.TraitRange, re))
			} else if err != nil {
				add(task.TraitRange, "Unusable judge provider", "Provider %q: %v.", e.JudgeProvider, err)
			}
		}
		var re *provider.RubricError
		if err := rc.CheckRubric(p.coherenceRubric()); errors.As(err, &re) {
			diags = append(diags, p.rubricDiag(e.JudgeProvider, p.rubricRange(re.Trait), re))
		} else if err != nil {
			add(e.CoherencePromptRange, "Unusable judge provider", "Provider %q: %v.", e.JudgeProvider, err)
		}
	}
	return p.exp.AsError(diags)
}

// rubrics are the judge prompts of the experiment's tasks, then the
// coherence judge's.
func (p *Pipeline) rubrics() []provider.Rubric {
	var rs []provider.Rubric
	for _, t := range p.exp.Evaluation.Tasks {
		rs = append(rs, provider.Rubric{Trait: t.Trait, Template: p.tasks[t.Name].prompt, JudgeType: string(t.JudgeType)})
	}
	return append(rs, p.coherenceRubric())
}

func (p *Pipeline) coherenceRubric() provider.Rubric {
	return provider.Rubric{Trait: config.CoherenceTrait, Template: p.coherence}
}

// rubricRange is where the rubric of trait comes from: the first task of the
// trait, or for coherence the coherence prompt's place.
func (p *Pipeline) rubricRange(trait string) hcl.Range {
	e := p.exp.Evaluation
	if trait == config.CoherenceTrait {
		return e.CoherencePromptRange
	}
	for _, t := range e.Tasks {
		if t.Trait == trait {
			return t.TraitRange
		}
	}
	return e.ProviderRange
}

// rubricDiag says, at the task that asks for it, that a provider cannot
// judge a trait.
func (p *Pipeline) rubricDiag(name string, rng hcl.Range, re *provider.RubricError) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No " + name + " judge for trait " + re.Trait,
		Detail: fmt.Sprintf("Provider %q cannot judge trait %q (%v). Judge this task with another provider: set evaluation.judge_provider to an OpenAI-compatible one.",
			name, re.Trait, re.Err),
		Subject: rng.Ptr()}
}
