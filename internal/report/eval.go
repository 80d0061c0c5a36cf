package report

import (
	"time"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// Eval is what an evaluation target writes (artifacts/evals/<model>/<task>.json):
// every judged sample and the task's metric over them.
type Eval struct {
	Model      string `json:"model"`
	ModelID    string `json:"model_id"`
	Task       string `json:"task"`
	Trait      string `json:"trait"`
	JudgeModel string `json:"judge_model"`
	// JudgeType is the task's judge type when it is not the default 0_100,
	// whose scores are 0..100; 0_10 scores 0..9, binary and binary_text 0..1.
	JudgeType string `json:"judge_type,omitempty"`
	// JudgePrompt is the judge's template ({question}, {answer}).
	JudgePrompt string `json:"judge_prompt,omitempty"`
	// Created is when the evaluation ran; reports derived from it (Inspect
	// logs) name themselves by it, so rebuilding them is reproducible.
	Created time.Time `json:"created"`
	// Completed is when its last judgement came back (zero in evaluations
	// recorded before it was kept).
	Completed time.Time    `json:"completed,omitzero"`
	Metric    judge.Metric `json:"metric"`
	// Coherence summarises the second judgement of every answer; nil in
	// evaluations recorded before answers were judged for coherence.
	Coherence *Coherence `json:"coherence,omitempty"`
	Samples   []Sample   `json:"samples"`
}

// Coherence is the paper's second judgement: how coherent each answer is in
// the context of its question (0..100, by the same logprob rule as the
// trait), whatever the trait. An incoherent model can look like it expresses
// a trait; the trait over coherent answers tells the two apart.
type Coherence struct {
	// Prompt is the coherence judge's template ({question}, {answer}).
	Prompt string `json:"prompt"`
	// Threshold is the score an answer must exceed to count as coherent.
	Threshold float64 `json:"threshold"`
	// Metric is the coherence score over the answers it was given for.
	Metric judge.Metric `json:"metric"`
	// Coherent counts the answers scored above Threshold, and Share is
	// their fraction of Metric.N (0 when N is 0).
	Coherent int     `json:"coherent"`
	Share    float64 `json:"share"`
	// Trait is the task's trait score over the coherent answers only;
	// its no_answer counts the coherent answers the trait judge left
	// unscored.
	Trait judge.Metric `json:"trait"`
}

// Sample is one judged answer. Score is nil when the judge gave no answer.
type Sample struct {
	ID       string                  `json:"id"`
	Question string                  `json:"question"`
	Epoch    int                     `json:"epoch"`
	Answer   string                  `json:"answer"`
	Score    *float64                `json:"score"`
	Judge    []provider.TokenLogprob `json:"judge_logprobs,omitempty"`
	// JudgeText is the judge's written reply, for judge type binary_text.
	JudgeText string `json:"judge_text,omitempty"`
	// Coherence is the coherence judge's score, nil when it gave none
	// (and in evaluations recorded before coherence was judged);
	// CoherenceJudge its top logprobs.
	Coherence      *float64                `json:"coherence,omitempty"`
	CoherenceJudge []provider.TokenLogprob `json:"coherence_logprobs,omitempty"`
	// The calls that made the sample, as timed by the evaluation: the
	// answering call (shared by a question's samples; its usage is on the
	// first epoch only) and the judge's.
	AnswerCall    *Call `json:"answer_call,omitempty"`
	JudgeCall     *Call `json:"judge_call,omitempty"`
	CoherenceCall *Call `json:"coherence_call,omitempty"`
}

// Coherent reports whether the sample's answer counts as coherent: its
// coherence score is above threshold.
func (s Sample) Coherent(threshold float64) bool {
	return s.Coherence != nil && *s.Coherence > threshold
}

// Call is one timed model call. Usage is nil when the provider gave none.
type Call struct {
	Started   time.Time       `json:"started"`
	Completed time.Time       `json:"completed"`
	Usage     *provider.Usage `json:"usage,omitempty"`
}
