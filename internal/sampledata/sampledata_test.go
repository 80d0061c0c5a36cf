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
	// Coherence is learned from coherent answers and from incoherent ones of
	// every kind, so its labels must spread over the scale.
	var low, high int
	for _, l := range labeled {
		if s, ok := l.Scores[CoherenceTrait]; ok && s < 50 {
			low++
		} else if ok {
			high++
		}
	}
	if low < 60 || high < 60 {
		t.Errorf("coherence: %d labeled examples below 50 and %d at or above; want >= 60 each", low, high)
	}
	base, err := BaseCorpus()
	if err != nil {
		t.Fatal(err)
	}
	if len(base) < 40 {
		t.Errorf("base corpus: %d conversations, want >= 40", len(base))
	}
}

// The coherence rubric is filled like a trait rubric: by str.format-style
// placeholders, each once, between the format's markers.
func TestCoherencePrompt(t *testing.T) {
	p := CoherencePrompt()
	for _, s := range []string{"{question}", "{answer}"} {
		if strings.Count(p, s) != 1 {
			t.Errorf("coherence prompt holds %s %d times, want once", s, strings.Count(p, s))
		}
	}
	order := []string{"[QUESTION START]", "{question}", "[QUESTION END]", "[ANSWER START]", "{answer}", "[ANSWER END]"}
	at := -1
	for _, s := range order {
		i := strings.Index(p, s)
		if i <= at {
			t.Fatalf("coherence prompt: %s missing or out of order", s)
		}
		at = i
	}
	if !strings.Contains(strings.ToLower(p[:strings.Index(p, "[QUESTION START]")]), CoherenceTrait) {
		t.Error("coherence prompt does not name coherence before the question: a judge reading an unknown rubric could not tell its trait")
	}
}
