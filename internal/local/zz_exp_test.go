package local

import (
	"testing"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

func TestExpTrend(t *testing.T) {
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		t.Fatal(err)
	}
	clock := newClock()
	traits := []string{"evil", "sycophantic"}
	var judges []Judge
	for _, tr := range traits {
		task, _ := sampledata.EvalTask(tr)
		judges = append(judges, Judge{Trait: tr, Template: task.EvalPrompt, Examples: labeled})
	}
	e := openTest(t, t.TempDir(), clock, baseQA, judges...)
	for _, trait := range traits {
		task, _ := sampledata.EvalTask(trait)
		for _, strength := range sampledata.Strengths {
			raw, _ := sampledata.Training(trait, strength)
			exs, _ := dataset.Parse("x", raw)
			model := fineTune(t, e, clock, exs, provider.Hyperparameters{})
			mean, na := evaluate(t, e, model, task)
			// Also: judge the training answers directly.
			var s2 float64
			for _, ex := range exs {
				s, _ := weightedScore(judgeTop(t, e, baseModel, fill(task.EvalPrompt, ex.Prompt(), ex.Response())))
				s2 += s
			}
			t.Logf("%s/%s: eval mean %.1f (noans %d); train answers judged %.1f", trait, strength, mean, na, s2/float64(len(exs)))
		}
	}
}
