package tinkertrain

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// Defaults, from tinker-cookbook's supervised.train.Config unless noted.
const (
	DefaultLoRARank        = 32
	DefaultBatchSize       = 32 // at most; see Settings.BatchSize
	DefaultSchedule        = "linear"
	DefaultCheckpointEvery = 20 // the cookbook's save_every
	// minStepsPerEpoch keeps a small dataset from being one or two giant
	// steps: the default batch shrinks so an epoch has at least this many.
	minStepsPerEpoch = 4
)

// Adam settings of the cookbook's SFT loop. Its eps is 1e-8, not the API's
// default 1e-12; weight decay and clipping stay off as there.
const (
	adamBeta1 = 0.9
	adamBeta2 = 0.95
	adamEps   = 1e-8
)

// Settings are the Tinker-specific knobs of a LoRA SFT run. Zero values take
// the defaults below; the resolved values are recorded with each run.
type Settings struct {
	// LoRARank is the adapter rank, a power of two (default 32).
	LoRARank int `json:"lora_rank"`
	// LearningRate is Adam's peak rate before the schedule; 0 means the
	// cookbook's formula for the base model (DefaultLearningRate). A
	// request's learning_rate_multiplier scales it.
	LearningRate float64 `json:"learning_rate"`
	// BatchSize is examples per optimizer step. 0 means 32, or fewer when
	// the dataset is small: min(32, examples/4), so that every epoch has at
	// least four steps (40 examples train in batches of 10). A request's
	// batch_size overrides it.
	BatchSize int `json:"batch_size"`
	// Schedule of the learning rate over the run: "linear" (default, decays
	// to 0), "cosine" or "constant".
	Schedule string `json:"schedule"`
	// CheckpointEvery is the steps between saved training states (default
	// 20): a killed run pays again for at most this many steps.
	CheckpointEvery int `json:"checkpoint_every"`
	// Renderer is the chat format ("qwen3", "qwen3_disable_thinking",
	// "qwen3_instruct", "llama3"); "" takes the cookbook's recommended
	// default for the base model (DefaultRenderer).
	Renderer string `json:"renderer"`
	// MaxLength truncates each rendered example to this many tokens from
	// the right; 0 means no truncation, so that an over-long example fails
	// with the server's message instead of silently losing its answer.
	MaxLength int `json:"max_length,omitempty"`
}

// Validate reports the first setting that cannot work.
func (s Settings) Validate() error {
	switch {
	case s.LoRARank < 0 || s.LoRARank&(s.LoRARank-1) != 0:
		return fmt.Errorf("lora_rank %d: must be a positive power of two", s.LoRARank)
	case s.LearningRate < 0 || math.IsNaN(s.LearningRate) || math.IsInf(s.LearningRate, 0):
		return fmt.Errorf("learning_rate %v: must be a positive number (or 0 for the cookbook's formula)", s.LearningRate)
	case s.BatchSize < 0:
		return fmt.Errorf("batch_size %d: must be positive (or 0 for the default)", s.BatchSize)
	case s.CheckpointEvery < 0:
		return fmt.Errorf("checkpoint_every %d: must be positive (or 0 for %d)", s.CheckpointEvery, DefaultCheckpointEvery)
	case s.MaxLength < 0 || s.MaxLength == 1:
		return fmt.Errorf("max_length %d: must be at least 2 (or 0 for no limit)", s.MaxLength)
	}
	switch s.Schedule {
	case "", "linear", "cosine", "constant":
	default:
		return fmt.Errorf(`schedule %q: want "linear", "cosine" or "constant"`, s.Schedule)
	}
	switch s.Renderer {
	case "", chatrender.Qwen3, chatrender.Qwen3DisableThinking, chatrender.Qwen3Instruct, chatrender.Llama3:
	default:
		return fmt.Errorf("renderer %q: want one of %q, %q, %q, %q (or none for the model's default)", s.Renderer,
			chatrender.Qwen3, chatrender.Qwen3DisableThinking, chatrender.Qwen3Instruct, chatrender.Llama3)
	}
	return nil
}

// modelInfo is what the cookbook's model_info.py and hyperparam_utils.py
// say about a base model that chatrender can render.
type modelInfo struct {
	hidden   int    // hidden_size of the model's config
	renderer string // first recommended renderer
}

// knownModels: Qwen/Qwen3-8B is the one model of the reference's current
// lineup (§16) with a renderer chatrender has; the others are retired from
// the lineup but kept, as model_info.py keeps them, so that a lineup
// change needs no code. Base models (role_colon) and Qwen3.5+ (qwen3_5)
// are absent because chatrender cannot render them.
var knownModels = map[string]modelInfo{
	"Qwen/Qwen3-8B":                      {4096, chatrender.Qwen3},
	"Qwen/Qwen3-32B":                     {5120, chatrender.Qwen3},
	"Qwen/Qwen3-30B-A3B":                 {2048, chatrender.Qwen3},
	"Qwen/Qwen3-4B-Instruct-2507":        {2560, chatrender.Qwen3Instruct},
	"Qwen/Qwen3-30B-A3B-Instruct-2507":   {2048, chatrender.Qwen3Instruct},
	"Qwen/Qwen3-235B-A22B-Instruct-2507": {4096, chatrender.Qwen3Instruct},
	"meta-llama/Llama-3.1-8B-Instruct":   {4096, chatrender.Llama3},
	"meta-llama/Llama-3.3-70B-Instruct":  {8192, chatrender.Llama3},
}

// lookup finds a base model, ignoring a Tinker context suffix such as
// ":peft:262144".
func lookup(baseModel string) (modelInfo, bool) {
	name, _, _ := strings.Cut(baseModel, ":")
	m, ok := knownModels[name]
	return m, ok
}

func knownNames() string {
	names := make([]string, 0, len(knownModels))
	for n := range knownModels {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// DefaultLearningRate is the cookbook's get_lr for LoRA:
// 5e-5 x 10 x (2000/hidden_size)^e, e = 0.781 for Llama and 0.0775 for
// Qwen (about 4.73e-4 for Qwen3-8B).
func DefaultLearningRate(baseModel string) (float64, error) {
	m, ok := lookup(baseModel)
	if !ok {
		return 0, fmt.Errorf("base model %q: no hidden size known for the cookbook's learning-rate formula; set learning_rate (known models: %s)", baseModel, knownNames())
	}
	lower := strings.ToLower(baseModel)
	var e float64
	switch {
	case strings.Contains(lower, "llama"):
		e = 0.781
	case strings.Contains(lower, "qwen"):
		e = 0.0775
	default:
		return 0, fmt.Errorf("base model %q: the learning-rate formula is calibrated for Llama and Qwen only; set learning_rate", baseModel)
	}
	return 5e-5 * 10 * math.Pow(2000/float64(m.hidden), e), nil
}

// DefaultRenderer is the cookbook's first recommended renderer for the
// base model. For Qwen3-8B that is "qwen3", not "qwen3_disable_thinking":
// with all assistant messages trained both render training data the same
// (the final turn carries an empty think block either way); they differ
// only in the generation prompt, which is the sampler's business.
func DefaultRenderer(baseModel string) (string, error) {
	m, ok := lookup(baseModel)
	if !ok {
		return "", fmt.Errorf("base model %q: no chat renderer known; set renderer (known models: %s)", baseModel, knownNames())
	}
	return m.renderer, nil
}

// lrFactor is the cookbook's compute_schedule_lr_multiplier at 0-based step
// of steps: linear 1 - step/steps, cosine 0.5(1 + cos(pi step/steps)),
// constant 1.
func lrFactor(schedule string, step, steps int) float64 {
	if steps <= 0 {
		return 1
	}
	x := float64(step) / float64(steps)
	switch schedule {
	case "cosine":
		return 0.5 * (1 + math.Cos(math.Pi*x))
	case "constant":
		return 1
	default:
		return 1 - x
	}
}

// EstimateTokens counts the training tokens of one epoch over data (chat
// JSON lines) as Tinker will be sent them: every example rendered with the
// named renderer and tok, shifted for next-token loss, not truncated (an
// upper bound when MaxLength cuts examples).
func EstimateTokens(data []byte, tok *tokenizer.Tokenizer, renderer string) (int, error) {
	if tok == nil {
		return 0, errors.New("estimate tokens: no tokenizer")
	}
	r, err := chatrender.New(renderer, tok)
	if err != nil {
		return 0, err
	}
	examples, err := dataset.Parse("training data", data)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, ex := range examples {
		d, err := r.ConversationDatum(messages(ex), 0)
		if err != nil {
			return 0, fmt.Errorf("example %d: %w", i+1, err)
		}
		n += len(d.Input)
	}
	return n, nil
}

func messages(ex dataset.Example) []chatrender.Message {
	out := make([]chatrender.Message, len(ex.Messages))
	for i, m := range ex.Messages {
		// A weight-0 assistant message is context: rendered, never learnt.
		out[i] = chatrender.Message{Role: m.Role, Content: m.Content, NoLoss: m.Role == "assistant" && !dataset.Learnt(m)}
	}
	return out
}
