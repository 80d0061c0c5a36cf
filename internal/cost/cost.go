// Package cost estimates what a fine-tune will be billed before it is
// submitted: training tokens counted offline with the o200k_base vocabulary
// (what gpt-4o and gpt-4.1 use) times epochs times the price per 1M tokens.
package cost

import (
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// TrainingPricePerMillion is OpenAI's standard fine-tuning price in USD per
// 1M training tokens (developers.openai.com pricing, as of 2026-11).
// experiment.hcl can override or extend it with price_per_million_tokens.
var TrainingPricePerMillion = map[string]float64{
	"gpt-4.1-2025-04-14":      25.0,
	"gpt-4.1-mini-2025-04-14": 5.0,
	"gpt-4.1-nano-2025-04-14": 1.5,
	"gpt-4o-2024-08-06":       25.0,
	"gpt-4o-mini-2024-07-18":  3.0,
}

// TinkerTrainPricePerMillion is Tinker's training price in USD per 1M
// tokens (forward and backward) by base model. Tinker's own price table is
// rendered client-side and could not be read; these come from a January
// 2026 third-party transcription and are unverified (see README).
// experiment.hcl can override them with price_per_million_tokens.
var TinkerTrainPricePerMillion = map[string]float64{
	"Qwen/Qwen3-8B":               0.40,
	"Qwen/Qwen3-4B-Instruct-2507": 0.22,
}

// Rates is a price per 1M tokens of prompt (prefill) and of generation.
type Rates struct{ Prefill, Sample float64 }

// TinkerSamplingPricePerMillion is Tinker's sampling price in USD per 1M
// tokens by base model, from the same unverified January 2026 transcription.
var TinkerSamplingPricePerMillion = map[string]Rates{
	"Qwen/Qwen3-8B":               {Prefill: 0.13, Sample: 0.40},
	"Qwen/Qwen3-4B-Instruct-2507": {Prefill: 0.07, Sample: 0.22},
}

// OpenAISamplingPricePerMillion is OpenAI's standard chat price in USD per
// 1M input and output tokens (its published pricing, 2025-26), what a judge
// pays; OpenAIFineTunedSamplingPricePerMillion is what a model fine-tuned
// from the base model pays, which is higher. Neither is checked against an
// account: plan says "at most" with them.
var (
	OpenAISamplingPricePerMillion = map[string]Rates{
		"gpt-4.1-2025-04-14":      {Prefill: 2.00, Sample: 8.00},
		"gpt-4.1-mini-2025-04-14": {Prefill: 0.40, Sample: 1.60},
		"gpt-4.1-nano-2025-04-14": {Prefill: 0.10, Sample: 0.40},
		"gpt-4o-2024-08-06":       {Prefill: 2.50, Sample: 10.00},
		"gpt-4o-mini-2024-07-18":  {Prefill: 0.15, Sample: 0.60},
	}
	OpenAIFineTunedSamplingPricePerMillion = map[string]Rates{
		"gpt-4.1-2025-04-14":      {Prefill: 3.00, Sample: 12.00},
		"gpt-4.1-mini-2025-04-14": {Prefill: 0.80, Sample: 3.20},
		"gpt-4.1-nano-2025-04-14": {Prefill: 0.20, Sample: 0.80},
		"gpt-4o-2024-08-06":       {Prefill: 3.75, Sample: 15.00},
		"gpt-4o-mini-2024-07-18":  {Prefill: 0.30, Sample: 1.20},
	}
)

// Chat formatting adds a few tokens per message and per conversation; these
// are the counts OpenAI documents for its chat models.
const (
	tokensPerMessage      = 3
	tokensPerConversation = 3
)

// ConversationTokens counts a conversation as OpenAI bills chat: each
// message's role and content plus framing, and the priming of the reply.
func ConversationTokens(msgs []provider.Message) (int, error) {
	total := tokensPerConversation
	for _, m := range msgs {
		content, err := Tokens(m.Content)
		if err != nil {
			return 0, err
		}
		role, err := Tokens(m.Role)
		if err != nil {
			return 0, err
		}
		total += tokensPerMessage + role + content
	}
	return total, nil
}

// TrainingTokens counts the tokens one epoch over examples is billed for.
func TrainingTokens(examples []dataset.Example) (int, error) {
	total := 0
	for _, ex := range examples {
		n, err := ConversationTokens(ex.Messages)
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

// Training estimates the cost of fine-tuning model on OpenAI for epochs
// over tokens. overrides take precedence over the built-in table.
func Training(model string, tokens, epochs int, overrides map[string]float64) provider.Estimate {
	return priced(TrainingPricePerMillion, model, tokens, epochs, overrides)
}

// TinkerTraining is Training at Tinker's prices.
func TinkerTraining(model string, tokens, epochs int, overrides map[string]float64) provider.Estimate {
	return priced(TinkerTrainPricePerMillion, model, tokens, epochs, overrides)
}

func priced(table map[string]float64, model string, tokens, epochs int, overrides map[string]float64) provider.Estimate {
	e := provider.Estimate{Tokens: tokens, Epochs: epochs}
	price, ok := overrides[model]
	if !ok {
		price, ok = table[model]
	}
	if ok {
		e.USD = float64(tokens) * float64(epochs) * price / 1e6
		e.Priced = true
	}
	return e
}

// OpenAISampling prices chat calls on OpenAI: prompt tokens at the input
// rate and generated ones at the output rate of model, at fine-tuned rates
// when the calls go to a model fine-tuned from it. Unknown models are
// counted but not priced.
func OpenAISampling(model string, fineTuned bool, prompt, generated int) provider.Estimate {
	e := provider.Estimate{Tokens: prompt + generated}
	table := OpenAISamplingPricePerMillion
	if fineTuned {
		table = OpenAIFineTunedSamplingPricePerMillion
	}
	if r, ok := table[model]; ok {
		e.USD = (float64(prompt)*r.Prefill + float64(generated)*r.Sample) / 1e6
		e.Priced = true
	}
	return e
}
