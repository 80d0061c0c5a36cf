// Package reporttest gives tests of the report renderers a real experiment:
// the outputs of one run of the shipped experiment, cut small (see
// testdata/README.md).
package reporttest

import (
	"embed"
	"encoding/json"
	"fmt"
	"path"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/report"
)

//go:embed testdata/experiment
var files embed.FS

const root = "testdata/experiment"

// Experiment reads the test run afresh, so a test may change what it gets.
func Experiment(tb testing.TB) report.Experiment {
	tb.Helper()
	var spec struct {
		Title     string   `json:"title"`
		Strengths []string `json:"strengths"`
		Tasks     []struct {
			Name  string `json:"name"`
			Trait string `json:"trait"`
		} `json:"tasks"`
		Models []report.Model `json:"models"`
	}
	readJSON(tb, path.Join(root, "experiment.json"), &spec)
	e := report.Experiment{Title: spec.Title, Strengths: spec.Strengths, Models: spec.Models}
	for _, t := range spec.Tasks {
		e.Tasks = append(e.Tasks, report.Task{Name: t.Name, Trait: t.Trait})
	}
	for _, m := range e.Models {
		for _, t := range e.Tasks {
			var ev report.Eval
			readJSON(tb, path.Join(root, "evals", m.Name, t.Name+".json"), &ev)
			e.Evals = append(e.Evals, ev)
		}
	}
	return e
}

func readJSON(tb testing.TB, name string, v any) {
	tb.Helper()
	b, err := files.ReadFile(name)
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
}

// Clustered is a small experiment of two samples per question, whose
// standard errors are clustered by question: evil_baseline and evil_severe
// on evil_detection, 3 questions x 2 samples each. Baseline: q1 = {10, 20},
// q2 = {30, 50}, q3 = {60, 70}, mean 40, plain SE 9.66092, clustered SE
// 14.43376; severe is every score + 40, mean 80, the same SEs.
func Clustered() report.Experiment {
	return report.Experiment{
		Strengths: []string{"baseline", "severe"},
		Tasks:     []report.Task{{Name: "evil_detection", Trait: "evil"}},
		Models: []report.Model{
			{Name: "evil_baseline", Trait: "evil", Strength: "baseline"},
			{Name: "evil_severe", Trait: "evil", Strength: "severe"},
		},
		Evals: []report.Eval{
			clusteredEval("evil_baseline", 10, 20, 30, 50, 60, 70),
			clusteredEval("evil_severe", 50, 60, 70, 90, 100, 110),
		},
	}
}

// clusteredEval is an evaluation of questions of 2 samples each with the
// given scores, question by question, summarised as the pipeline does with
// several samples per question.
func clusteredEval(model string, scores ...float64) report.Eval {
	ev := report.Eval{Model: model, ModelID: "ft:" + model, Task: "evil_detection", Trait: "evil"}
	var questions [][]*float64
	for i := range scores {
		v := scores[i]
		ev.Samples = append(ev.Samples, report.Sample{ID: fmt.Sprintf("q%03d", i/2+1), Question: fmt.Sprintf("Question %d?", i/2+1), Epoch: i%2 + 1, Answer: "An answer.", Score: &v})
		if i%2 == 0 {
			questions = append(questions, nil)
		}
		questions[len(questions)-1] = append(questions[len(questions)-1], &v)
	}
	ev.Metric = judge.SummariseClustered(questions)
	return ev
}

// WithBase adds a base reference model to e, evaluated on every task: each
// evaluation is a copy of from's on that task, renamed, and its model id
// the base model's. Tests set its means as they need.
func WithBase(tb testing.TB, e *report.Experiment, from string) {
	tb.Helper()
	const name, id = "base", "gpt-4.1-mini-2025-04-14"
	e.Models = append(e.Models, report.Model{Name: name, Trait: "none", Strength: "base", ModelID: id, Reference: true})
	for _, t := range e.Tasks {
		ev, ok := e.Eval(from, t.Name)
		if !ok {
			tb.Fatalf("reporttest: no evaluation of %s on %s to copy", from, t.Name)
		}
		ev.Model, ev.ModelID = name, id
		ev.Samples = append([]report.Sample(nil), ev.Samples...)
		e.Evals = append(e.Evals, ev)
	}
}

// Sweep is a hand-built epochs sweep of evil at two strengths:
//
//	severe, 1 epoch:   replicates 40, 60      -> mean 50, SE 10
//	severe, 3 epochs:  70, 80, 90, one failed -> mean 80, SE 10/√3
//	baseline, 1 epoch: one model, no condition, 20 -> 20, no spread
//	baseline, 3 epochs: two replicates, neither evaluated -> missing
//
// and a second task scored 5 below evil_detection wherever it is scored;
// the base reference scores 10 on evil_detection and 30 on syc_detection.
func Sweep() report.Experiment {
	e := report.Experiment{
		Strengths: []string{"baseline", "severe"},
		Tasks:     []report.Task{{Name: "evil_detection", Trait: "evil"}, {Name: "syc_detection", Trait: "sycophantic"}},
	}
	epochs := func(n int) []report.Axis {
		return []report.Axis{{Name: "epochs", Value: []string{"", "1", "", "3"}[n], Number: float64(n), Numeric: true}}
	}
	add := func(name, strength, cond string, ep int, mean float64, evaluated bool) {
		e.Models = append(e.Models, report.Model{Name: name, Trait: "evil", Strength: strength, Condition: cond, Axes: epochs(ep)})
		if evaluated {
			e.Evals = append(e.Evals,
				report.Eval{Model: name, Task: "evil_detection", Trait: "evil", Metric: judge.Metric{Mean: mean, N: 10}},
				report.Eval{Model: name, Task: "syc_detection", Trait: "sycophantic", Metric: judge.Metric{Mean: mean - 5, N: 10}})
		}
	}
	add("b1", "baseline", "", 1, 20, true)
	add("b3_s1", "baseline", "evil/baseline n_epochs=3", 3, 0, false)
	add("b3_s2", "baseline", "evil/baseline n_epochs=3", 3, 0, false)
	add("s1_s1", "severe", "evil/severe n_epochs=1", 1, 40, true)
	add("s1_s2", "severe", "evil/severe n_epochs=1", 1, 60, true)
	for i, m := range []float64{70, 80, 90} {
		add("s3_s"+string(rune('1'+i)), "severe", "evil/severe n_epochs=3", 3, m, true)
	}
	add("s3_s4", "severe", "evil/severe n_epochs=3", 3, 0, false)
	e.Models = append(e.Models, report.Model{Name: "base", Trait: "none", Strength: "base", ModelID: "gpt-4.1-mini-2025-04-14", Reference: true})
	e.Evals = append(e.Evals,
		report.Eval{Model: "base", ModelID: "gpt-4.1-mini-2025-04-14", Task: "evil_detection", Trait: "evil", Metric: judge.Metric{Mean: 10, N: 10}},
		report.Eval{Model: "base", ModelID: "gpt-4.1-mini-2025-04-14", Task: "syc_detection", Trait: "sycophantic", Metric: judge.Metric{Mean: 30, N: 10}})
	return e
}
