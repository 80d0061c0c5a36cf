package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Kind is one kind of provider ("local", "openai", ...). It decodes the
// settings of a provider block of its kind and checks them before anything
// runs.
type Kind interface {
	Decode(s Settings) (Config, hcl.Diagnostics)
}

// Settings is a provider block as the experiment file declares it.
type Settings struct {
	Name string
	// Body holds the kind's own attributes; nil for a built-in provider the
	// file does not declare, which takes the kind's defaults.
	Body    hcl.Body
	EvalCtx *hcl.EvalContext // env() and friends
	Range   hcl.Range
	// Getenv reads the environment for a kind's defaults (an API key from
	// OPENAI_API_KEY, say).
	Getenv func(string) string
	// Dir is the experiment file's folder: a relative path a kind's
	// settings name resolves from it (see inputfile.Resolve).
	Dir string
}

// Config is a decoded provider, ready to open.
type Config interface {
	// Identity distinguishes one provider's models from another's: its kind,
	// endpoint and the account (organization, project) that owns what it
	// trains; never a secret. It enters the keys of what the provider builds.
	Identity() string
	// Open connects. It is called only by commands that use the provider.
	Open(ctx context.Context, env Env) (*Conn, error)
}

// Pricing is a capability of a Config that knows what it charges, so that
// plan can price a build and train can keep to its budget.
type Pricing interface {
	// Free reports that nothing the provider does costs money: no budget
	// applies and its responses need no cache.
	Free() bool
	// EstimateTraining prices one training before anything is submitted.
	EstimateTraining(ctx context.Context, req EstimateRequest) (Estimate, error)
}

// EstimateRequest is a training to price.
type EstimateRequest struct {
	BaseModel string
	Data      []byte // chat JSON lines
	Epochs    int
	// Overrides are the experiment's prices per 1M training tokens by base model.
	Overrides map[string]float64
	// Artifacts is where a provider may cache what counting needs (a
	// tokenizer); the pricing of a plan writes nothing else.
	Artifacts string
}

// SamplingPricing is a capability of a Config that charges for chat calls
// by the token, so that plan can say what evaluating will cost.
type SamplingPricing interface {
	// EstimateSampling prices calls at most: every prompt as the provider
	// would send it, and MaxTokens generated for each of N samples.
	EstimateSampling(ctx context.Context, req SamplingEstimate) (Estimate, error)
}

// SamplingEstimate is a set of chat calls to price.
type SamplingEstimate struct {
	BaseModel string      // the model whose rates apply (a trained adapter samples at its base's)
	Prompts   [][]Message // one conversation per call
	// PromptExtra is tokens each prompt will have beyond its messages (the
	// answer a judge prompt quotes, not written yet).
	PromptExtra int
	N           int // samples per call
	MaxTokens   int // generated per sample, at most
	Judge       bool
	Artifacts   string
}

// TrainingSettings is a capability of a Config whose own settings change
// what it trains (a LoRA rank, a learning-rate schedule, the tokenizer):
// they enter the training targets' keys, and theirs only, so that changing
// one retrains without re-judging anything. It may fetch what it needs to
// say (a tokenizer, cached under artifacts).
type TrainingSettings interface {
	TrainingSettings(ctx context.Context, artifacts, baseModel string) (string, error)
}

// Env is what Open gets from the build.
type Env struct {
	Name      string // the provider's name in the experiment
	Artifacts string // the artifacts directory: records and local state live under it
	// Rubrics are the experiment's judge prompts; a judge that must learn
	// a rubric (the local engine's) learns these.
	Rubrics []Rubric
	// BaseModels are the base models the experiment names (the training
	// base, the judge), for a provider that must know them in advance.
	BaseModels []string
	Log        io.Writer
}

// Rubric is a judge prompt for a trait, with {question} and {answer}.
type Rubric struct {
	Trait    string
	Template string
	// JudgeType is the task's judge type (judge_type: "0_100", "0_10",
	// "binary" or "binary_text"); empty is "0_100".
	JudgeType string
}

// ErrJudgeType, wrapped in a RubricError, says a provider's judge cannot
// answer in the way a task's judge type asks; the build reports it at the
// task's judge_type.
var ErrJudgeType = errors.New("judge type not served")

// RubricError says a provider cannot judge a trait; the build reports it at
// the task that asks for the trait.
type RubricError struct {
	Trait string
	Err   error
}

func (e *RubricError) Error() string { return fmt.Sprintf("cannot judge trait %q: %v", e.Trait, e.Err) }
func (e *RubricError) Unwrap() error { return e.Err }

// Conn is an opened provider.
type Conn struct {
	Sampler Sampler
	Trainer Trainer // nil when the provider cannot train
	// Close releases the connection; nil when there is nothing to release.
	Close func() error
}

// Registry maps kind names to kinds. Every registered kind is also a
// built-in provider of the same name with the kind's default settings.
type Registry map[string]Kind

// Names lists the registered kinds, sorted, for messages.
func (r Registry) Names() string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, fmt.Sprintf("%q", n))
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Estimate is the expected bill of one training.
type Estimate struct {
	Tokens int     // per epoch
	Epochs int     //
	USD    float64 // 0 when Priced is false
	Priced bool    // false: no price is known for the base model
	Free   bool    // the provider charges nothing
}

func (e Estimate) String() string {
	switch {
	case e.Free:
		return "free"
	case !e.Priced:
		return fmt.Sprintf("%d tokens x %d epochs, price unknown", e.Tokens, e.Epochs)
	}
	return fmt.Sprintf("%d tokens x %d epochs = $%.2f", e.Tokens, e.Epochs, e.USD)
}
