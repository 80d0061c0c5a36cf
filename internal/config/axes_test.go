package config

import (
	"fmt"
	"strings"
	"testing"
)

// Every axis of a model_grid makes one cell per value, in the order
// epochs, learning_rate, batch_size, sample_size, lora_rank, base_model;
// each value is the cell's default, a variable of its own, and an entry of
// the model's Axes; the condition tells every cell apart.
func TestGridAxes(t *testing.T) {
	exp, err := Parse("x.hcl", []byte(minimal+`
training { provider = "tinker" }
model_grid {
  traits         = ["evil"]
  strengths      = ["severe"]
  base_models    = ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B"]
  lora_ranks     = [8, 32]
  sample_sizes   = [50]
  batch_sizes    = [4]
  learning_rates = [0.5, 2]
  epochs         = [1]
  replicates     = 2
  name           = "m_lr${learning_rate}_b${batch_size}_n${sample_size}_r${lora_rank}_${base_model == "Qwen/Qwen3-8B" ? "q" : "l"}_s${seed}"
  suffix         = "pv-lr${learning_rate * 10}-r${lora_rank}-${base_model == "Qwen/Qwen3-8B" ? "q" : "l"}-s${seed}"
}
`), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Models) != 2*2*2*2 {
		t.Fatalf("%d models, want 16", len(exp.Models))
	}
	m := exp.Models[0]
	if m.Name != "m_lr0.5_b4_n50_r8_q_s0" || m.BaseModel != "Qwen/Qwen3-8B" || m.SampleSize != 50 ||
		m.Hyperparameters.LoRARank != 8 || m.Hyperparameters.BatchSize != 4 || m.Hyperparameters.LearningRateMultiplier != 0.5 || m.Hyperparameters.NEpochs != 1 {
		t.Fatalf("first cell: %+v", m)
	}
	var axes []string
	for _, a := range m.Axes {
		axes = append(axes, fmt.Sprintf("%s=%s/%g/%v", a.Name, a.Value, a.Number, a.Numeric))
	}
	want := "epochs=1/1/true learning_rate=0.5/0.5/true batch_size=4/4/true sample_size=50/50/true lora_rank=8/8/true base_model=Qwen/Qwen3-8B/0/false"
	if got := strings.Join(axes, " "); got != want {
		t.Fatalf("axes %s\nwant %s", got, want)
	}
	conds := map[string]int{}
	for _, m := range exp.Models {
		conds[m.Condition]++
	}
	if len(conds) != 8 {
		t.Fatalf("conditions %v, want 8 of 2 replicates", conds)
	}
	if c := exp.Models[0].Condition; c != "evil/severe n_epochs=1 learning_rate_multiplier=0.5 batch_size=4 sample_size=50 lora_rank=8 base_model=Qwen/Qwen3-8B" {
		t.Fatalf("condition %q", c)
	}
	// The cell default yields to the body, evaluated per cell.
	exp, err = Parse("x.hcl", []byte(minimal+`
model_grid {
  traits      = ["evil"]
  strengths   = ["severe"]
  batch_sizes = [2, 8]
  name        = "b${batch_size}"
  suffix      = "b${batch_size}"
  batch_size  = batch_size == 8 ? 16 : batch_size
}
`), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if b := exp.Models[1].Hyperparameters.BatchSize; b != 16 || exp.Models[0].Hyperparameters.BatchSize != 2 {
		t.Fatalf("batch sizes %d, %d, want 2, 16", exp.Models[0].Hyperparameters.BatchSize, b)
	}
	// Without axes, nothing changes: no Axes, training's base model and sample size.
	exp, err = Parse("x.hcl", []byte(minimal+`
training {
  dataset { sample_size = 30 }
}
model_grid {
  traits    = ["evil"]
  strengths = ["severe"]
  name      = "a"
  suffix    = "a"
}
`), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	if m := exp.Models[0]; len(m.Axes) != 0 || m.BaseModel != DefaultBaseModel || m.SampleSize != 30 || m.Condition != "" {
		t.Fatalf("plain grid: %+v", m)
	}
}

// A bad axis value, a repeated or empty axis, a grid whose suffixes do not
// tell its cells apart, and lora_ranks with a provider that trains no LoRA
// are errors at their place, before any request.
func TestGridAxisErrors(t *testing.T) {
	for _, c := range []struct{ name, hcl, want string }{
		{"learning rate", `
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  learning_rates = [1, -0.5]
  name = "lr${learning_rate}"
  suffix = "lr${learning_rate}"
}`, `x.hcl:9:20: Invalid learning_rates: learning_rates value -0.5: each learning_rate_multiplier must be positive.`},
		{"batch size", `
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  batch_sizes = [0]
  name = "b${batch_size}"
  suffix = "b${batch_size}"
}`, `x.hcl:9:17: Invalid batch_sizes`},
		{"sample size", `
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  sample_sizes = [10, -1]
  name = "n${sample_size}"
  suffix = "n${sample_size}"
}`, `x.hcl:9:18: Invalid sample_sizes`},
		{"base model", `
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  base_models = ["a b"]
  name = "m"
  suffix = "m"
}`, `x.hcl:9:17: Invalid base_models`},
		{"repeated value", `
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  epochs = [3, 3]
  name = "e${epochs}"
  suffix = "e${epochs}"
}`, `x.hcl:9:12: Repeated epochs value: epochs lists 3 twice`},
		{"empty axis", `
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  batch_sizes = []
  name = "m"
  suffix = "m"
}`, `x.hcl:9:17: Empty batch_sizes`},
		{"lora on local", `
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  lora_ranks = [8, 16]
  name = "r${lora_rank}"
  suffix = "r${lora_rank}"
}`, `x.hcl:9:16: lora_ranks not supported by the training provider: Provider "local" trains no LoRA adapter`},
		{"lora_rank on openai", `
training { provider = "openai" }
model "a" {
  dataset = "evil/mild"
  suffix = "a"
  lora_rank = 8
}`, `x.hcl:10:15: lora_rank not supported by the training provider: Provider "openai" trains no LoRA adapter, so it cannot honour lora_rank`},
		{"lora not a power of two", `
training { provider = "tinker" }
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  lora_ranks = [8, 12]
  name = "r${lora_rank}"
  suffix = "r${lora_rank}"
}`, `x.hcl:10:16: Invalid lora_ranks: lora_ranks value 12`},
		{"duplicate name", `
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  learning_rates = [1, 2]
  name = "m"
  suffix = "m${learning_rate}"
}`, `x.hcl:10:10: Duplicate model name: Model "m" is already declared at x.hcl:10,10-13. (in model_grid cell trait="evil" strength="severe" learning_rate=2)`},
		{"duplicate suffix", `
model_grid {
  traits = ["evil"]
  strengths = ["severe"]
  learning_rates = [1, 2]
  name = "m${learning_rate}"
  suffix = "m"
}`, `x.hcl:11:12: Duplicate suffix: Suffix "m" of model "m2" is already the suffix of model "m1" of this model_grid`},
	} {
		_, err := Parse("x.hcl", []byte(minimal+c.hcl), opts(nil))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v\nwant %q", c.name, err, c.want)
		}
	}
}
