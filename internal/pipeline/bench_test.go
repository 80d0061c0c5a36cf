package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/server"
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
	p := connected(b, w, &log)
	if _, err := p.Results(context.Background()); err != nil {
		b.Fatal(err)
	}
	p.Close()
	settle(w)
	b.ResetTimer()
	for b.Loop() {
		noopPlan(b, w) // as `mage plan` runs it
	}
}

// benchmarkNoopResults is a no-op `mage results`, as the target runs it.
func benchmarkNoopResults(b *testing.B, hcl string) {
	w := newWorkspace(b, hcl)
	var log bytes.Buffer
	p := connected(b, w, &log)
	if _, err := p.Results(context.Background()); err != nil {
		b.Fatal(err)
	}
	p.Close()
	settle(w)
	b.ResetTimer()
	for b.Loop() {
		noopResults(b, w, &log)
	}
}

// asCommand collects garbage, for the rest of the benchmark, at the pace
// the commands do (CommandGCPercent), unless GOGC is set.
func asCommand(b *testing.B) {
	if os.Getenv("GOGC") != "" {
		return
	}
	old := debug.SetGCPercent(CommandGCPercent)
	b.Cleanup(func() { debug.SetGCPercent(old) })
}

// settle is the steady state after a build: its last outputs have left
// the index's racy margin, and a plan has made the index whole and kept a
// snapshot.
func settle(w *workspace) {
	// What the build wrote reaches the disk first: its writeback is not
	// the steady state a no-op is measured in.
	syncDisks()
	time.Sleep(100 * time.Millisecond)
	if _, err := LoadPlan(context.Background(), w.env(nil)); err != nil {
		w.t.Fatal(err)
	}
}

func BenchmarkNoopResultsShipped(b *testing.B) {
	benchmarkNoopResults(b, shipped(b))
}

func BenchmarkNoopResults1000x10(b *testing.B) {
	benchmarkNoopResults(b, largeExperiment(1000, 10))
}

// BenchmarkColdResults1000x10 is a cold `mage results` of 1,000 models x 10
// tasks with the local provider: a fresh workspace each time, every model
// trained, every evaluation run, every report written.
func BenchmarkColdResults1000x10(b *testing.B) {
	asCommand(b)
	hcl := largeExperiment(1000, 10)
	var total time.Duration
	n := 0
	for b.Loop() {
		b.StopTimer()
		w := newWorkspace(b, hcl)
		var log bytes.Buffer
		b.StartTimer()
		start := time.Now()
		p := connected(b, w, &log)
		out, err := p.Results(context.Background())
		if err != nil {
			b.Fatalf("cold results: %v\n%s", err, log.String())
		}
		if len(out.Variants) == 0 {
			b.Fatal("cold results: no variants")
		}
		p.Close()
		total += time.Since(start)
		n++
	}
	b.ReportMetric(total.Seconds()/float64(n), "s/build")
}

func BenchmarkNoopPlanShipped(b *testing.B) {
	benchmarkNoopPlan(b, shipped(b))
}

func BenchmarkNoopPlan1000x10(b *testing.B) {
	benchmarkNoopPlan(b, largeExperiment(1000, 10))
}

// BenchmarkEvaluationThroughput measures chat calls per second against the
// served engine with a fixed latency L and the provider's concurrency C, as a
// fraction of the ideal C/L.
func BenchmarkEvaluationThroughput(b *testing.B) {
	asCommand(b) // the client and `mage serve` both run so
	for _, latency := range []time.Duration{50 * time.Millisecond, 200 * time.Millisecond} {
		b.Run(fmt.Sprintf("L=%v/C=32", latency), func(b *testing.B) { benchmarkThroughput(b, latency, 32) })
	}
}

func benchmarkThroughput(b *testing.B, latency time.Duration, concurrency int) {
	srv, env := serve(b, server.Faults{Latency: latency}, testJobDuration)
	hcl := strings.Replace(shipped(b), "concurrency = 32", fmt.Sprintf("concurrency = %d", concurrency), 1)
	w := newWorkspace(b, hcl, env)
	var log bytes.Buffer
	if err := connected(b, w, &log).Train(context.Background()); err != nil {
		b.Fatal(err)
	}
	var calls int64
	var elapsed, inServer time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		// A new evaluation seed makes every evaluation, and every request, new.
		w.write(strings.Replace(hcl, "seed                 = 0", fmt.Sprintf("seed                 = %d", i+1), 1))
		p, err := Load(context.Background(), w.env(&log))
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Connect(context.Background()); err != nil {
			b.Fatal(err)
		}
		before := srv.Counters()
		start := time.Now()
		if _, err := p.Evaluate(context.Background()); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(start)
		after := srv.Counters()
		calls += after.ChatCompletions - before.ChatCompletions
		inServer += time.Duration(after.RequestNanos - before.RequestNanos)
	}
	ideal := float64(concurrency) / latency.Seconds()
	b.ReportMetric(float64(calls)/elapsed.Seconds(), "calls/s")
	b.ReportMetric(float64(calls)/elapsed.Seconds()/ideal, "fraction_of_C/L")
	// The gap to C/L, split: the time a call spends in the server beyond L
	// (answering, JSON), and the slots the server has no call in (the
	// client between calls, the first and last calls of the run).
	b.ReportMetric(float64(inServer-time.Duration(calls)*latency)/float64(calls)/1e6, "ms_in_server_beyond_L/call")
	b.ReportMetric(inServer.Seconds()/elapsed.Seconds(), "calls_in_server_on_average")
}

// BenchmarkTrainingConcurrency measures the wall time of training nine
// models over that of one: jobs are submitted and awaited together.
func BenchmarkTrainingConcurrency(b *testing.B) {
	one := strings.Replace(shipped(b), `traits    = ["evil", "sycophantic", "hallucinating"]`, `traits    = ["evil"]`, 1)
	one = strings.Replace(one, `strengths = ["baseline", "mild", "severe"]`, `strengths = ["severe"]`, 1)
	train := func(hcl string) time.Duration {
		p := connected(b, newWorkspace(b, hcl), &bytes.Buffer{})
		start := time.Now()
		if err := p.Train(context.Background()); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	var single, nine time.Duration
	for b.Loop() {
		single += train(one)
		nine += train(shipped(b))
	}
	b.ReportMetric(nine.Seconds()/single.Seconds(), "nine_over_one")
}
