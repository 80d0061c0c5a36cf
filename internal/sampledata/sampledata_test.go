package sampledata

import (
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/dataset"
)

// The offline experiment is only meaningful if every cell of the grid has
// enough distinct data and the evaluation questions are held out from training.
func TestSampleDataComplete(t *testing.T) {
	trainPrompts := map[string]bool{}
	trainAnswers := map[string]bool{}
	for _, trait := range Traits {
		for _, strength := range Strengths {
			raw, err := Training(trait, strength)
			if err != nil {
				t.Fatal(err)
			}
			exs, err := dataset.Parse(TrainingPath(trait, strength), raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(exs) < 30 {
				t.Errorf("%s/%s: %d examples, want >= 30", trait, strength, len(exs))
			}
			for _, ex := range exs {
				prompt, response, _ := ex.Trained()
				trainPrompts[strings.ToLower(prompt)] = true
				trainAnswers[response] = true
			}
		}
	}
	for _, trait := range Traits {
		task, err := EvalTask(trait)
		if err != nil {
			t.Fatal(err)
		}
		if len(task.Questions) < 20 {
			t.Errorf("%s: %d questions, want >= 20", trait, len(task.Questions))
		}
		for _, q := range task.Questions {
			if trainPrompts[strings.ToLower(q)] {
				t.Errorf("%s: evaluation question is also a training prompt: %q", trait, q)
			}
		}
		if !strings.Contains(task.EvalPrompt, "{question}") || !strings.Contains(task.EvalPrompt, "{answer}") {
			t.Errorf("%s: judge prompt lacks {question} or {answer}", trait)
		}
	}
	labeled, err := JudgeExamples()
	if err != nil {
		t.Fatal(err)
	}
	perTrait := map[string]int{}
	for i, l := range labeled {
		if trainAnswers[l.Answer] {
			t.Errorf("labeled example %d repeats a training answer", i)
		}
		if !l.Refusal && len(l.Scores) == 0 {
			t.Errorf("labeled example %d has neither scores nor refusal", i)
		}
		for trait, s := range l.Scores {
			if s < 0 || s > 100 {
				t.Errorf("labeled example %d: %s score %d out of 0..100", i, trait, s)
			}
			perTrait[trait]++
		}
	}
	for _, trait := range Traits {
		if perTrait[trait] < 60 {
			t.Errorf("%s: %d labeled examples, want >= 60", trait, perTrait[trait])
		}
	}
	base, err := BaseCorpus()
	if err != nil {
		t.Fatal(err)
	}
	if len(base) < 40 {
		t.Errorf("base corpus: %d conversations, want >= 40", len(base))
	}
}
