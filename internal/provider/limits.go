package provider

// Limits are what a provider refuses outright, whatever the account: a
// build checks its experiment against them in plan, before anything is
// submitted, instead of learning them from a failed job after paying for
// the ones before it. Zero means no limit is known.
type Limits struct {
	// MaxN is the most choices one chat request may ask for
	// (samples_per_question).
	MaxN int
	// MinTrainingExamples is the fewest examples one training file may
	// hold.
	MinTrainingExamples int
}

// Limited is a capability of a Config that knows its Limits.
type Limited interface {
	Limits() Limits
}

// RubricChecker is a capability of a Config whose judge must be able to
// judge each rubric (the local engine's learns from labeled answers): plan
// asks it, without opening the provider, so that a trait it cannot judge is
// a located error instead of answers silently scored as refusals.
// CheckRubric returns a *RubricError.
type RubricChecker interface {
	CheckRubric(r Rubric) error
}

// JudgeVersioned is a capability of a Config whose judge is built from data
// that can change under an unchanged Identity (the local engine's labeled
// answers): JudgeVersion enters the keys of the evaluations it judges, so a
// changed judge re-judges them.
type JudgeVersioned interface {
	JudgeVersion() string
}

// OpenAI's documented limits, which the local engine and the servers that
// stand in for OpenAI enforce too: one source for every copy.
const (
	// OpenAIMaxN bounds n of a chat completion: [1, 128].
	OpenAIMaxN = 128
	// OpenAIMinTrainingExamples is the fewest examples a fine-tuning file
	// may hold (invalid_n_examples below it).
	OpenAIMinTrainingExamples = 10
)
