package report

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// ConditionResult is one replicated condition on one task as
// eval_results.json aggregates it: every replicate's mean, the mean of
// those means and the standard error across replicates (AcrossSeeds).
type ConditionResult struct {
	Condition string `json:"condition"`
	Task      string `json:"task"`
	Trait     string `json:"trait"`
	// Axes are the swept settings the condition's cell has (its
	// replicates share them).
	Axes []Axis `json:"axes,omitempty"`
	// Replicates are every model of the condition; ReplicateMeans those
	// with a scored evaluation, and Missing the others.
	Replicates     []string        `json:"replicates"`
	ReplicateMeans []ReplicateMean `json:"replicate_means"`
	// Mean is nil with no scored replicate, SE with fewer than two (no
	// spread to measure); JSON has null, not a made-up 0.
	Mean        *float64 `json:"mean"`
	SE          *float64 `json:"se"`
	NReplicates int      `json:"n_replicates"`
	Missing     []string `json:"missing"`
}

// ReplicateMean is one replicate's evaluation mean.
type ReplicateMean struct {
	Model string  `json:"model"`
	Mean  float64 `json:"mean"`
}

// ConditionResults aggregates every replicated condition on every task, in
// the order of Conditions; empty when no model belongs to a condition.
func ConditionResults(e Experiment) []ConditionResult {
	trait := map[string]string{}
	for _, t := range e.Tasks {
		trait[t.Name] = t.Trait
	}
	axes := map[string][]Axis{}
	for _, m := range e.Models {
		if _, ok := axes[m.Condition]; !ok && m.Condition != "" {
			axes[m.Condition] = m.Axes
		}
	}
	var out []ConditionResult
	for _, r := range Conditions(e) {
		c := ConditionResult{Condition: r.Condition, Task: r.Task, Trait: trait[r.Task], Axes: axes[r.Condition],
			NReplicates: len(r.Means), Missing: r.Missing, ReplicateMeans: []ReplicateMean{}}
		if c.Missing == nil {
			c.Missing = []string{}
		}
		for _, m := range e.Models {
			if m.Condition == r.Condition {
				c.Replicates = append(c.Replicates, m.Name)
			}
		}
		for i, name := range r.Models {
			c.ReplicateMeans = append(c.ReplicateMeans, ReplicateMean{Model: name, Mean: r.Means[i]})
		}
		if mean, se, seKnown, ok := AcrossSeeds(r.Means); ok {
			c.Mean = &mean
			if seKnown {
				c.SE = &se
			}
		}
		out = append(out, c)
	}
	return out
}

// Results is eval_results.json: the variants, one per evaluated model in
// the original scripts' shape, and the aggregated conditions of a
// replicated grid. Without conditions it is written as the variants' array
// it always was, so that files and readers of experiments without
// replicates do not change; with them, an object {"variants": [...],
// "conditions": [...]}.
type Results struct {
	Variants   []Variant         `json:"variants"`
	Conditions []ConditionResult `json:"conditions,omitempty"`
}

type resultsObject Results // without the methods, for the object form

// MarshalJSON writes the array without conditions, the object with them.
func (r Results) MarshalJSON() ([]byte, error) {
	if len(r.Conditions) == 0 {
		if r.Variants == nil {
			return []byte("null"), nil
		}
		return json.Marshal(r.Variants)
	}
	return json.Marshal(resultsObject(r))
}

// UnmarshalJSON reads either form.
func (r *Results) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' || bytes.Equal(b, []byte("null")) {
		*r = Results{}
		return json.Unmarshal(b, &r.Variants)
	}
	var o resultsObject
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("eval_results.json: %w", err)
	}
	*r = Results(o)
	return nil
}
