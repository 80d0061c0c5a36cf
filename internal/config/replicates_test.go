package config

import (
	"strings"
	"testing"
)

// A model_grid with replicates trains each cell once per training seed,
// training.seed + 0..N-1, named per cell from ${seed}; a model block may set
// its own seed.
func TestGridReplicates(t *testing.T) {
	exp, err := Parse("x.hcl", []byte(minimal+`
training { seed = 7 }
model_grid {
  traits     = ["evil"]
  strengths  = ["baseline", "severe"]
  replicates = 3
  name       = "${trait}_${strength}_s${seed}"
  suffix     = "pv-${trait}-${strength}-r${replicate}"
  n_epochs   = strength == "severe" ? 5 : 3
}
model "solo" {
  dataset = "evil/mild"
  suffix  = "solo"
  seed    = 99
}
model "plain" {
  dataset = "evil/mild"
  suffix  = "plain"
}
`), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range exp.Models {
		names = append(names, m.Name)
	}
	want := "evil_baseline_s7 evil_baseline_s8 evil_baseline_s9 evil_severe_s7 evil_severe_s8 evil_severe_s9 solo plain"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("models %q, want %q", got, want)
	}
	m := exp.Models[4]
	if m.Seed != 8 || m.Replicate != 1 || m.Suffix != "pv-evil-severe-r1" || m.Condition != "evil/severe n_epochs=5" || m.Hyperparameters.NEpochs != 5 {
		t.Errorf("replicate: %+v", m)
	}
	if exp.Models[0].Condition != "evil/baseline n_epochs=3" || exp.Models[0].Seed != 7 {
		t.Errorf("first replicate: %+v", exp.Models[0])
	}
	if s := exp.Models[6].Seed; s != 99 {
		t.Errorf("solo seed %d, want its own 99", s)
	}
	if p := exp.Models[7]; p.Seed != 7 || p.Condition != "" {
		t.Errorf("plain: seed %d condition %q, want training.seed 7 and none", p.Seed, p.Condition)
	}
}

// A grid whose names do not tell its replicates apart, an unsafe name
// from a cell, a bad replicates count and a seed on a reference are
// errors at their place.
func TestGridReplicateErrors(t *testing.T) {
	for _, c := range []struct{ hcl, want string }{
		{`model_grid {
  traits = ["evil"]
  strengths = ["mild"]
  replicates = 2
  name = "${trait}_${strength}"
  suffix = "x"
}`, `x.hcl:9:10: Duplicate model name: Model "evil_mild" is already declared at x.hcl:9,10-32.`},
		{`model_grid {
  traits = ["evil"]
  strengths = ["mild"]
  replicates = 2
  name = "${trait}/${seed}"
  suffix = "x"
}`, `x.hcl:9:10: Invalid model name: "evil/0"`},
		{`model_grid {
  traits = ["evil"]
  strengths = ["mild"]
  replicates = 0
  name = "${trait}_${seed}"
  suffix = "x"
}`, "x.hcl:8:16: Invalid replicates"},
		{`model "base" {
  base_only = true
  seed = 3
}`, "x.hcl:7:10: Training setting on a reference model"},
	} {
		_, err := Parse("x.hcl", []byte(minimal+c.hcl), opts(nil))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\nerror %v, want %q", c.hcl, err, c.want)
		}
	}
}

// An epochs axis makes one cell per n_epochs value, named from ${epochs},
// each its own condition; a value out of range is refused.
func TestGridEpochsAxis(t *testing.T) {
	exp, err := Parse("x.hcl", []byte(minimal+`
model_grid {
  traits     = ["evil"]
  strengths  = ["severe"]
  epochs     = [1, 5]
  replicates = 2
  name       = "${trait}_e${epochs}_s${seed}"
  suffix     = "pv-e${epochs}-s${seed}"
}
`), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range exp.Models {
		got = append(got, m.Name+":"+m.Condition)
	}
	want := "evil_e1_s0:evil/severe n_epochs=1 evil_e1_s1:evil/severe n_epochs=1 evil_e5_s0:evil/severe n_epochs=5 evil_e5_s1:evil/severe n_epochs=5"
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("got %s\nwant %s", s, want)
	}
	if _, err := Parse("x.hcl", []byte(minimal+`
model_grid {
  traits    = ["evil"]
  strengths = ["severe"]
  epochs    = [0]
  name      = "e${epochs}"
  suffix    = "e${epochs}"
}
`), opts(nil)); err == nil || !strings.Contains(err.Error(), "epochs") {
		t.Fatalf("epochs = [0]: %v", err)
	}
}
