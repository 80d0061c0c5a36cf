package report

import (
	"image/color"
	"math"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/modelorganisms/pvbuild/internal/judge"
)

// Model is one trained model as reports name it.
type Model struct {
	Name     string `json:"name"`
	Trait    string `json:"trait"`
	Strength string `json:"strength"`
	ModelID  string `json:"model_id"`
	// Reference marks a model evaluated without training here (the base
	// model, or a model_id): a reference row in the tables and a dashed
	// line in the charts, never a point of a trained trait's line.
	Reference bool `json:"reference,omitempty"`
	// Condition groups the training seeds of one condition of a
	// replicated model_grid; "" outside one.
	Condition string `json:"condition,omitempty"`
	// Axes are the grid axes this model's cell was swept along (epochs,
	// learning rate, ...), in the order the grid declares them; empty
	// outside a sweep. They place the model's condition on a dose-response
	// chart (one numeric axis) or a heatmap (two).
	Axes []Axis `json:"axes,omitempty"`
}

// Axis is one swept setting of a model's cell: its name as the grid spells
// it ("epochs", "learning_rate", "seed"...), its value as text for labels,
// and, for a numeric axis, the number the charts place it at.
type Axis struct {
	Name    string  `json:"name"`
	Value   string  `json:"value"`
	Number  float64 `json:"number,omitempty"`
	Numeric bool    `json:"numeric,omitempty"`
}

// Experiment is everything the reports show: the models in the order the
// experiment declares them, the tasks, and the evaluations there are. An
// evaluation missing for a (model, task) pair shows as "not evaluated".
type Experiment struct {
	Title string
	// Protocol says how the models were evaluated (the protocol and its
	// settings), for the reader comparing with published numbers; "" says
	// nothing.
	Protocol string
	// Strengths orders the x axis and the table columns; the first is the
	// baseline the differences are taken from. Strengths of models that are
	// not listed follow in order of appearance.
	Strengths []string
	Tasks     []Task
	Models    []Model
	Evals     []Eval

	// evalAt indexes Evals by model and task once Index is called: the
	// reports look up every (model, task), and a scan for each is
	// quadratic in a sweep's size.
	evalAt map[[2]string]int
}

// Index makes Eval a map lookup; call it once Evals is complete. Copies
// of e made after share the index.
func (e *Experiment) Index() {
	e.evalAt = make(map[[2]string]int, len(e.Evals))
	for i, ev := range e.Evals {
		if _, dup := e.evalAt[[2]string{ev.Model, ev.Task}]; !dup {
			e.evalAt[[2]string{ev.Model, ev.Task}] = i // the first, as a scan finds
		}
	}
}

// Variants are the evaluations in eval_results.json's shape: one per model
// with at least one evaluation, in model order.
func (e Experiment) Variants() []Variant {
	var out []Variant
	for _, m := range e.Models {
		v := Variant{VariantName: m.Name, Trait: m.Trait, Strength: m.Strength, Reference: m.Reference, Condition: m.Condition, Evaluations: map[string]Evaluation{}}
		for _, ev := range e.Evals {
			if ev.Model == m.Name {
				v.ModelID = ev.ModelID
				v.Evaluations[ev.Task] = evaluation(ev)
			}
		}
		if len(v.Evaluations) > 0 {
			out = append(out, v)
		}
	}
	return out
}

// Clustered reports whether any evaluation's standard error is clustered by
// question (several samples per question).
func (e Experiment) Clustered() bool {
	for _, ev := range e.Evals {
		if ev.Metric.Clustered() {
			return true
		}
	}
	return false
}

// StrengthOrder is the column order: Strengths, then any other strength of a
// model in order of appearance.
func (e Experiment) StrengthOrder() []string {
	cols := slices.Clone(e.Strengths)
	for _, m := range e.Models {
		if !m.Reference && !slices.Contains(cols, m.Strength) {
			cols = append(cols, m.Strength)
		}
	}
	return cols
}

// TrainedTraits lists the traits models were trained for, in order of
// appearance; each gets its own chart.
func (e Experiment) TrainedTraits() []string {
	var traits []string
	for _, m := range e.Models {
		if !m.Reference && !slices.Contains(traits, m.Trait) {
			traits = append(traits, m.Trait)
		}
	}
	return traits
}

// Eval returns the evaluation of model on task.
func (e Experiment) Eval(model, task string) (Eval, bool) {
	if e.evalAt != nil {
		if i, ok := e.evalAt[[2]string{model, task}]; ok && i < len(e.Evals) {
			return e.Evals[i], true
		}
		return Eval{}, false
	}
	for _, ev := range e.Evals {
		if ev.Model == model && ev.Task == task {
			return ev, true
		}
	}
	return Eval{}, false
}

// traitNouns names the paper's traits as nouns, for "Training for Evil".
var traitNouns = map[string]string{
	"evil":          "Evil",
	"sycophantic":   "Sycophancy",
	"hallucinating": "Hallucination",
}

// TraitTitle is a trait's display name: the paper's noun for its three
// traits, otherwise the trait with separators as spaces and a capital first
// letter ("power_seeking" -> "Power seeking").
func TraitTitle(trait string) string {
	if n, ok := traitNouns[trait]; ok {
		return n
	}
	s := strings.Join(strings.FieldsFunc(trait, func(r rune) bool { return r == '_' || r == '-' }), " ")
	if s == "" {
		return trait
	}
	r, size := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[size:]
}

// Point is one model's metric on one task at one strength.
type Point struct {
	Strength string
	Model    string // "" when no model of the trait has this strength
	Metric   judge.Metric
	// Evaluated is false when the model has no evaluation on the task.
	Evaluated bool
	// Coherence is the evaluation's coherence judgement, nil without one.
	Coherence *Coherence
}

// Plotted reports whether the point has a mean to draw.
func (p Point) Plotted() bool { return p.Evaluated && p.Metric.N > 0 }

// Line is one evaluation task across strengths.
type Line struct {
	Task Task
	// OnTarget marks the task that measures the chart's trained trait.
	OnTarget bool
	Points   []Point // one per Chart.Strengths entry
	// References are the reference models' scores on the task, drawn as
	// dashed horizontal lines in its colour: what training moved from.
	References []RefPoint
}

// RefPoint is a reference model's metric on one task.
type RefPoint struct {
	Model   string
	Label   string // its strength label: "base", "reference" or the one set
	ModelID string
	Metric  judge.Metric
	// Coherence is the evaluation's coherence judgement, nil without one.
	Coherence *Coherence
	// Index is the reference's place among the experiment's references,
	// so that each keeps one dash pattern in every chart.
	Index int
}

// Legend is how charts name the reference's line on task: "base
// (reference) on evil_detection", with its label when that is not its name.
func (r RefPoint) Legend(task string) string {
	if r.Label == r.Model {
		return r.Model + " (reference) on " + task
	}
	return r.Model + " (reference, " + r.Label + ") on " + task
}

// TaskReferences are the reference models' evaluations of task t.
func (e Experiment) TaskReferences(t Task) []RefPoint {
	var refs []RefPoint
	for i, m := range e.References() {
		if ev, ok := e.Eval(m.Name, t.Name); ok {
			refs = append(refs, RefPoint{Model: m.Name, Label: m.Strength, ModelID: ev.ModelID, Metric: ev.Metric, Coherence: ev.Coherence, Index: i})
		}
	}
	return refs
}

// References are the models evaluated without training, in model order.
func (e Experiment) References() []Model {
	var refs []Model
	for _, m := range e.Models {
		if m.Reference {
			refs = append(refs, m)
		}
	}
	return refs
}

// Chart is trait expression against training strength for the models
// trained for one trait: one line per evaluation task.
type Chart struct {
	Trait     string
	Title     string
	Strengths []string
	Lines     []Line
}

// Chart gathers the points of the models trained for trait. When two models
// share a trait and strength, the first declared is drawn; the summary table
// shows the others in their own rows.
func (e Experiment) Chart(trait string) Chart {
	c := Chart{Trait: trait, Title: "Training for " + TraitTitle(trait), Strengths: e.StrengthOrder()}
	for _, t := range e.Tasks {
		l := Line{Task: t, OnTarget: t.Trait == trait}
		for _, s := range c.Strengths {
			p := Point{Strength: s}
			for _, m := range e.Models {
				if !m.Reference && m.Trait == trait && m.Strength == s {
					p.Model = m.Name
					if ev, ok := e.Eval(m.Name, t.Name); ok {
						p.Metric, p.Evaluated, p.Coherence = ev.Metric, true, ev.Coherence
					}
					break
				}
			}
			l.Points = append(l.Points, p)
		}
		l.References = e.TaskReferences(t)
		c.Lines = append(c.Lines, l)
	}
	return c
}

// okabeIto is the Okabe-Ito palette, distinguishable with the common forms
// of colour blindness; black is left out for the axes.
var okabeIto = []color.RGBA{
	{0x00, 0x72, 0xB2, 0xFF}, // blue
	{0xD5, 0x5E, 0x00, 0xFF}, // vermillion
	{0x00, 0x9E, 0x73, 0xFF}, // bluish green
	{0xCC, 0x79, 0xA7, 0xFF}, // reddish purple
	{0xE6, 0x9F, 0x00, 0xFF}, // orange
	{0x56, 0xB4, 0xE9, 0xFF}, // sky blue
	{0xF0, 0xE4, 0x42, 0xFF}, // yellow
}

// TaskColor is the colour of the i-th task's line, the same in every chart
// and in both the HTML and PNG renderings.
func TaskColor(i int) color.RGBA { return okabeIto[i%len(okabeIto)] }

// Z95 is the standard normal quantile of a two-sided 95% interval.
const Z95 = 1.96

// Diff is a difference of means with its 95% interval (normal approximation).
type Diff struct {
	Value, Low, High float64
	// Interval is false when either side's standard error is unknown (fewer
	// than two scored samples, or, clustered, two questions with one), and
	// with it the interval.
	Interval bool
	// Clustered is true when either side's standard error is clustered by
	// question.
	Clustered bool
}

// DiffFrom is m's mean minus base's with the interval
// diff ± 1.96·sqrt(se_m² + se_base²); false when either has no scored sample.
// Each se is the side's reported SE (judge.Metric.SE): clustered by question
// when it has several samples a question, plain otherwise.
func DiffFrom(m, base judge.Metric) (Diff, bool) {
	if m.N == 0 || base.N == 0 {
		return Diff{}, false
	}
	d := Diff{Value: m.Mean - base.Mean, Interval: m.SEKnown() && base.SEKnown(), Clustered: m.Clustered() || base.Clustered()}
	half := Z95 * math.Hypot(m.SE(), base.SE())
	d.Low, d.High = d.Value-half, d.Value+half
	if !d.Interval {
		d.Low, d.High = d.Value, d.Value
	}
	return d, true
}
