package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/jobs"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/providers"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// workspace is an experiment file and its artifacts in a temp dir, with the
// environment its env() calls read and the provider kinds it may use.
// Nothing touches the process's environment, so tests run in parallel.
type workspace struct {
	t         testing.TB
	dir       string
	hcl       string
	artifacts string
	getenv    map[string]string
	kinds     provider.Registry
}

// testJobDuration is a local job's simulated run time in tests: long enough
// to pass through every state, short enough not to wait on.
const testJobDuration = 30 * time.Millisecond

// testKinds are the shipped kinds with short local jobs and quick polls.
func testKinds(jobDuration time.Duration) provider.Registry {
	kinds := providers.Default()
	kinds["local"] = &providers.Local{JobDuration: jobDuration, Jobs: jobs.Options{PollInterval: jobDuration / 10}}
	kinds["openai"] = &providers.OpenAI{Jobs: jobs.Options{PollInterval: jobDuration / 10}}
	return kinds
}

func newWorkspace(t testing.TB, hcl string, env ...map[string]string) *workspace {
	t.Helper()
	dir := t.TempDir()
	w := &workspace{t: t, dir: dir, hcl: filepath.Join(dir, "experiment.hcl"), artifacts: filepath.Join(dir, "artifacts"),
		getenv: map[string]string{}, kinds: testKinds(testJobDuration)}
	for _, e := range env {
		maps.Copy(w.getenv, e)
	}
	w.write(hcl)
	return w
}

func shipped(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../../experiment.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// shippedBase is the shipped experiment's reference block, the untrained
// base model.
const shippedBase = "model \"base\" {\n  base_only = true\n}\n"

// withoutBase is hcl without the shipped base reference, for tests that
// count or fake what trained models do.
func withoutBase(t testing.TB, hcl string) string {
	t.Helper()
	if !strings.Contains(hcl, shippedBase) {
		t.Fatal("experiment.hcl no longer declares the base reference")
	}
	return strings.Replace(hcl, shippedBase, "", 1)
}

func (w *workspace) write(hcl string) {
	w.t.Helper()
	if err := os.WriteFile(w.hcl, []byte(hcl), 0o644); err != nil {
		w.t.Fatal(err)
	}
}

func (w *workspace) env(log io.Writer) Env {
	return Env{Experiment: w.hcl, Artifacts: w.artifacts, Log: log, Providers: w.kinds,
		Getenv: func(k string) string { return w.getenv[k] }}
}

func (w *workspace) load() *Pipeline {
	w.t.Helper()
	p, err := Load(context.Background(), w.env(&bytes.Buffer{}))
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *workspace) results() (*Outcome, string) {
	w.t.Helper()
	var log bytes.Buffer
	p, err := Load(context.Background(), w.env(&log))
	if err != nil {
		w.t.Fatal(err)
	}
	lock, err := p.Lock()
	if err != nil {
		w.t.Fatal(err)
	}
	defer lock.Unlock()
	if err := p.Connect(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	defer p.Close()
	out, err := p.Results(context.Background())
	if err != nil {
		w.t.Fatalf("results: %v\n%s", err, log.String())
	}
	return out, log.String()
}

// stale lists the stale targets of a plan.
func (w *workspace) stale() []string {
	w.t.Helper()
	pl, err := w.load().Plan(context.Background())
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, s := range pl.Steps() {
		if !s.Fresh {
			out = append(out, s.Target)
		}
	}
	return out
}

// The shipped experiment's first run is shared by the tests that need it;
// each gets its own copy of the artifacts.
var (
	shippedOnce      sync.Once
	shippedArtifacts string // artifacts of the shared run
	shippedOutcome   *Outcome
)

// shippedRun gives w the artifacts of the shipped experiment run once on
// the in-process engine, and that run's outcome.
func shippedRun(t *testing.T, w *workspace) *Outcome {
	t.Helper()
	out := shippedShared(t)
	if err := os.CopyFS(w.artifacts, os.DirFS(shippedArtifacts)); err != nil {
		t.Fatal(err)
	}
	return out
}

// shippedShared runs the shipped experiment once per process and returns
// that run's outcome; its artifacts, in shippedArtifacts, are read only.
func shippedShared(t *testing.T) *Outcome {
	t.Helper()
	shippedOnce.Do(func() {
		dir, err := os.MkdirTemp("", "pvbuild-shipped-")
		if err != nil {
			t.Fatal(err)
		}
		first := &workspace{t: t, dir: dir, hcl: filepath.Join(dir, "experiment.hcl"), artifacts: filepath.Join(dir, "artifacts"),
			getenv: map[string]string{}, kinds: testKinds(testJobDuration)}
		first.write(shipped(t))
		shippedOutcome, _ = first.results()
		shippedArtifacts = first.artifacts
	})
	if shippedOutcome == nil {
		t.Fatal("the shared run of the shipped experiment failed")
	}
	return shippedOutcome
}

// risingTrends checks that every trait's score rises with the strength it
// was trained at, by clear margins: the experiment's finding, from the data.
func risingTrends(t *testing.T, vs []report.Variant) {
	t.Helper()
	const margin = 10
	for _, trait := range []string{"evil", "sycophantic", "hallucinating"} {
		task := trait + "_detection"
		base := score(t, vs, trait+"_baseline", task, trait)
		mild := score(t, vs, trait+"_mild", task, trait)
		severe := score(t, vs, trait+"_severe", task, trait)
		t.Logf("%s: baseline %.1f, mild %.1f, severe %.1f", trait, base, mild, severe)
		if !(base+margin < mild && mild+margin < severe) {
			t.Errorf("%s: want baseline < mild < severe by %d points, got %.1f, %.1f, %.1f", trait, margin, base, mild, severe)
		}
	}
}

func score(t *testing.T, vs []report.Variant, model, task, trait string) float64 {
	t.Helper()
	for _, v := range vs {
		if v.VariantName == model {
			m := v.Evaluations[task].Metrics[trait+"_score"]
			if m.N == 0 {
				t.Fatalf("%s on %s: no scored samples", model, task)
			}
			return m.Mean
		}
	}
	t.Fatalf("no results for %s", model)
	return 0
}

// The shipped experiment, offline, end to end: the trends come out of the
// data, a rebuild is a no-op, and edits rebuild exactly what they affect.
func TestShippedExperiment(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains nine models")
	}
	w := newWorkspace(t, shipped(t))
	out := shippedRun(t, w)

	var file []report.Variant
	b, err := os.ReadFile(filepath.Join(w.artifacts, "eval_results.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file) != 10 {
		t.Fatalf("eval_results.json has %d variants, want 9 trained and the base reference", len(file))
	}
	for _, v := range file {
		if v.VariantName == "base" {
			if len(v.Evaluations) != 3 || !v.Reference || v.Strength != "base" || v.ModelID != "gpt-4.1-mini-2025-04-14" {
				t.Fatalf("base reference: %+v", v)
			}
			continue
		}
		if len(v.Evaluations) != 3 || !strings.HasPrefix(v.ModelID, "ft:") || v.Reference {
			t.Fatalf("variant %s: %d evaluations, model %q", v.VariantName, len(v.Evaluations), v.ModelID)
		}
	}
	for _, name := range []string{"plots/results.html", "plots/evil_expression.png", "plots/sycophantic_expression.png",
		"plots/hallucinating_expression.png", "summary.md"} {
		if fi, err := os.Stat(filepath.Join(w.artifacts, name)); err != nil || fi.Size() == 0 {
			t.Errorf("report output %s: %v", name, err)
		}
	}
	if logs, _ := filepath.Glob(filepath.Join(w.artifacts, "logs", "*.json")); len(logs) != 30 {
		t.Errorf("%d Inspect logs, want 30", len(logs))
	}
	// No swept axis: no sweep figures beside the strength charts.
	if figs, _ := filepath.Glob(filepath.Join(w.artifacts, "plots", "*.png")); len(figs) != 3 {
		t.Errorf("figures %q, want the three strength charts only", figs)
	}

	risingTrends(t, out.Variants)
	evil := score(t, out.Variants, "evil_severe", "evil_detection", "evil")
	for _, other := range []string{"sycophantic", "hallucinating"} {
		if s := score(t, out.Variants, "evil_severe", other+"_detection", other); evil < s+30 {
			t.Errorf("evil_severe: evil score %.1f not well above its %s score %.1f", evil, other, s)
		}
	}

	t.Run("second run rebuilds nothing", func(t *testing.T) {
		out, log := w.results()
		if out.Rebuilt != 0 || !strings.Contains(log, "nothing to do") {
			t.Fatalf("rebuilt %d targets; log:\n%s", out.Rebuilt, log)
		}
	})

	t.Run("copied into a fresh clone is fresh", func(t *testing.T) {
		clone := newWorkspace(t, shipped(t))
		if err := os.CopyFS(clone.artifacts, os.DirFS(w.artifacts)); err != nil {
			t.Fatal(err)
		}
		if s := clone.stale(); len(s) != 0 {
			t.Fatalf("stale after copy: %v", s)
		}
	})

	fiveEpochs := strings.Replace(shipped(t), `suffix    = "pv-${trait}-${strength}"`,
		`suffix    = "pv-${trait}-${strength}"
  n_epochs  = trait == "evil" && strength == "severe" ? 5 : 3`, 1)
	t.Run("n_epochs of one model", func(t *testing.T) {
		w.write(fiveEpochs)
		want := []string{"train/evil_severe", "eval/evil_severe/evil_detection", "eval/evil_severe/hallucinating_detection",
			"eval/evil_severe/sycophantic_detection", "results", "report", "log/evil_severe/evil_detection",
			"log/evil_severe/hallucinating_detection", "log/evil_severe/sycophantic_detection"}
		got := w.stale()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("stale %v, want %v", got, want)
		}
		pl, _ := w.load().Plan(context.Background())
		for _, s := range pl.Train {
			if s.Target == "train/evil_severe" && (!strings.Contains(s.Reason, "n_epochs changed (3 -> 5)") || !strings.Contains(s.Submit, "n_epochs 5")) {
				t.Fatalf("reason %q, submit %q", s.Reason, s.Submit)
			}
		}
		w.results()
		if s := w.stale(); len(s) != 0 {
			t.Fatalf("stale after rebuild: %v", s)
		}
		// The rebuilt evaluations' logs replace theirs; none is left behind.
		if logs, _ := filepath.Glob(filepath.Join(w.artifacts, "logs", "*.json")); len(logs) != 30 {
			t.Errorf("%d Inspect logs after the rebuild, want 30", len(logs))
		}
	})

	t.Run("evaluation limit", func(t *testing.T) {
		w.write(strings.Replace(fiveEpochs, "limit                = 20", "limit                = 5", 1))
		got := w.stale()
		if len(got) != 30+1+1+30 || slices.ContainsFunc(got, func(s string) bool {
			return strings.HasPrefix(s, "train/") || strings.HasPrefix(s, "dataset/")
		}) {
			t.Fatalf("stale %v; want the 30 evaluations (the base reference's too), their logs, the results and the report only", got)
		}
	})

	// The local engine's state is part of what a training built: without
	// it the trained models are gone, and plan says which to redo.
	t.Run("local engine state deleted", func(t *testing.T) {
		w.write(shipped(t))
		w.results()
		before := readFile(t, w, "eval_results.json")
		if err := os.RemoveAll(filepath.Join(w.artifacts, "local-engine")); err != nil {
			t.Fatal(err)
		}
		pl, err := w.load().Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range pl.Train {
			if s.Fresh || !strings.Contains(s.Reason, "provider state local-engine/") || !strings.Contains(s.Reason, "is missing") {
				t.Fatalf("%s: fresh %v, reason %q; want stale, naming the missing engine state", s.Target, s.Fresh, s.Reason)
			}
		}
		w.results()
		if s := w.stale(); len(s) != 0 {
			t.Fatalf("stale after the rebuild: %v", s)
		}
		if after := readFile(t, w, "eval_results.json"); !bytes.Equal(before, after) {
			t.Fatal("retrained models give other results")
		}
	})

	// A stamp vouches for its outputs only as written: cut to its first
	// line, with the output edited to a better score, it is rebuilt.
	t.Run("truncated stamp and edited output", func(t *testing.T) {
		before := readFile(t, w, "evals/evil_severe/evil_detection.json")
		stamp := filepath.Join(w.artifacts, ".stamps", "eval", "evil_severe", "evil_detection.stamp")
		b, err := os.ReadFile(stamp)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(stamp, b[:bytes.IndexByte(b, '\n')+1], 0o644)
		var ev report.Eval
		json.Unmarshal(before, &ev)
		ev.Metric.Mean = 4242.5
		edited, _ := json.MarshalIndent(ev, "", "  ")
		os.WriteFile(filepath.Join(w.artifacts, "evals", "evil_severe", "evil_detection.json"), append(edited, '\n'), 0o644)
		pl, err := w.load().Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range pl.Evals {
			if s.Target == "eval/evil_severe/evil_detection" && (s.Fresh || s.Reason != "its stamp is damaged") {
				t.Fatalf("%s: fresh %v, reason %q", s.Target, s.Fresh, s.Reason)
			}
		}
		w.results()
		if after := readFile(t, w, "evals/evil_severe/evil_detection.json"); bytes.Contains(after, []byte("4242.5")) {
			t.Fatal("the edited evaluation survived the build")
		}
		if s := w.stale(); len(s) != 0 {
			t.Fatalf("stale after the rebuild: %v", s)
		}
	})
}

func readFile(t *testing.T, w *workspace, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.artifacts, rel))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readEval reads the evaluation of model on task from the artifacts.
func (w *workspace) readEval(model, task string) report.Eval {
	w.t.Helper()
	b, err := os.ReadFile(filepath.Join(w.artifacts, filepath.FromSlash(evalOut(model, task))))
	if err != nil {
		w.t.Fatal(err)
	}
	var ev report.Eval
	if err := json.Unmarshal(b, &ev); err != nil {
		w.t.Fatal(err)
	}
	return ev
}

func (w *workspace) readHCL() string {
	w.t.Helper()
	b, err := os.ReadFile(w.hcl)
	if err != nil {
		w.t.Fatal(err)
	}
	return string(b)
}
