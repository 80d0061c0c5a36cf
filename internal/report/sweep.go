package report

import "math"

// Replicates are one condition's training seeds on one task: each
// replicate's own evaluation mean, and the names of the replicates that
// have none (a failed or unevaluated member), which the reports mark.
type Replicates struct {
	Condition, Task string
	Models          []string  // the replicates with a scored evaluation
	Means           []float64 // each one's evaluation mean, as Models
	Missing         []string  // replicates without a scored evaluation
}

// AcrossSeeds summarises a condition over its training seeds: the mean of
// the replicates' means and the standard error across replicates,
// sd(m_r, ddof=1)/sqrt(R). The within-evaluation SEs are left out on
// purpose: the question is whether the data reliably instils the trait,
// and the seed-to-seed spread answers it. ok is false with no replicate;
// seKnown is false with fewer than two, when no spread can be measured.
func AcrossSeeds(means []float64) (mean, se float64, seKnown, ok bool) {
	r := len(means)
	if r == 0 {
		return 0, 0, false, false
	}
	for _, m := range means {
		mean += m
	}
	mean /= float64(r)
	if r < 2 {
		return mean, 0, false, true
	}
	var ss float64
	for _, m := range means {
		ss += (m - mean) * (m - mean)
	}
	return mean, math.Sqrt(ss/float64(r-1)) / math.Sqrt(float64(r)), true, true
}

// ConditionDiff is condition a's across-seed mean minus b's, with the 95%
// interval from the between-seed standard errors (normal approximation);
// false when either side has no replicate.
func ConditionDiff(a, b []float64) (Diff, bool) {
	ma, sa, ka, oka := AcrossSeeds(a)
	mb, sb, kb, okb := AcrossSeeds(b)
	if !oka || !okb {
		return Diff{}, false
	}
	d := Diff{Value: ma - mb, Interval: ka && kb}
	half := Z95 * math.Hypot(sa, sb)
	d.Low, d.High = d.Value-half, d.Value+half
	if !d.Interval {
		d.Low, d.High = d.Value, d.Value
	}
	return d, true
}

// Conditions gathers, per task and replicated condition in model order,
// each replicate's evaluation mean; replicates without a scored evaluation
// are Missing. Empty when no model belongs to a condition.
func Conditions(e Experiment) []Replicates {
	var out []Replicates
	for _, t := range e.Tasks {
		idx := map[string]int{}
		for _, m := range e.Models {
			if m.Condition == "" {
				continue
			}
			i, ok := idx[m.Condition]
			if !ok {
				i = len(out)
				idx[m.Condition] = i
				out = append(out, Replicates{Condition: m.Condition, Task: t.Name})
			}
			if ev, ok := e.Eval(m.Name, t.Name); ok && ev.Metric.N > 0 {
				out[i].Models = append(out[i].Models, m.Name)
				out[i].Means = append(out[i].Means, ev.Metric.Mean)
			} else {
				out[i].Missing = append(out[i].Missing, m.Name)
			}
		}
	}
	return out
}
