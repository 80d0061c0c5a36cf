package config

import (
	"strings"
	"testing"
)

func TestReferenceModels(t *testing.T) {
	exp, err := Parse("x.hcl", []byte(minimal+`
training { base_model = "gpt-4.1-mini-2025-04-14" }
model "base" { base_only = true }
model "theirs" { model_id = "ft:gpt-4.1-mini-2025-04-14:org:evil:abc123" }
model "named" {
  model_id = "Qwen/Qwen3-8B"
  strength = "qwen"
}
model "trained" {
  dataset = "evil/mild"
  suffix  = "a"
}
`), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Model{}
	for _, m := range exp.Models {
		byName[m.Name] = m
	}
	base, theirs, named, trained := byName["base"], byName["theirs"], byName["named"], byName["trained"]
	if !base.IsReference() || !base.BaseOnly || base.Strength != BaseStrength || base.Trait != ReferenceTrait || exp.EvaluatedModel(base) != "gpt-4.1-mini-2025-04-14" {
		t.Errorf("base: %+v, evaluates %q", base, exp.EvaluatedModel(base))
	}
	if !theirs.IsReference() || theirs.BaseOnly || theirs.Strength != ReferenceStrength || exp.EvaluatedModel(theirs) != "ft:gpt-4.1-mini-2025-04-14:org:evil:abc123" {
		t.Errorf("theirs: %+v", theirs)
	}
	if named.Strength != "qwen" {
		t.Errorf("named: strength %q, want the one it sets", named.Strength)
	}
	if base.DatasetTrait != "" || base.Suffix != "" || base.Hyperparameters.NEpochs != 0 {
		t.Errorf("base has training settings: %+v", base)
	}
	if trained.IsReference() || exp.EvaluatedModel(trained) != "" {
		t.Errorf("trained: %+v", trained)
	}
	if s := base.RefRange.String(); !strings.HasPrefix(s, "x.hcl:7,") {
		t.Errorf("base_only located at %s, want line 7", s)
	}
}

func TestReferenceModelErrorsLocated(t *testing.T) {
	grid := "\nmodel_grid {\n  traits = [\"evil\"]\n  strengths = [\"mild\", \"severe\"]\n  name = \"${trait}_${strength}\"\n  suffix = \"s\"\n  %s\n}"
	tests := []struct {
		name, src, want string
	}{
		{"both", "\nmodel \"r\" {\n  base_only = true\n  model_id  = \"gpt-4o\"\n}", `x.hcl:8:15: Conflicting base_only and model_id: Model "r" sets both`},
		{"dataset", "\nmodel \"r\" {\n  base_only = true\n  dataset   = \"evil/mild\"\n}", `x.hcl:8:15: Training setting on a reference model: Model "r" sets base_only`},
		{"suffix", "\nmodel \"r\" {\n  model_id = \"ft:x\"\n  suffix   = \"a\"\n}", `x.hcl:8:14: Training setting on a reference model: Model "r" sets model_id, so it is evaluated without training; suffix`},
		{"n_epochs", "\nmodel \"r\" {\n  base_only = true\n  n_epochs = 2\n}", `x.hcl:8:14: Training setting on a reference model`},
		{"learning rate", "\nmodel \"r\" {\n  model_id = \"ft:x\"\n  learning_rate_multiplier = 2\n}", `x.hcl:8:30: Training setting on a reference model`},
		{"batch size", "\nmodel \"r\" {\n  base_only = true\n  batch_size = 2\n}", `x.hcl:8:16: Training setting on a reference model`},
		{"empty model_id", "\nmodel \"r\" {\n  model_id = \"\"\n}", `x.hcl:7:14: Invalid model_id: model_id "" of model "r"`},
		{"unsafe model_id", "\nmodel \"r\" {\n  model_id = \"gpt 4\\n\"\n}", `x.hcl:7:14: Invalid model_id`},
		{"unsafe strength", "\nmodel \"r\" {\n  base_only = true\n  strength = \"../x\"\n}", `x.hcl:8:14: Invalid strength name`},
		{"base_only in grid", strings.Replace(grid, "%s", "base_only = true", 1), `x.hcl:11:15: Reference model in a model_grid: base_only declares`},
		{"model_id in grid", strings.Replace(grid, "%s", `model_id = "ft:x"`, 1), `x.hcl:11:14: Reference model in a model_grid: model_id declares`},
		{"duplicate with trained", "\nmodel \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n}\nmodel \"a\" { base_only = true }", `x.hcl:10:13: Duplicate model name: Model "a" is already declared at x.hcl:6`},
	}
	for _, tt := range tests {
		_, err := Parse("x.hcl", []byte(minimal+tt.src), opts(nil))
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
	// A grid's reference is reported once, not once per cell.
	_, err := Parse("x.hcl", []byte(minimal+strings.Replace(grid, "%s", "base_only = true", 1)), opts(nil))
	if n := strings.Count(err.Error(), "Reference model in a model_grid"); n != 1 {
		t.Errorf("grid reference reported %d times:\n%v", n, err)
	}
}
