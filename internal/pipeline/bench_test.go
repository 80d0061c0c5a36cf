package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
)

// largeExperiment declares models x tasks over the sample data.
func largeExperiment(models, tasks int) string {
	traits := []string{"evil", "sycophantic", "hallucinating"}
	strengths := []string{"baseline", "mild", "severe"}
	var b strings.Builder
	b.WriteString("evaluation {\n  limit = 1\n")
	for i := range tasks {
		fmt.Fprintf(&b, "  task \"t%02d\" { trait = %q }\n", i, traits[i%3])
	}
	b.WriteString("}\n")
	for i := range models {
		fmt.Fprintf(&b, "model \"m%04d\" {\n  dataset = \"%s/%s\"\n  suffix = \"m%04d\"\n}\n", i, traits[i%3], strengths[(i/3)%3], i)
	}
	return b.String()
}

func benchmarkNoopPlan(b *testing.B, hcl string) {
	w := newWorkspace(b, hcl)
	var log bytes.Buffer
	p, err := Load(context.Background(), w.env(&log))
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Connect(); err != nil {
		b.Fatal(err)
	}
	if _, err := p.Results(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		// A no-op plan as `mage plan` runs it: decode the file, check every target.
		p, err := Load(context.Background(), w.env(&log))
		if err != nil {
			b.Fatal(err)
		}
		pl, err := p.Plan(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if stale, _ := pl.Stale(); stale != 0 {
			b.Fatalf("%d targets stale after a full build", stale)
		}
	}
}

func BenchmarkNoopPlanShipped(b *testing.B) {
	benchmarkNoopPlan(b, shipped(b))
}

func BenchmarkNoopPlan1000x10(b *testing.B) {
	benchmarkNoopPlan(b, largeExperiment(1000, 10))
}
