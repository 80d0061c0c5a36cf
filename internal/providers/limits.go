package providers

import (
	"fmt"

	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// What each kind refuses, for plan to check before anything is submitted.

// Limits implements provider.Limited: the local engine refuses what OpenAI
// refuses, as it stands in for it.
func (c *localConfig) Limits() provider.Limits {
	return provider.Limits{MaxN: provider.OpenAIMaxN, MinTrainingExamples: provider.OpenAIMinTrainingExamples}
}

// CheckRubric implements provider.RubricChecker: the local judge learns a
// rubric from the project's labeled answers, which score three traits only,
// and answers with the top logprobs of 0..100 scores and REFUSAL: the judge
// type 0_100 only.
func (c *localConfig) CheckRubric(r provider.Rubric) error {
	if r.JudgeType != "" && r.JudgeType != "0_100" {
		return &provider.RubricError{Trait: r.Trait, Err: fmt.Errorf("%w: its judge answers with the logprobs of 0..100 scores only", provider.ErrJudgeType)}
	}
	labeled, err := sampledata.JudgeExamples()
	if err == nil {
		err = local.CheckJudge(local.Judge{Trait: r.Trait, Template: r.Template, Examples: labeled})
	}
	if err != nil {
		return &provider.RubricError{Trait: r.Trait, Err: err}
	}
	return nil
}

// Limits implements provider.Limited with OpenAI's documented limits; an
// OpenAI-compatible server that allows more is held to them too.
func (c *openaiConfig) Limits() provider.Limits {
	return provider.Limits{MaxN: provider.OpenAIMaxN, MinTrainingExamples: provider.OpenAIMinTrainingExamples}
}

// Limits implements provider.Limited: at most 128 samples a request, the
// bound internal/tinkerserver keeps (Tinker documents none); the client
// drives training, so no minimum of examples applies.
func (c *tinkerConfig) Limits() provider.Limits {
	return provider.Limits{MaxN: provider.OpenAIMaxN}
}
