// Package config decodes experiment.hcl into an Experiment, carrying every
// problem to the user as HCL diagnostics with file:line:col and source.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"

	"github.com/modelorganisms/pvbuild/internal/inputfile"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// Defaults of the shipped experiment. The original used gpt-4.1-nano, which
// OpenAI shut down on 2026-10-23; gpt-4.1-mini is the closest model still served.
const (
	DefaultBaseModel  = "gpt-4.1-mini-2025-04-14"
	DefaultJudgeModel = "gpt-4o-2024-08-06"
	DefaultNEpochs    = 3
	DefaultLimit      = 20
	DefaultMaxTokens  = 512
	DefaultProvider   = "local"
	DefaultSource     = "sample"
)

// Experiment is a decoded experiment.hcl.
type Experiment struct {
	File       string
	Training   Training
	Evaluation Evaluation
	Models     []Model
	// Providers by name: one built-in per registered kind plus any declared.
	Providers map[string]Provider
	// Traits declared in the file, by name; they take precedence over the data source's.
	Traits map[string]Trait

	files map[string]*hcl.File
}

// Training holds settings shared by every model's fine-tune.
type Training struct {
	Provider        string
	ProviderRange   hcl.Range
	BaseModel       string
	Seed            int
	Hyperparameters provider.Hyperparameters
	Dataset         DatasetSettings
	// PricePerMillion overrides the built-in training price table (USD per 1M tokens) by base model.
	PricePerMillion map[string]float64
	// BudgetUSD caps the estimated cost of the jobs one train submits; 0 = no cap.
	BudgetUSD   float64
	BudgetRange hcl.Range
	// MaxParallel bounds the trainings in flight at the training
	// provider; the rest wait their turn. 0 = the default (see
	// DefaultMaxParallel).
	MaxParallel int
}

// DatasetSettings choose where training data comes from and how much of it.
type DatasetSettings struct {
	Source     string // "sample" (embedded) or "upstream" (the Persona Vectors archive)
	Archive    string // upstream archive URL or .zip path; "" = the default URL
	SHA256     string // optional pin of the upstream archive
	SampleSize int    // 0 keeps every example
	Seed       uint64
	// SampleSizeRange is where sample_size is set; zero when it is not.
	SampleSizeRange hcl.Range
}

// Evaluation holds the judge settings and the tasks every model is scored on.
type Evaluation struct {
	Provider           string
	ProviderRange      hcl.Range
	JudgeProvider      string // default: Provider
	JudgeProviderRange hcl.Range
	JudgeModel         string
	// Protocol is the evaluation protocol whose defaults apply ("original"
	// unless protocol is set); Overridden lists, as "name = value", the
	// protocol's settings the file sets to other values.
	Protocol           string
	Overridden         []string
	Limit              int
	SamplesPerQuestion int
	Temperature        float64
	MaxTokens          int
	Seed               int
	Tasks              []Task
	// Where samples_per_question is set, for errors a provider's limits
	// find; the block's range when it is not set.
	SamplesPerQuestionRange hcl.Range
	// CoherencePrompt, when set, replaces the data source's coherence
	// judge prompt ({question}, {answer}); CoherencePromptRange is where it
	// is set, the block's range when it is not.
	CoherencePrompt      string
	CoherencePromptRange hcl.Range
	// CoherenceThreshold is the coherence score an answer must exceed to
	// count as coherent (the paper's 50).
	CoherenceThreshold float64
}

// CoherenceTrait is the name the coherence judgement goes by: a trait may
// not take it.
const CoherenceTrait = "coherence"

// DefaultCoherenceThreshold is the paper's: an answer is coherent when its
// coherence score is above 50.
const DefaultCoherenceThreshold = 50

// Task scores a model on one trait.
type Task struct {
	Name       string
	Trait      string
	TraitRange hcl.Range
	// JudgeType is how the judge scores the task's answers (judge_type,
	// default 0_100); JudgeTypeRange is where it is set, the block's range
	// when it is not.
	JudgeType      judge.Kind
	JudgeTypeRange hcl.Range
}

// Axis is one swept setting of a grid cell: the axis's name as written in
// model_grid ("epochs", "learning_rate"...), its value as text, and its
// number when the axis is numeric.
type Axis struct {
	Name    string
	Value   string
	Number  float64
	Numeric bool
}

// Model is one fine-tune: a dataset (trait and strength of the persona data),
// the suffix of the fine-tuned model's name, and how it is displayed.
type Model struct {
	Name            string
	Suffix          string
	DatasetTrait    string
	DatasetStrength string
	Trait           string // display
	Strength        string // display
	Hyperparameters provider.Hyperparameters
	// BaseModel is the model trained from (training.base_model unless the
	// model or its grid cell sets one) and SampleSize its dataset's sample
	// size (training.dataset's unless set; 0 = every example), set where
	// SampleSizeRange is. Both are empty on a reference model.
	BaseModel       string
	SampleSize      int
	SampleSizeRange hcl.Range
	// Seed is the training seed: seed in the model's block, training.seed
	// plus the replicate index in a model_grid with replicates, else
	// training.seed.
	Seed int
	// Condition groups a model_grid's replicates (the cell without its
	// replicate) and Replicate is the index within it, from 0; Condition
	// is "" outside a grid with replicates.
	Condition string
	Replicate int
	// Axes are the grid axes the cell was swept along, in the grid's order
	// (not the replicate seed); empty outside a grid with a swept axis.
	Axes         []Axis
	DeclRange    hcl.Range
	DatasetRange hcl.Range
	// A reference model is evaluated, never trained: BaseOnly is the
	// untrained training.base_model (base_only = true), ModelID a model that
	// exists already (model_id). It has no dataset, suffix or
	// hyperparameters; RefRange is where base_only or model_id is set.
	BaseOnly bool
	ModelID  string
	RefRange hcl.Range
}

// Reference labels: the strength a reference model is shown with unless
// its block sets strength, and the trait it is listed under unless it sets
// trait (a reference was trained for none of the experiment's traits).
const (
	BaseStrength      = "base"
	ReferenceStrength = "reference"
	ReferenceTrait    = "none"
)

// IsReference reports whether m is evaluated without being trained here.
func (m Model) IsReference() bool { return m.BaseOnly || m.ModelID != "" }

// EvaluatedModel is the model id a reference model's evaluations ask:
// model_id, or for base_only the training's base model; "" for a model
// trained here, whose id comes from its training.
func (e *Experiment) EvaluatedModel(m Model) string {
	if m.BaseOnly {
		return e.Training.BaseModel
	}
	return m.ModelID
}

// Options say what an experiment file is decoded against.
type Options struct {
	// Kinds are the provider kinds the file may use; each decodes its own
	// provider blocks.
	Kinds provider.Registry
	// Getenv is what env() reads; nil means os.Getenv. Tests pass a map's
	// lookup, so they need not change the process's environment.
	Getenv func(string) string
}

// Load reads and decodes the experiment file at path.
func Load(path string, opts Options) (*Experiment, error) {
	src, err := inputfile.Read(path, MaxExperimentBytes)
	if err != nil {
		return nil, fmt.Errorf("read experiment: %w", err)
	}
	return Parse(path, src, opts)
}

// Parse decodes an experiment from src; filename is used in diagnostics.
func Parse(filename string, src []byte, opts Options) (*Experiment, error) {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if len(src) > MaxExperimentBytes {
		return nil, fmt.Errorf("read experiment: %s is larger than the %s limit", filename, inputfile.Size(MaxExperimentBytes))
	}
	if d := checkNesting(filename, src); d != nil {
		return nil, &Error{hcl.Diagnostics{d}, map[string]*hcl.File{filename: {Bytes: src}}}
	}
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, &Error{diags, p.Files()}
	}
	exp, diags := decode(f.Body, filepath.Dir(filename), opts)
	if diags.HasErrors() {
		return nil, &Error{diags, p.Files()}
	}
	exp.File = filename
	exp.files = p.Files()
	return exp, nil
}

type fileSchema struct {
	Providers  []providerBlock  `hcl:"provider,block"`
	Traits     []traitBlock     `hcl:"trait,block"`
	Training   *trainingBlock   `hcl:"training,block"`
	Evaluation *evaluationBlock `hcl:"evaluation,block"`
	Grids      []gridBlock      `hcl:"model_grid,block"`
	Models     []modelBlock     `hcl:"model,block"`
}

type trainingBlock struct {
	PricePerMillion        map[string]float64 `hcl:"price_per_million_tokens,optional"`
	BudgetUSD              *float64           `hcl:"budget_usd,optional"`
	Provider               *string            `hcl:"provider,optional"`
	BaseModel              *string            `hcl:"base_model,optional"`
	Seed                   *int               `hcl:"seed,optional"`
	NEpochs                *int               `hcl:"n_epochs,optional"`
	LearningRateMultiplier *float64           `hcl:"learning_rate_multiplier,optional"`
	BatchSize              *int               `hcl:"batch_size,optional"`
	MaxParallel            *int               `hcl:"max_parallel,optional"`
	Dataset                *datasetBlock      `hcl:"dataset,block"`
	Body                   hcl.Body           `hcl:",body"`
}

type datasetBlock struct {
	Body       hcl.Body `hcl:",body"`
	Source     *string  `hcl:"source,optional"`
	Archive    *string  `hcl:"archive,optional"`
	SHA256     *string  `hcl:"sha256,optional"`
	SampleSize *int     `hcl:"sample_size,optional"`
	Seed       *int64   `hcl:"seed,optional"`
}

type evaluationBlock struct {
	Protocol           *string     `hcl:"protocol,optional"`
	Provider           *string     `hcl:"provider,optional"`
	JudgeProvider      *string     `hcl:"judge_provider,optional"`
	JudgeModel         *string     `hcl:"judge_model,optional"`
	Limit              *int        `hcl:"limit,optional"`
	SamplesPerQuestion *int        `hcl:"samples_per_question,optional"`
	Temperature        *float64    `hcl:"temperature,optional"`
	MaxTokens          *int        `hcl:"max_tokens,optional"`
	Seed               *int        `hcl:"seed,optional"`
	CoherencePrompt    *string     `hcl:"coherence_prompt,optional"`
	CoherenceThreshold *float64    `hcl:"coherence_threshold,optional"`
	Tasks              []taskBlock `hcl:"task,block"`
	Body               hcl.Body    `hcl:",body"`
}

type taskBlock struct {
	Name      string   `hcl:"name,label"`
	Trait     string   `hcl:"trait"`
	JudgeType *string  `hcl:"judge_type,optional"`
	Body      hcl.Body `hcl:",body"`
}

type modelBlock struct {
	Name string   `hcl:"name,label"`
	Body hcl.Body `hcl:",remain"`
}

type gridBlock struct {
	Traits    []string `hcl:"traits"`
	Strengths []string `hcl:"strengths"`
	// Replicates trains each cell this many times, with training seeds
	// training.seed + 0..N-1 (the cell's seed and replicate variables).
	Replicates *int `hcl:"replicates,optional"`
	// Axes: each value of a list is a cell's default for the setting and
	// the variable named by the list's singular (epochs: n_epochs and
	// ${epochs}; learning_rates: learning_rate_multiplier and
	// ${learning_rate}; batch_sizes, sample_sizes, lora_ranks, base_models).
	Epochs        []int     `hcl:"epochs,optional"`
	LearningRates []float64 `hcl:"learning_rates,optional"`
	BatchSizes    []int     `hcl:"batch_sizes,optional"`
	SampleSizes   []int     `hcl:"sample_sizes,optional"`
	LoRARanks     []int     `hcl:"lora_ranks,optional"`
	BaseModels    []string  `hcl:"base_models,optional"`
	Body          hcl.Body  `hcl:",remain"`
}

// modelAttrs are the attributes of a model block; a model_grid block takes
// the same ones plus name, each evaluated per cell with trait and strength set.
type modelAttrs struct {
	Name                   *string  `hcl:"name,optional"`
	Dataset                *string  `hcl:"dataset,optional"`
	Suffix                 *string  `hcl:"suffix,optional"`
	Trait                  *string  `hcl:"trait,optional"`
	Strength               *string  `hcl:"strength,optional"`
	NEpochs                *int     `hcl:"n_epochs,optional"`
	LearningRateMultiplier *float64 `hcl:"learning_rate_multiplier,optional"`
	BatchSize              *int     `hcl:"batch_size,optional"`
	SampleSize             *int     `hcl:"sample_size,optional"`
	LoRARank               *int     `hcl:"lora_rank,optional"`
	BaseModel              *string  `hcl:"base_model,optional"`
	Seed                   *int     `hcl:"seed,optional"`
	BaseOnly               *bool    `hcl:"base_only,optional"`
	ModelID                *string  `hcl:"model_id,optional"`
}

// The names a file may give are checked by hand rather than by regexp:
// compiling the bounded repetitions cost every run of the program a
// millisecond at start, before any target was looked at.
var (
	// safeName: a letter or digit, then up to 63 of those or "_.-".
	safeName = nameRule{first: alnum, rest: alnum + "_.-", max: 64}
	// safeSuffix: 1 to 64 letters, digits, "_" or "-".
	safeSuffix = nameRule{first: alnum + "_-", rest: alnum + "_-", max: 64}
	// safeModelID admits the providers' model ids (gpt-4.1-mini-2025-04-14,
	// ft:gpt-4.1-mini-2025-04-14:org:suffix:id, Qwen/Qwen3-8B,
	// tinker://run/sampler_weights/final) and nothing that could break a
	// request, a log line or a stamp: no spaces, quotes or control characters.
	safeModelID = nameRule{first: alnum, rest: alnum + "_.:/@+=-", max: 256}
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// nameRule is a name of 1 to max bytes: its first byte from first, the
// others from rest.
type nameRule struct {
	first, rest string
	max         int
}

func (r nameRule) admits(s string) bool {
	if s == "" || len(s) > r.max || strings.IndexByte(r.first, s[0]) < 0 {
		return false
	}
	for i := 1; i < len(s); i++ {
		if strings.IndexByte(r.rest, s[i]) < 0 {
			return false
		}
	}
	return true
}

func evalContext(vars map[string]cty.Value, getenv func(string) string) *hcl.EvalContext {
	return &hcl.EvalContext{
		Variables: vars,
		Functions: map[string]function.Function{"env": envFunc(getenv)},
	}
}

// envFunc is env(name) or env(name, default): the environment variable, or
// the default (else "") when it is unset or empty.
func envFunc(getenv func(string) string) function.Function {
	return function.New(&function.Spec{
		Params:   []function.Parameter{{Name: "name", Type: cty.String}},
		VarParam: &function.Parameter{Name: "default", Type: cty.String},
		Type:     function.StaticReturnType(cty.String),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			if len(args) > 2 {
				return cty.NilVal, fmt.Errorf("env takes a name and at most one default")
			}
			if v := getenv(args[0].AsString()); v != "" {
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.StringVal(""), nil
		},
	})
}

func decode(body hcl.Body, dir string, opts Options) (*Experiment, hcl.Diagnostics) {
	var fs fileSchema
	ctx := evalContext(nil, opts.Getenv)
	diags := gohcl.DecodeBody(body, ctx, &fs)
	if diags.HasErrors() {
		return nil, diags
	}
	exp := &Experiment{}
	var d hcl.Diagnostics
	exp.Providers, d = decodeProviders(fs.Providers, opts.Kinds, ctx, opts.Getenv, dir)
	diags = append(diags, d...)
	exp.Traits, d = decodeTraits(fs.Traits, dir)
	diags = append(diags, d...)
	diags = append(diags, decodeTraining(fs.Training, dir, &exp.Training)...)
	diags = append(diags, decodeEvaluation(fs.Evaluation, body, &exp.Evaluation)...)
	for _, ref := range []struct {
		name string
		rng  hcl.Range
	}{{exp.Training.Provider, exp.Training.ProviderRange}, {exp.Evaluation.Provider, exp.Evaluation.ProviderRange}, {exp.Evaluation.JudgeProvider, exp.Evaluation.JudgeProviderRange}} {
		if _, ok := exp.Providers[ref.name]; !ok && !diags.HasErrors() {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Unknown provider",
				Detail: fmt.Sprintf(`Provider %q is not declared: use one of the built-in providers (%s), or declare a provider %q block.`, ref.name, opts.Kinds.Names(), ref.name), Subject: ref.rng.Ptr()})
		}
	}

	seen := map[string]hcl.Range{}
	add := func(m Model, diags *hcl.Diagnostics) {
		if prev, dup := seen[m.Name]; dup {
			*diags = append(*diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate model name",
				Detail:   fmt.Sprintf("Model %q is already declared at %s.", m.Name, prev),
				Subject:  m.DeclRange.Ptr(),
			})
			return
		}
		seen[m.Name] = m.DeclRange
		exp.Models = append(exp.Models, m)
	}
	for _, g := range fs.Grids {
		rng := blockRange(g.Body)
		if d := gridReferences(g.Body); d != nil {
			// Once for the grid, not once per cell.
			diags = append(diags, d...)
			continue
		}
		reps := 1
		if g.Replicates != nil {
			// A bound keeps a typo from planning thousands of trainings.
			if reps = *g.Replicates; reps < 1 || reps > MaxReplicates {
				diags = append(diags, attrError(g.Body, "replicates", "Invalid replicates",
					fmt.Sprintf("replicates must be between 1 and %d: the number of trainings per cell, each with its own training seed.", MaxReplicates)))
				continue
			}
		}
		axes, ok := gridAxes(g, exp, &diags)
		if !ok {
			continue
		}
		cells := len(g.Traits) * len(g.Strengths) * reps
		for _, ax := range axes {
			cells *= len(ax.values)
		}
		if cells > MaxGridModels {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Too many models in a model_grid",
				Detail:  fmt.Sprintf("This model_grid makes %d models (traits x strengths x each axis x replicates); at most %d are allowed.", cells, MaxGridModels),
				Subject: rng.Ptr()})
			continue
		}
		// Suffixes name the fine-tuned models: two cells of one grid that
		// train differently under one suffix could not be told apart.
		suffixes := map[string]string{}
		for _, trait := range g.Traits {
			for _, strength := range g.Strengths {
				for _, pick := range product(axes) {
					for r := range reps {
						seed := exp.Training.Seed + r
						vars := map[string]cty.Value{"trait": cty.StringVal(trait), "strength": cty.StringVal(strength),
							"seed": cty.NumberIntVal(int64(seed)), "replicate": cty.NumberIntVal(int64(r)),
							"epochs": cty.NumberIntVal(int64(exp.Training.Hyperparameters.NEpochs)), "base_model": cty.StringVal(exp.Training.BaseModel)}
						defaults := exp.trainDefaults()
						if h := defaults.Hyper; h.LearningRateMultiplier > 0 {
							vars["learning_rate"] = cty.NumberFloatVal(h.LearningRateMultiplier)
						}
						if h := defaults.Hyper; h.BatchSize > 0 {
							vars["batch_size"] = cty.NumberIntVal(int64(h.BatchSize))
						}
						if defaults.SampleSize > 0 {
							vars["sample_size"] = cty.NumberIntVal(int64(defaults.SampleSize))
						}
						cell := fmt.Sprintf("trait=%q strength=%q", trait, strength)
						var cellAxes []Axis
						for i, ax := range axes {
							v := ax.values[pick[i]]
							vars[ax.name] = v.cty
							ax.apply(&defaults, v)
							cellAxes = append(cellAxes, v.Axis)
							cell += " " + ax.name + "=" + v.Value
						}
						m, d := decodeModel("", g.Body, evalContext(vars, opts.Getenv), defaults, rng)
						if g.Replicates != nil {
							cell += fmt.Sprintf(" replicate=%d seed=%d", r, seed)
						}
						annotate(d, cell)
						diags = append(diags, d...)
						if d.HasErrors() {
							continue
						}
						if m.Seed == nil {
							m.Seed = &seed
						}
						m.Model.Seed = *m.Seed
						if g.Replicates != nil {
							m.Condition, m.Replicate = m.Trait+"/"+m.Strength+hyperLabel(m.Model, exp.Training, axes), r
						}
						m.Axes = cellAxes
						n := len(diags)
						add(m.Model, &diags)
						if len(diags) == n {
							diags = append(diags, checkSuffix(m.Model, g.Body, suffixes)...)
						}
						annotate(diags[n:], cell)
					}
				}
			}
		}
	}
	defaults := exp.trainDefaults()
	decoded := decodeModels(fs.Models, ctx, defaults)
	for i := range fs.Models {
		m, d := decoded[i].m, decoded[i].diags
		diags = append(diags, d...)
		if !d.HasErrors() {
			if m.Seed == nil {
				m.Seed = &exp.Training.Seed
			}
			if !m.IsReference() {
				m.Model.Seed = *m.Seed
			}
			add(m.Model, &diags)
		}
	}
	if len(exp.Models) == 0 && !diags.HasErrors() {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No models",
			Detail:   "Declare at least one model block or a model_grid block.",
			Subject:  body.MissingItemRange().Ptr(),
		})
	}
	return exp, diags
}

func decodeTraining(b *trainingBlock, dir string, t *Training) hcl.Diagnostics {
	*t = Training{
		Provider:        DefaultProvider,
		BaseModel:       DefaultBaseModel,
		Hyperparameters: provider.Hyperparameters{NEpochs: DefaultNEpochs},
		Dataset:         DatasetSettings{Source: DefaultSource, Seed: 42},
	}
	if b == nil {
		return nil
	}
	var diags hcl.Diagnostics
	setString(&t.Provider, b.Provider)
	t.ProviderRange = attrRange(b.Body, "provider", blockRange(b.Body))
	setString(&t.BaseModel, b.BaseModel)
	t.PricePerMillion = b.PricePerMillion
	if b.BudgetUSD != nil {
		t.BudgetUSD = *b.BudgetUSD
		t.BudgetRange = attrRange(b.Body, "budget_usd", blockRange(b.Body))
		if t.BudgetUSD <= 0 {
			diags = append(diags, attrError(b.Body, "budget_usd", "Invalid budget_usd", "budget_usd must be a positive amount of dollars, or left out for no cap."))
		}
	}
	if b.Seed != nil {
		t.Seed = *b.Seed
	}
	if b.MaxParallel != nil {
		if t.MaxParallel = *b.MaxParallel; t.MaxParallel < 1 {
			diags = append(diags, attrError(b.Body, "max_parallel", "Invalid max_parallel", "max_parallel must be a positive number of trainings in flight at once."))
		}
	}
	diags = append(diags, hyper(&t.Hyperparameters, b.NEpochs, b.LearningRateMultiplier, b.BatchSize, b.Body)...)
	if d := b.Dataset; d != nil {
		setString(&t.Dataset.Source, d.Source)
		setString(&t.Dataset.Archive, d.Archive)
		setString(&t.Dataset.SHA256, d.SHA256)
		if t.Dataset.Source != "sample" && t.Dataset.Source != "upstream" {
			diags = append(diags, attrError(b.Dataset.Body, "source", "Unknown dataset source",
				fmt.Sprintf(`Source %q is not known: use "sample" (embedded, offline) or "upstream" (the Persona Vectors archive).`, t.Dataset.Source)))
		}
		if t.Dataset.Source == "upstream" && t.Dataset.Archive != "" && !strings.Contains(t.Dataset.Archive, "://") {
			path, err := inputfile.Resolve(dir, t.Dataset.Archive)
			if err == nil {
				_, err = inputfile.CheckRegular(path)
			}
			if err != nil {
				diags = append(diags, attrError(b.Dataset.Body, "archive", "Unusable archive", err.Error()+"."))
			}
			t.Dataset.Archive = path
		}
		if d.SampleSize != nil {
			if *d.SampleSize <= 0 {
				diags = append(diags, attrError(b.Body, "dataset", "Invalid sample_size", "sample_size must be a positive number of examples, or null for all of them."))
			}
			t.Dataset.SampleSize = *d.SampleSize
			t.Dataset.SampleSizeRange = attrRange(d.Body, "sample_size", blockRange(d.Body))
		}
		if d.Seed != nil {
			t.Dataset.Seed = uint64(*d.Seed)
		}
	}
	if t.Provider == "" {
		diags = append(diags, attrError(b.Body, "provider", "Empty provider", `Set provider to "local" (the embedded engine) or "openai".`))
	}
	return diags
}

func decodeEvaluation(b *evaluationBlock, file hcl.Body, e *Evaluation) hcl.Diagnostics {
	*e = Evaluation{
		Provider:           DefaultProvider,
		JudgeModel:         DefaultJudgeModel,
		Limit:              DefaultLimit,
		SamplesPerQuestion: 1,
		Temperature:        1,
		MaxTokens:          DefaultMaxTokens,
		CoherenceThreshold: DefaultCoherenceThreshold,
	}
	if b == nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Missing evaluation block",
			Detail:   `Declare an evaluation block with at least one task, e.g. task "evil_detection" { trait = "evil" }.`,
			Subject:  file.MissingItemRange().Ptr(),
		}}
	}
	var diags hcl.Diagnostics
	setString(&e.Provider, b.Provider)
	e.ProviderRange = attrRange(b.Body, "provider", blockRange(b.Body))
	e.JudgeProvider, e.JudgeProviderRange = e.Provider, e.ProviderRange
	if b.JudgeProvider != nil {
		e.JudgeProvider = *b.JudgeProvider
		e.JudgeProviderRange = attrRange(b.Body, "judge_provider", blockRange(b.Body))
	}
	setString(&e.JudgeModel, b.JudgeModel)
	positive := func(name string, dst *int, v *int) {
		if v == nil {
			return
		}
		if *v <= 0 {
			diags = append(diags, attrError(b.Body, name, "Invalid "+name, name+" must be a positive integer."))
		}
		*dst = *v
	}
	positive("limit", &e.Limit, b.Limit)
	positive("samples_per_question", &e.SamplesPerQuestion, b.SamplesPerQuestion)
	positive("max_tokens", &e.MaxTokens, b.MaxTokens)
	e.SamplesPerQuestionRange = attrRange(b.Body, "samples_per_question", blockRange(b.Body))
	if b.Temperature != nil {
		if *b.Temperature < 0 || *b.Temperature > 2 {
			diags = append(diags, attrError(b.Body, "temperature", "Invalid temperature", "temperature must be between 0 and 2."))
		}
		e.Temperature = *b.Temperature
	}
	if b.Seed != nil {
		e.Seed = *b.Seed
	}
	diags = append(diags, e.applyProtocol(b)...)
	e.CoherencePromptRange = attrRange(b.Body, "coherence_prompt", blockRange(b.Body))
	if b.CoherencePrompt != nil {
		e.CoherencePrompt = *b.CoherencePrompt
		if strings.Count(e.CoherencePrompt, "{question}") != 1 || strings.Count(e.CoherencePrompt, "{answer}") != 1 {
			diags = append(diags, attrError(b.Body, "coherence_prompt", "Invalid coherence_prompt",
				"The coherence judge prompt must hold {question} and {answer} once each."))
		}
	}
	if b.CoherenceThreshold != nil {
		if v := *b.CoherenceThreshold; v < 0 || v >= 100 {
			diags = append(diags, attrError(b.Body, "coherence_threshold", "Invalid coherence_threshold",
				"coherence_threshold is the coherence score (0 to 100) an answer must exceed to count as coherent: use a number from 0 up to, not including, 100 (default 50)."))
		}
		e.CoherenceThreshold = *b.CoherenceThreshold
	}
	seen := map[string]hcl.Range{}
	for _, tb := range b.Tasks {
		rng := blockRange(tb.Body)
		if !safeName.admits(tb.Name) || strings.Contains(tb.Name, "..") {
			diags = append(diags, unsafeName("task", tb.Name, rng))
			continue
		}
		if prev, dup := seen[tb.Name]; dup {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate task name",
				Detail: fmt.Sprintf("Task %q is already declared at %s.", tb.Name, prev), Subject: rng.Ptr()})
			continue
		}
		seen[tb.Name] = rng
		if tb.Trait == CoherenceTrait {
			diags = append(diags, attrError(tb.Body, "trait", "Reserved trait name",
				fmt.Sprintf("Task %q: every answer is already judged for coherence; %q cannot be a task's trait. Name the trait otherwise, or set coherence_prompt in the evaluation block to change how coherence is judged.", tb.Name, CoherenceTrait)))
			continue
		}
		kind := judge.DefaultKind
		if tb.JudgeType != nil {
			kind = judge.Kind(*tb.JudgeType)
			if !kind.Valid() {
				names := make([]string, len(judge.Kinds))
				for i, k := range judge.Kinds {
					names[i] = strconv.Quote(string(k))
				}
				diags = append(diags, attrError(tb.Body, "judge_type", "Invalid judge_type",
					fmt.Sprintf("judge_type of task %q is %q; use one of %s (the paper's judge types; default \"0_100\").",
						tb.Name, *tb.JudgeType, strings.Join(names, ", "))))
				continue
			}
		}
		e.Tasks = append(e.Tasks, Task{Name: tb.Name, Trait: tb.Trait, TraitRange: attrRange(tb.Body, "trait", rng),
			JudgeType: kind, JudgeTypeRange: attrRange(tb.Body, "judge_type", rng)})
	}
	if len(e.Tasks) == 0 {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "No evaluation tasks",
			Detail: `Declare at least one task, e.g. task "evil_detection" { trait = "evil" }.`, Subject: blockRange(b.Body).Ptr()})
	}
	return diags
}

// decodedModel is a model block's model and the seed it sets, nil when it
// sets none (the caller then gives the default).
type decodedModel struct {
	Model
	Seed *int
}

// trainDefaults are what a model trains with unless its block sets
// otherwise: the training block's settings, or a grid cell's axis values;
// Provider and LoRA say whether lora_rank can be honoured.
type trainDefaults struct {
	Hyper           provider.Hyperparameters
	SampleSize      int
	SampleSizeRange hcl.Range
	BaseModel       string
	Provider        string
	LoRA            bool
}

// decodeModels decodes model blocks, a large list on every core: each
// block is independent, and expression evaluation only reads ctx. The
// results keep the file's order, so diagnostics and models do too.
func decodeModels(blocks []modelBlock, ctx *hcl.EvalContext, defaults trainDefaults) []decodedResult {
	out := make([]decodedResult, len(blocks))
	decode := func(i int) {
		mb := &blocks[i]
		out[i].m, out[i].diags = decodeModel(mb.Name, mb.Body, ctx, defaults, blockRange(mb.Body))
	}
	workers := min(runtime.GOMAXPROCS(0), len(blocks)/64)
	if workers < 2 {
		for i := range blocks {
			decode(i)
		}
		return out
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(blocks); i = int(next.Add(1) - 1) {
				decode(i)
			}
		})
	}
	wg.Wait()
	return out
}

type decodedResult struct {
	m     decodedModel
	diags hcl.Diagnostics
}

func decodeModel(name string, body hcl.Body, ctx *hcl.EvalContext, defaults trainDefaults, rng hcl.Range) (decodedModel, hcl.Diagnostics) {
	m, seed, diags := decodeModelAttrs(name, body, ctx, defaults, rng)
	if seed != nil && *seed < 0 {
		diags = append(diags, attrError(body, "seed", "Invalid seed", "seed must be a non-negative integer."))
	}
	m.Seed = 0
	if seed != nil {
		m.Seed = *seed
	}
	return decodedModel{m, seed}, diags
}

func decodeModelAttrs(name string, body hcl.Body, ctx *hcl.EvalContext, defaults trainDefaults, rng hcl.Range) (Model, *int, hcl.Diagnostics) {
	var a modelAttrs
	diags := gohcl.DecodeBody(body, ctx, &a)
	if diags.HasErrors() {
		return Model{}, nil, diags
	}
	inGrid := name == ""
	if inGrid {
		if a.Name == nil {
			return Model{}, nil, missing(rng, "name", `A model_grid needs a name template, e.g. name = "${trait}_${strength}".`)
		}
		name = *a.Name
		rng = attrRange(body, "name", rng)
		if a.Dataset == nil {
			ds := ctx.Variables["trait"].AsString() + "/" + ctx.Variables["strength"].AsString()
			a.Dataset = &ds
		}
	} else if a.Name != nil {
		return Model{}, nil, hcl.Diagnostics{attrError(body, "name", "Unexpected name", "A model block is named by its label; name is only for model_grid.")}
	}
	if !safeName.admits(name) || strings.Contains(name, "..") {
		return Model{}, nil, hcl.Diagnostics{unsafeName("model", name, rng)}
	}
	m := Model{Name: name, DeclRange: rng, Hyperparameters: defaults.Hyper}
	if (a.BaseOnly != nil && *a.BaseOnly) || a.ModelID != nil {
		m, d := decodeReference(m, a, body)
		return m, nil, d
	}
	if a.Dataset == nil {
		return Model{}, nil, missing(rng, "dataset", `Set dataset to "<trait>/<strength>", e.g. dataset = "evil/severe".`)
	}
	m.DatasetRange = attrRange(body, "dataset", rng)
	trait, strength, ok := strings.Cut(*a.Dataset, "/")
	if !ok || trait == "" || strength == "" {
		return Model{}, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid dataset",
			Detail: fmt.Sprintf(`Dataset %q is not of the form "<trait>/<strength>", e.g. "evil/severe".`, *a.Dataset), Subject: m.DatasetRange.Ptr()}}
	}
	m.DatasetTrait, m.DatasetStrength = trait, strength
	if a.Suffix == nil {
		return Model{}, nil, missing(rng, "suffix", "Set suffix: it becomes part of the fine-tuned model's name, e.g. suffix = \"pv-evil-severe\".")
	}
	if !safeSuffix.admits(*a.Suffix) {
		return Model{}, nil, hcl.Diagnostics{attrError(body, "suffix", "Invalid suffix",
			fmt.Sprintf("Suffix %q must be 1 to 64 letters, digits, '-' or '_'.", *a.Suffix))}
	}
	m.Suffix = *a.Suffix
	m.Trait, m.Strength = trait, strength
	setString(&m.Trait, a.Trait)
	setString(&m.Strength, a.Strength)
	// Traits name report files (plots/<trait>_expression.png).
	for _, v := range []struct{ attr, val string }{{"trait", m.Trait}, {"strength", m.Strength}} {
		if !safeName.admits(v.val) || strings.Contains(v.val, "..") {
			return Model{}, nil, hcl.Diagnostics{unsafeName(v.attr, v.val, attrRange(body, v.attr, m.DatasetRange))}
		}
	}
	diags = append(diags, hyper(&m.Hyperparameters, a.NEpochs, a.LearningRateMultiplier, a.BatchSize, body)...)
	m.BaseModel, m.SampleSize, m.SampleSizeRange = defaults.BaseModel, defaults.SampleSize, defaults.SampleSizeRange
	if a.BaseModel != nil {
		if m.BaseModel = *a.BaseModel; !safeModelID.admits(m.BaseModel) {
			diags = append(diags, attrError(body, "base_model", "Invalid base_model",
				fmt.Sprintf("base_model %q must be 1 to 256 letters, digits or any of _ . : / @ + = -, starting with a letter or digit.", m.BaseModel)))
		}
	}
	if a.SampleSize != nil {
		if m.SampleSize = *a.SampleSize; m.SampleSize <= 0 {
			diags = append(diags, attrError(body, "sample_size", "Invalid sample_size", "sample_size must be a positive number of examples."))
		}
		m.SampleSizeRange = attrRange(body, "sample_size", rng)
	}
	if a.LoRARank != nil {
		m.Hyperparameters.LoRARank = *a.LoRARank
		if d := checkLoRARank("lora_rank", *a.LoRARank, defaults); d != "" {
			summary := "Invalid lora_rank"
			if !defaults.LoRA {
				summary = "lora_rank not supported by the training provider"
			}
			diags = append(diags, attrError(body, "lora_rank", summary, d))
		}
	}
	return m, a.Seed, diags
}

// checkLoRARank says what is wrong with a LoRA rank for the training
// provider, "" when nothing is; Tinker's ranks are powers of two.
func checkLoRARank(attr string, rank int, d trainDefaults) string {
	if !d.LoRA {
		return fmt.Sprintf("Provider %q trains no LoRA adapter, so it cannot honour %s; use a provider that does (kind tinker), or remove %s.", d.Provider, attr, attr)
	}
	if rank < 1 || rank&(rank-1) != 0 {
		return fmt.Sprintf("%s value %d: a LoRA rank must be a positive power of two (8, 16, 32...).", attr, rank)
	}
	return ""
}

// gridReferences refuses base_only and model_id in a model_grid: a grid
// trains a model per cell, and a reference is one model that is not trained.
func gridReferences(body hcl.Body) hcl.Diagnostics {
	var diags hcl.Diagnostics
	attrs, _ := body.JustAttributes()
	for _, name := range []string{"base_only", "model_id"} {
		if _, ok := attrs[name]; ok {
			diags = append(diags, attrError(body, name, "Reference model in a model_grid",
				fmt.Sprintf("%s declares a reference model, evaluated without training; a model_grid trains one model per cell. Declare it in its own block, e.g. model \"base\" { base_only = true }.", name)))
		}
	}
	return diags
}

// decodeReference decodes a model block with base_only = true or model_id:
// nothing is trained, so the training attributes are refused where they
// are written.
func decodeReference(m Model, a modelAttrs, body hcl.Body) (Model, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	kind := "base_only"
	if a.ModelID != nil {
		kind = "model_id"
	}
	if a.BaseOnly != nil && *a.BaseOnly && a.ModelID != nil {
		diags = append(diags, attrError(body, "model_id", "Conflicting base_only and model_id",
			fmt.Sprintf("Model %q sets both base_only = true (evaluate training.base_model) and model_id (evaluate that model); set one.", m.Name)))
	}
	for _, set := range []struct {
		attr string
		set  bool
	}{{"dataset", a.Dataset != nil}, {"suffix", a.Suffix != nil}, {"n_epochs", a.NEpochs != nil},
		{"learning_rate_multiplier", a.LearningRateMultiplier != nil}, {"batch_size", a.BatchSize != nil}, {"seed", a.Seed != nil},
		{"sample_size", a.SampleSize != nil}, {"lora_rank", a.LoRARank != nil}, {"base_model", a.BaseModel != nil}} {
		if set.set {
			diags = append(diags, attrError(body, set.attr, "Training setting on a reference model",
				fmt.Sprintf("Model %q sets %s, so it is evaluated without training; %s would train nothing. Remove it, or remove %s to train the model.", m.Name, kind, set.attr, kind)))
		}
	}
	m.RefRange = attrRange(body, kind, m.DeclRange)
	m.Hyperparameters = provider.Hyperparameters{}
	m.Trait, m.Strength = ReferenceTrait, BaseStrength
	if a.ModelID != nil {
		m.ModelID, m.Strength = *a.ModelID, ReferenceStrength
		if !safeModelID.admits(m.ModelID) {
			diags = append(diags, attrError(body, "model_id", "Invalid model_id",
				fmt.Sprintf("model_id %q of model %q must be 1 to 256 letters, digits or any of _ . : / @ + = -, starting with a letter or digit, e.g. \"ft:gpt-4.1-mini-2025-04-14:org:name:abc123\".", m.ModelID, m.Name)))
		}
	} else {
		m.BaseOnly = true
	}
	setString(&m.Trait, a.Trait)
	setString(&m.Strength, a.Strength)
	for _, v := range []struct{ attr, val string }{{"trait", m.Trait}, {"strength", m.Strength}} {
		if !safeName.admits(v.val) || strings.Contains(v.val, "..") {
			diags = append(diags, unsafeName(v.attr, v.val, attrRange(body, v.attr, m.DeclRange)))
		}
	}
	return m, diags
}

func hyper(h *provider.Hyperparameters, epochs *int, lr *float64, batch *int, body hcl.Body) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if epochs != nil {
		if *epochs < 1 || *epochs > 50 {
			diags = append(diags, attrError(body, "n_epochs", "Invalid n_epochs", "n_epochs must be between 1 and 50."))
		}
		h.NEpochs = *epochs
	}
	if lr != nil {
		if *lr <= 0 {
			diags = append(diags, attrError(body, "learning_rate_multiplier", "Invalid learning_rate_multiplier", "learning_rate_multiplier must be positive."))
		}
		h.LearningRateMultiplier = *lr
	}
	if batch != nil {
		if *batch < 1 {
			diags = append(diags, attrError(body, "batch_size", "Invalid batch_size", "batch_size must be a positive integer."))
		}
		h.BatchSize = *batch
	}
	return diags
}

// DefaultMaxParallel is how many trainings a paid provider runs at once
// unless max_parallel says otherwise. OpenAI's reference (the API spec and
// the facts this project keeps) documents no number of concurrent or daily
// fine-tuning jobs, so this is a conservative choice, not a documented
// limit; a free provider runs every training at once.
const DefaultMaxParallel = 3

// MaxReplicates bounds a model_grid's replicates.
const MaxReplicates = 100

// MaxGridModels bounds the models one model_grid makes, so that a typo
// in an axis does not plan thousands of trainings.
const MaxGridModels = 1000

// hyperLabel names the training settings of a replicated cell, so that two
// cells of one trait and strength trained differently are two conditions.
// sample_size and base_model are named when the grid sweeps them or the
// cell changes them: labels of grids without those axes stay as they were.
func hyperLabel(m Model, t Training, axes []gridAxis) string {
	h := m.Hyperparameters
	s := fmt.Sprintf(" n_epochs=%d", h.NEpochs)
	if h.LearningRateMultiplier > 0 {
		s += fmt.Sprintf(" learning_rate_multiplier=%g", h.LearningRateMultiplier)
	}
	if h.BatchSize > 0 {
		s += fmt.Sprintf(" batch_size=%d", h.BatchSize)
	}
	swept := func(name string) bool {
		return slices.ContainsFunc(axes, func(a gridAxis) bool { return a.name == name })
	}
	if swept("sample_size") || m.SampleSize != t.Dataset.SampleSize {
		s += fmt.Sprintf(" sample_size=%d", m.SampleSize)
	}
	if h.LoRARank > 0 {
		s += fmt.Sprintf(" lora_rank=%d", h.LoRARank)
	}
	if swept("base_model") || m.BaseModel != t.BaseModel {
		s += " base_model=" + m.BaseModel
	}
	return s
}

func setString(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}
