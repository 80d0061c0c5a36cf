package config

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// gridAxis is one list attribute of a model_grid (attr, e.g.
// "learning_rates") swept as an axis named name ("learning_rate", also the
// cell's variable), with apply setting a value as the cell's default.
type gridAxis struct {
	attr, name string
	values     []axisValue
	apply      func(*trainDefaults, axisValue)
}

type axisValue struct {
	Axis
	cty cty.Value
}

// trainDefaults is what a model of this experiment trains with unless it
// says otherwise.
func (e *Experiment) trainDefaults() trainDefaults {
	t := e.Training
	d := trainDefaults{Hyper: t.Hyperparameters, SampleSize: t.Dataset.SampleSize, SampleSizeRange: t.Dataset.SampleSizeRange,
		BaseModel: t.BaseModel, Provider: t.Provider}
	if p, ok := e.Providers[t.Provider]; ok {
		lt, ok := p.Config.(provider.LoRATrainer)
		d.LoRA = ok && lt.TrainsLoRA()
	}
	return d
}

// BaseModels are the base models the experiment trains from, or evaluates
// (base_only): training.base_model first, then each model's own, once each.
func (e *Experiment) BaseModels() []string {
	out := []string{e.Training.BaseModel}
	for _, m := range e.Models {
		if m.BaseModel != "" && !slices.Contains(out, m.BaseModel) {
			out = append(out, m.BaseModel)
		}
	}
	return out
}

// gridAxes validates the grid's axes, in the order of Model.Axes (epochs,
// learning_rate, batch_size, sample_size, lora_rank, base_model), each
// value where the list is written; ok is false when one is unusable.
func gridAxes(g gridBlock, exp *Experiment, diags *hcl.Diagnostics) ([]gridAxis, bool) {
	var axes []gridAxis
	ok := true
	bad := func(attr, summary, detail string) {
		*diags = append(*diags, attrError(g.Body, attr, summary, detail))
		ok = false
	}
	ints := func(attr, name string, vals []int, check func(int) string, apply func(*trainDefaults, int)) {
		if vals == nil {
			return
		}
		ax := gridAxis{attr: attr, name: name, apply: func(d *trainDefaults, v axisValue) { apply(d, int(v.Number)) }}
		for _, v := range vals {
			if msg := check(v); msg != "" {
				bad(attr, "Invalid "+attr, msg)
				continue
			}
			ax.values = append(ax.values, axisValue{Axis{Name: name, Value: strconv.Itoa(v), Number: float64(v), Numeric: true}, cty.NumberIntVal(int64(v))})
		}
		axes = append(axes, ax)
	}
	ints("epochs", "epochs", g.Epochs, func(v int) string {
		if v < 1 || v > 50 {
			return fmt.Sprintf("epochs value %d: each n_epochs must be between 1 and 50.", v)
		}
		return ""
	}, func(d *trainDefaults, v int) { d.Hyper.NEpochs = v })
	if g.LearningRates != nil {
		ax := gridAxis{attr: "learning_rates", name: "learning_rate",
			apply: func(d *trainDefaults, v axisValue) { d.Hyper.LearningRateMultiplier = v.Number }}
		for _, v := range g.LearningRates {
			if !(v > 0) || math.IsInf(v, 0) {
				bad("learning_rates", "Invalid learning_rates", fmt.Sprintf("learning_rates value %g: each learning_rate_multiplier must be positive.", v))
				continue
			}
			ax.values = append(ax.values, axisValue{Axis{Name: "learning_rate", Value: strconv.FormatFloat(v, 'g', -1, 64), Number: v, Numeric: true}, cty.NumberFloatVal(v)})
		}
		axes = append(axes, ax)
	}
	positive := func(attr, what string) func(int) string {
		return func(v int) string {
			if v < 1 {
				return fmt.Sprintf("%s value %d: each %s must be a positive integer.", attr, v, what)
			}
			return ""
		}
	}
	ints("batch_sizes", "batch_size", g.BatchSizes, positive("batch_sizes", "batch_size"), func(d *trainDefaults, v int) { d.Hyper.BatchSize = v })
	sampleRange := attrRange(g.Body, "sample_sizes", blockRange(g.Body))
	ints("sample_sizes", "sample_size", g.SampleSizes, positive("sample_sizes", "sample_size (a number of examples)"), func(d *trainDefaults, v int) {
		d.SampleSize, d.SampleSizeRange = v, sampleRange
	})
	if g.LoRARanks != nil {
		if d := exp.trainDefaults(); !d.LoRA {
			// Once for the list, not per value: no value can be honoured.
			bad("lora_ranks", "lora_ranks not supported by the training provider", checkLoRARank("lora_ranks", 0, d))
		} else {
			ints("lora_ranks", "lora_rank", g.LoRARanks, func(v int) string { return checkLoRARank("lora_ranks", v, d) },
				func(d *trainDefaults, v int) { d.Hyper.LoRARank = v })
		}
	}
	if g.BaseModels != nil {
		ax := gridAxis{attr: "base_models", name: "base_model", apply: func(d *trainDefaults, v axisValue) { d.BaseModel = v.Value }}
		for _, v := range g.BaseModels {
			if !safeModelID.admits(v) {
				bad("base_models", "Invalid base_models", fmt.Sprintf("base_models value %q: a base model is 1 to 256 letters, digits or any of _ . : / @ + = -, starting with a letter or digit.", v))
				continue
			}
			ax.values = append(ax.values, axisValue{Axis{Name: "base_model", Value: v}, cty.StringVal(v)})
		}
		axes = append(axes, ax)
	}
	for _, ax := range axes {
		if len(ax.values) == 0 && ok {
			bad(ax.attr, "Empty "+ax.attr, fmt.Sprintf("%s lists no value: give at least one, or remove it for the training block's setting.", ax.attr))
		}
		seen := map[string]bool{}
		for _, v := range ax.values {
			if seen[v.Value] {
				// The cells would be the same training under one name.
				bad(ax.attr, "Repeated "+ax.name+" value", fmt.Sprintf("%s lists %s twice: each value makes its own cells.", ax.attr, v.Value))
				break
			}
			seen[v.Value] = true
		}
	}
	return axes, ok
}

// product is every combination of one value per axis, the last axis
// varying fastest; one empty combination without axes.
func product(axes []gridAxis) [][]int {
	out := [][]int{{}}
	for _, ax := range axes {
		var next [][]int
		for _, p := range out {
			for i := range ax.values {
				next = append(next, append(append([]int(nil), p...), i))
			}
		}
		out = next
	}
	return out
}

// annotate names the grid cell in its diagnostics: one attribute is
// evaluated for every cell, so its place alone does not say which failed.
func annotate(diags hcl.Diagnostics, cell string) {
	for _, d := range diags {
		d.Detail = strings.TrimSpace(d.Detail + " (in model_grid cell " + cell + ")")
	}
}

// checkSuffix refuses a suffix that another cell of the same grid has
// already: the cells train differently, and the fine-tuned models' names
// (the suffix is in them) would not tell them apart.
func checkSuffix(m Model, body hcl.Body, seen map[string]string) hcl.Diagnostics {
	prev, dup := seen[m.Suffix]
	if !dup {
		seen[m.Suffix] = m.Name
		return nil
	}
	return hcl.Diagnostics{attrError(body, "suffix", "Duplicate suffix",
		fmt.Sprintf("Suffix %q of model %q is already the suffix of model %q of this model_grid; put what tells the cells apart in the suffix, e.g. suffix = \"pv-${trait}-${strength}-e${epochs}-s${seed}\".", m.Suffix, m.Name, prev))}
}
