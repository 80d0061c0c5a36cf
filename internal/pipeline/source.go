package pipeline

import (
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// Source supplies training data and evaluation tasks by trait and strength.
type Source interface {
	// ID identifies the data's origin and version; it enters build keys.
	ID() string
	Training(trait, strength string) ([]byte, error)
	Task(trait string) (sampledata.Task, error)
	// CoherencePrompt is the coherence judge's template, with {question}
	// and {answer} once each.
	CoherencePrompt() (string, error)
}

// SampleSource is the project's embedded offline data.
type SampleSource struct{}

func (SampleSource) ID() string { return "sample" }

func (SampleSource) Training(trait, strength string) ([]byte, error) {
	return sampledata.Training(trait, strength)
}

func (SampleSource) Task(trait string) (sampledata.Task, error) { return sampledata.EvalTask(trait) }

func (SampleSource) CoherencePrompt() (string, error) { return sampledata.CoherencePrompt(), nil }
