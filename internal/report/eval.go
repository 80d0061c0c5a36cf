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
	Samples   []Sample     `json:"samples"`
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
	// The calls that made the sample, as timed by the evaluation: the
	// answering call (shared by a question's samples; its usage is on the
	// first epoch only) and the judge's.
	AnswerCall *Call `json:"answer_call,omitempty"`
	JudgeCall  *Call `json:"judge_call,omitempty"`
}

// Call is one timed model call. Usage is nil when the provider gave none.
type Call struct {
	Started   time.Time       `json:"started"`
	Completed time.Time       `json:"completed"`
	Usage     *provider.Usage `json:"usage,omitempty"`
}
