// Package reporttest gives tests of the report renderers a real experiment:
// the outputs of one run of the shipped experiment, cut small (see
// testdata/README.md).
package reporttest

import (
	"embed"
	"encoding/json"
	"path"
	"testing"

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
