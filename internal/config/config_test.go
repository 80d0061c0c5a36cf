package config

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/providers"
)

func TestShippedExperiment(t *testing.T) {
	exp, err := Load("../../experiment.hcl", opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Models) != 10 || len(exp.Evaluation.Tasks) != 3 {
		t.Fatalf("%d models, %d tasks; want 9 trained, the base reference, and 3 tasks", len(exp.Models), len(exp.Evaluation.Tasks))
	}
	if b := exp.Models[9]; b.Name != "base" || !b.BaseOnly || exp.EvaluatedModel(b) != DefaultBaseModel {
		t.Fatalf("base reference: %+v", b)
	}
	m := exp.Models[8]
	if m.Name != "hallucinating_severe" || m.Suffix != "pv-hallucinating-severe" || m.DatasetTrait != "hallucinating" || m.DatasetStrength != "severe" || m.Hyperparameters.NEpochs != 3 {
		t.Fatalf("last grid model: %+v", m)
	}
	if exp.Training.BaseModel != DefaultBaseModel || exp.Evaluation.JudgeModel != DefaultJudgeModel || exp.Evaluation.Limit != 20 {
		t.Fatalf("defaults: %+v %+v", exp.Training, exp.Evaluation)
	}
	if exp.Training.Provider != "local" {
		t.Fatalf("provider %q, want local by default", exp.Training.Provider)
	}
}

func TestEnvSelectsProvider(t *testing.T) {
	exp, err := Load("../../experiment.hcl", opts(map[string]string{"PROVIDER": "openai"}))
	if err != nil {
		t.Fatal(err)
	}
	if exp.Training.Provider != "openai" || exp.Evaluation.Provider != "openai" {
		t.Fatalf("PROVIDER=openai gave %q/%q", exp.Training.Provider, exp.Evaluation.Provider)
	}
}

// opts decodes against the shipped kinds, with env() reading env only.
func opts(env map[string]string) Options {
	return Options{Kinds: providers.Default(), Getenv: func(k string) string { return env[k] }}
}

const minimal = `
evaluation {
  task "evil_detection" { trait = "evil" }
}
`

func TestGridCellOverride(t *testing.T) {
	exp, err := Parse("x.hcl", []byte(minimal+`
model_grid {
  traits = ["evil"]
  strengths = ["mild", "severe"]
  name = "${trait}_${strength}"
  suffix = "s-${strength}"
  n_epochs = strength == "severe" ? 5 : 2
}
model "extra" {
  dataset = "evil/severe"
  suffix = "x"
  learning_rate_multiplier = 0.5
}`), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, m := range exp.Models {
		got[m.Name] = m.Hyperparameters.NEpochs
	}
	if got["evil_mild"] != 2 || got["evil_severe"] != 5 || got["extra"] != 3 {
		t.Fatalf("epochs %v", got)
	}
	if exp.Models[2].Hyperparameters.LearningRateMultiplier != 0.5 {
		t.Fatalf("extra: %+v", exp.Models[2])
	}
}

// Every mistake a user can make is reported at its place in the file.
func TestLocatedErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"syntax", "evaluation {\n  limit = \n}", "x.hcl:2:11: Invalid expression"},
		{"unknown block", minimal + "\nmodles \"a\" {}", `x.hcl:6:1: Unsupported block type: Blocks of type "modles" are not expected here. Did you mean "model"?`},
		{"unknown attribute", minimal + "\nmodel \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n  epochs = 3\n}", `x.hcl:9:3: Unsupported argument: An argument named "epochs" is not expected here. Did you mean "n_epochs"?`},
		{"missing suffix", minimal + "\nmodel \"a\" {\n  dataset = \"evil/mild\"\n}", `x.hcl:6:11: Missing required argument "suffix"`},
		{"missing dataset", minimal + "\nmodel \"a\" {\n  suffix = \"a\"\n}", `Missing required argument "dataset"`},
		{"bad dataset", minimal + "\nmodel \"a\" {\n  dataset = \"evil\"\n  suffix = \"a\"\n}", `x.hcl:7:13: Invalid dataset`},
		{"unsafe name", minimal + "\nmodel \"../x\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n}", `x.hcl:6:14: Invalid model name: "../x" cannot name files`},
		{"unsafe grid name", minimal + "\nmodel_grid {\n  traits = [\"evil\"]\n  strengths = [\"a/b\"]\n  name = \"${trait}/${strength}\"\n  suffix = \"s\"\n}", `x.hcl:9:10: Invalid model name: "evil/a/b"`},
		{"duplicate", minimal + "\nmodel \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n}\nmodel \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n}", "Duplicate model name"},
		{"duplicate task", "evaluation {\n  task \"t\" { trait = \"evil\" }\n  task \"t\" { trait = \"evil\" }\n}\nmodel \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n}", "x.hcl:3:14: Duplicate task name"},
		{"bad suffix", minimal + "\nmodel \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"has space\"\n}", "x.hcl:8:12: Invalid suffix"},
		{"no models", minimal, "No models"},
		{"no evaluation", "model \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n}", "Missing evaluation block"},
		{"bad limit", "evaluation {\n  limit = 0\n  task \"t\" { trait = \"evil\" }\n}\nmodel \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n}", "x.hcl:2:11: Invalid limit"},
		{"wrong type", minimal + "\nmodel \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n  n_epochs = \"many\"\n}", "x.hcl:9:15: Unsuitable value type"},
		{"bad env call", "training {\n  provider = env()\n}\n" + minimal, "x.hcl:2:18: Not enough function arguments"},
	}
	for _, tt := range tests {
		_, err := Parse("x.hcl", []byte(tt.src), opts(nil))
		if err == nil {
			t.Errorf("%s: no error", tt.name)
			continue
		}
		if !IsConfigError(err) {
			t.Errorf("%s: not a located config error: %v", tt.name, err)
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error\n%s\nwant it to contain %q", tt.name, err, tt.want)
		}
	}
}

func TestErrorShowsSourceLine(t *testing.T) {
	_, err := Parse("x.hcl", []byte(minimal+"\nmodel \"a\" {\n  dataset = \"evil\"\n  suffix = \"a\"\n}"), opts(nil))
	if err == nil || !strings.Contains(err.Error(), `dataset = "evil"`) {
		t.Fatalf("error does not quote the source line:\n%v", err)
	}
}

func TestCustomTraits(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/qs.txt", []byte("Tell me about ships.\n\nWhat is your favourite sea?\n"), 0o644)
	src := `
trait "pirate" {
  description = "talks like a pirate"
  questions_file = "qs.txt"
}
trait "formal" {
  judge_prompt = "Is it formal? {question} / {answer}"
  questions = ["Greet me."]
}
evaluation {
  task "pirate_detection" { trait = "pirate" }
}
model "a" {
  dataset = "evil/mild"
  suffix = "a"
}`
	os.WriteFile(dir+"/x.hcl", []byte(src), 0o644)
	exp, err := Load(dir+"/x.hcl", opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	p := exp.Traits["pirate"]
	if len(p.Questions) != 2 || !strings.Contains(p.JudgePrompt, "talks like a pirate") || !strings.Contains(p.JudgePrompt, "{answer}") {
		t.Fatalf("pirate: %+v", p)
	}
	if f := exp.Traits["formal"]; f.JudgePrompt != "Is it formal? {question} / {answer}" || len(f.Questions) != 1 {
		t.Fatalf("formal: %+v", f)
	}

	for _, bad := range []struct{ src, want string }{
		{`trait "x" { description = "d" }`, `Missing required argument "questions"`},
		{`trait "x" { questions = ["q"] }`, `Missing required argument "description"`},
		{`trait "x" {
  judge_prompt = "no placeholders"
  questions = ["q"]
}`, "x.hcl:2:18: Invalid judge_prompt"},
		{`trait "x" {
  description = "d"
  questions_file = "missing.txt"
}`, "x.hcl:3:20: Unreadable questions_file"},
	} {
		_, err := Parse(dir+"/x.hcl", []byte(bad.src+minimal+"model \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n}"), opts(nil))
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: got %v, want %q", bad.src, err, bad.want)
		}
	}
}

func TestDisplayNamesCannotEscapeArtifacts(t *testing.T) {
	_, err := Parse("x.hcl", []byte(minimal+"model \"m\" {\n  dataset = \"evil/mild\"\n  suffix = \"m\"\n  trait = \"../../pwned\"\n}"), opts(nil))
	if err == nil || !strings.Contains(err.Error(), `x.hcl:8:11: Invalid trait name: "../../pwned" cannot name files`) {
		t.Fatalf("got %v", err)
	}
}

func TestJudgeType(t *testing.T) {
	const model = "model \"m\" {\n  dataset = \"evil/mild\"\n  suffix = \"m\"\n}\n"
	exp, err := Parse("x.hcl", []byte("evaluation {\n  task \"a\" { trait = \"evil\" }\n  task \"b\" {\n    trait = \"evil\"\n    judge_type = \"0_10\"\n  }\n}\n"+model), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	ts := exp.Evaluation.Tasks
	if ts[0].JudgeType != "0_100" || ts[1].JudgeType != "0_10" || ts[1].JudgeTypeRange.Start.Line != 5 {
		t.Fatalf("tasks %+v", ts)
	}
	_, err = Parse("x.hcl", []byte("evaluation {\n  task \"a\" {\n    trait = \"evil\"\n    judge_type = \"0-10\"\n  }\n}\n"+model), opts(nil))
	want := `x.hcl:4:18: Invalid judge_type: judge_type of task "a" is "0-10"; use one of "0_100", "0_10", "binary", "binary_text"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %s", err, want)
	}
}

func TestCoherenceSettings(t *testing.T) {
	const model = "model \"m\" {\n  dataset = \"evil/mild\"\n  suffix = \"m\"\n}\n"
	exp, err := Parse("x.hcl", []byte("evaluation {\n  task \"a\" { trait = \"evil\" }\n}\n"+model), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if e := exp.Evaluation; e.CoherencePrompt != "" || e.CoherenceThreshold != 50 {
		t.Fatalf("defaults: prompt %q, threshold %v; want the source's prompt and the paper's 50", e.CoherencePrompt, e.CoherenceThreshold)
	}
	exp, err = Parse("x.hcl", []byte("evaluation {\n  coherence_prompt = \"Q {question} A {answer}\"\n  coherence_threshold = 30\n  task \"a\" { trait = \"evil\" }\n}\n"+model), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if e := exp.Evaluation; e.CoherencePrompt != "Q {question} A {answer}" || e.CoherenceThreshold != 30 || e.CoherencePromptRange.Start.Line != 2 {
		t.Fatalf("set: %+v", e)
	}
	for _, tt := range []struct{ name, eval, want string }{
		{"no answer placeholder", "  coherence_prompt = \"Q {question}\"\n", "x.hcl:2:22: Invalid coherence_prompt"},
		{"threshold 100", "  coherence_threshold = 100\n", "x.hcl:2:25: Invalid coherence_threshold"},
		{"negative threshold", "  coherence_threshold = -1\n", "x.hcl:2:25: Invalid coherence_threshold"},
		{"task trait", "", "x.hcl:3:22: Reserved trait name: Task \"c\": every answer is already judged for coherence"},
	} {
		src := "evaluation {\n" + tt.eval + "  task \"a\" { trait = \"evil\" }\n}\n" + model
		if tt.name == "task trait" {
			src = "evaluation {\n  task \"a\" { trait = \"evil\" }\n  task \"c\" { trait = \"coherence\" }\n}\n" + model
		}
		_, err := Parse("x.hcl", []byte(src), opts(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %s", tt.name, err, tt.want)
		}
	}
	_, err = Parse("x.hcl", []byte("trait \"coherence\" {\n  description = \"d\"\n  questions = [\"q\"]\n}\nevaluation {\n  task \"a\" { trait = \"evil\" }\n}\n"+model), opts(nil))
	if err == nil || !strings.Contains(err.Error(), "x.hcl:1:19: Reserved trait name") {
		t.Errorf("trait block named coherence: got %v", err)
	}
}

// TestManyModelsKeepFileOrder decodes enough model blocks to take the
// parallel path: models and errors come out in the file's order.
func TestManyModelsKeepFileOrder(t *testing.T) {
	var b strings.Builder
	b.WriteString(minimal)
	for i := range 300 {
		epochs := "3"
		if i%100 == 7 {
			epochs = `"many"` // an error in blocks 7, 107, 207
		}
		fmt.Fprintf(&b, "model \"m%03d\" {\n  dataset = \"evil/mild\"\n  suffix = \"s%03d\"\n  n_epochs = %s\n}\n", i, i, epochs)
	}
	_, err := Parse("many.hcl", []byte(b.String()), opts(nil))
	if err == nil {
		t.Fatal("three bad n_epochs decoded without an error")
	}
	var lines []int
	for _, m := range regexp.MustCompile(`many\.hcl:(\d+):\d+:`).FindAllStringSubmatch(err.Error(), -1) {
		n, _ := strconv.Atoi(m[1])
		lines = append(lines, n)
	}
	if len(lines) != 3 || !slices.IsSorted(lines) {
		t.Fatalf("error lines %v, want three in file order:\n%v", lines, err)
	}

	exp, err := Parse("many.hcl", []byte(strings.ReplaceAll(b.String(), `"many"`, "2")), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range exp.Models {
		if want := fmt.Sprintf("m%03d", i); m.Name != want {
			t.Fatalf("model %d is %q, want %q", i, m.Name, want)
		}
	}
}
