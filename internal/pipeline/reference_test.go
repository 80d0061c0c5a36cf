package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// referenceExperiment trains two evil models and evaluates the base model
// beside them; extra is appended as more blocks.
func referenceExperiment(baseModel, extra string) string {
	return `
training {
  base_model = "` + baseModel + `"
}
evaluation {
  limit = 6
  task "evil_detection" { trait = "evil" }
  task "sycophantic_detection" { trait = "sycophantic" }
}
model_grid {
  traits    = ["evil"]
  strengths = ["baseline", "severe"]
  name      = "${trait}_${strength}"
  suffix    = "pv-${trait}-${strength}"
}
model "base" {
  base_only = true
}
` + extra
}

func submissions(t *testing.T, w *workspace) int {
	t.Helper()
	eng, err := local.Default(filepath.Join(w.artifacts, "local-engine"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := eng.Submissions()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func readVariants(t *testing.T, w *workspace) map[string]report.Variant {
	t.Helper()
	var vs []report.Variant
	if err := json.Unmarshal(readFile(t, w, "eval_results.json"), &vs); err != nil {
		t.Fatal(err)
	}
	out := map[string]report.Variant{}
	for _, v := range vs {
		out[v.VariantName] = v
	}
	return out
}

// The base reference is evaluated with no training: evaluate scores it
// before anything is trained, no job is ever submitted for it, and it
// shows as a reference in every report.
func TestBaseReferenceEvaluatedWithoutTraining(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains two models")
	}
	const base = "gpt-4.1-mini-2025-04-14"
	w := newWorkspace(t, referenceExperiment(base, ""))

	pl, err := w.load().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pl.Steps() {
		if s.Target == "train/base" || s.Target == "dataset/base" {
			t.Fatalf("plan has %s: a reference trains nothing", s.Target)
		}
	}
	var refEvals int
	for _, s := range pl.Evals {
		if strings.HasPrefix(s.Target, "eval/base/") {
			refEvals++
			if s.Fresh || s.Calls != 6*3 || strings.Contains(s.Reason, "training") {
				t.Errorf("%s: fresh %v, %d calls, reason %q; want stale on its own, 6 answers and 6 trait and 6 coherence judgements", s.Target, s.Fresh, s.Calls, s.Reason)
			}
		}
	}
	if refEvals != 2 {
		t.Fatalf("plan has %d evaluations of the base reference, want 2", refEvals)
	}

	// evaluate alone: the reference needs no training, the others do.
	var log bytes.Buffer
	p := connected(t, w, &log)
	skipped, err := p.Evaluate(context.Background())
	p.Close()
	if err != nil {
		t.Fatalf("evaluate: %v\n%s", err, log.String())
	}
	if len(skipped) != 2 || slices.ContainsFunc(skipped, func(s Skipped) bool { return s.Model == "base" }) {
		t.Fatalf("skipped %+v; want the two untrained models, not the reference", skipped)
	}
	if _, err := os.Stat(filepath.Join(w.artifacts, "evals", "base", "evil_detection.json")); err != nil {
		t.Fatalf("the reference was not evaluated: %v\n%s", err, log.String())
	}
	if n := submissions(t, w); n != 0 {
		t.Fatalf("evaluate submitted %d training jobs", n)
	}

	out, _ := w.results()
	if n := submissions(t, w); n != 2 {
		t.Fatalf("%d training jobs, want 2: one per trained model, none for the reference", n)
	}
	for _, rel := range []string{"train/base.json", "datasets/base.jsonl", ".stamps/train/base.stamp", ".stamps/dataset/base.stamp"} {
		if _, err := os.Stat(filepath.Join(w.artifacts, rel)); !os.IsNotExist(err) {
			t.Errorf("%s exists (%v): a reference has no training", rel, err)
		}
	}

	vs := readVariants(t, w)
	ref, ok := vs["base"]
	if !ok || !ref.Reference || ref.Strength != config.BaseStrength || ref.Trait != config.ReferenceTrait || ref.ModelID != base || len(ref.Evaluations) != 2 {
		t.Fatalf("eval_results.json base: %+v (present %v)", ref, ok)
	}
	if m := ref.Evaluations["evil_detection"].Metrics["evil_score"]; m.N == 0 {
		t.Fatalf("the base model's answers were not scored: %+v", m)
	}
	if vs["evil_severe"].Reference || !strings.HasPrefix(vs["evil_severe"].ModelID, "ft:") {
		t.Fatalf("evil_severe: %+v", vs["evil_severe"])
	}

	// summary.md: the reference under each task's table, and the trained
	// models' differences from it.
	md := string(readFile(t, w, "summary.md"))
	tables := parseMD(md)
	for _, task := range []string{"evil_detection", "sycophantic_detection"} {
		m := ref.Evaluations[task].Metrics[strings.TrimSuffix(task, "_detection")+"_score"]
		want := "| base | base | " + base + " | " + report.MetricText(m) + " (" + report.CountText(m) + ") |"
		if !strings.Contains(tables[task], want) {
			t.Errorf("summary.md, %s: no reference row %q in\n%s", task, want, tables[task])
		}
		if !strings.Contains(tables[task], "Difference from reference base") || !strings.Contains(tables[task], "| severe − base |") {
			t.Errorf("summary.md, %s: no difference from the reference:\n%s", task, tables[task])
		}
		if strings.Contains(tables[task], "| trained trait | baseline | severe | base |") {
			t.Errorf("summary.md, %s: the reference's label became a strength column", task)
		}
	}

	// The terminal tables: a reference table per task, and no "base"
	// strength column in the trained models' table.
	var term bytes.Buffer
	if err := report.Table(&term, out.Variants, w.load().Tasks(), []string{"baseline", "mild", "severe"}); err != nil {
		t.Fatal(err)
	}
	text := term.String()
	if strings.Count(text, "reference models (evaluated, not trained here)") != 2 || !strings.Contains(text, base) {
		t.Errorf("terminal tables lack the reference:\n%s", text)
	}
	if strings.Contains(text, "│ BASE ") {
		t.Errorf("the reference's label became a strength column:\n%s", text)
	}

	// The HTML chart draws it dashed; its Inspect logs are written.
	html := string(readFile(t, w, "plots/results.html"))
	if !strings.Contains(html, `<g class="reference" tabindex="0" data-model="base" data-task="evil_detection">`) || !strings.Contains(html, `stroke-dasharray="10 5"`) {
		t.Error("the HTML chart has no dashed line for the reference")
	}
	logs, _ := filepath.Glob(filepath.Join(w.artifacts, "logs", "*.json"))
	baseLogs := 0
	for _, f := range logs {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte(`"`+base+`"`)) {
			baseLogs++
		}
	}
	if len(logs) != 6 || baseLogs != 2 {
		t.Errorf("%d Inspect logs, %d of the base model; want 6 and 2", len(logs), baseLogs)
	}

	// Status and cancel leave it out: it has no job.
	p = connected(t, w, &bytes.Buffer{})
	rows, err := p.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if slices.Contains(strings.Split(r.Models, ", "), "base") {
			t.Errorf("status row for the reference: %+v", r)
		}
	}
	if cancelled, err := p.Cancel(context.Background()); err != nil || len(cancelled) != 0 {
		t.Errorf("cancel: %+v, %v", cancelled, err)
	}
	p.Close()
}

// parseMD splits summary.md by "## task" heading.
func parseMD(md string) map[string]string {
	out := map[string]string{}
	for _, sec := range strings.Split(md, "\n## ")[1:] {
		name, _, _ := strings.Cut(sec, " ")
		out[strings.ReplaceAll(name, `\_`, "_")] = sec
	}
	return out
}

// A model_id reference evaluates a model trained earlier by the same
// local engine without training it again, and answers as that model does;
// a changed base_model re-evaluates the base reference and what trained
// on it, never the model_id reference.
func TestModelIDReferenceAndBaseModelChange(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains two models")
	}
	const base = "gpt-4.1-mini-2025-04-14"
	w := newWorkspace(t, referenceExperiment(base, ""))
	w.results()
	var tm TrainedModel
	if err := json.Unmarshal(readFile(t, w, "train/evil_severe.json"), &tm); err != nil {
		t.Fatal(err)
	}
	theirs := "model \"theirs\" {\n  model_id = \"" + tm.FineTunedModel + "\"\n}\n"
	w.write(referenceExperiment(base, theirs))
	got := w.stale()
	slices.Sort(got)
	want := []string{"eval/theirs/evil_detection", "eval/theirs/sycophantic_detection", "log/theirs/evil_detection",
		"log/theirs/sycophantic_detection", "report", "results"}
	if !slices.Equal(got, want) {
		t.Fatalf("stale %v, want %v: a model_id reference trains nothing", got, want)
	}
	w.results()
	if n := submissions(t, w); n != 2 {
		t.Fatalf("%d training jobs after adding the model_id reference, want still 2", n)
	}
	vs := readVariants(t, w)
	ref := vs["theirs"]
	if !ref.Reference || ref.Strength != config.ReferenceStrength || ref.ModelID != tm.FineTunedModel {
		t.Fatalf("eval_results.json theirs: %+v", ref)
	}
	// The same model asked the same questions answers the same.
	for task, ev := range ref.Evaluations {
		for name, m := range ev.Metrics {
			if trained := vs["evil_severe"].Evaluations[task].Metrics[name]; m != trained || m.N == 0 {
				t.Errorf("%s %s: theirs %+v, evil_severe %+v; want the same model's scores", task, name, m, trained)
			}
		}
	}

	// Another base model: the base reference and the trainings change,
	// the model_id reference does not.
	const other = "gpt-4.1-2025-04-14"
	w.write(referenceExperiment(other, theirs))
	pl, err := w.load().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range pl.Steps() {
		switch {
		case strings.HasPrefix(s.Target, "eval/base/"):
			if s.Fresh || !strings.Contains(s.Reason, "model changed (id:"+base+" -> id:"+other+")") {
				t.Errorf("%s: fresh %v, reason %q; want stale for the new base model", s.Target, s.Fresh, s.Reason)
			}
		case strings.HasPrefix(s.Target, "eval/theirs/"), strings.HasPrefix(s.Target, "dataset/"):
			if !s.Fresh {
				t.Errorf("%s is stale (%s); the model_id reference and the datasets do not depend on base_model", s.Target, s.Reason)
			}
		case strings.HasPrefix(s.Target, "train/"), strings.HasPrefix(s.Target, "eval/"):
			if s.Fresh {
				t.Errorf("%s is fresh after base_model changed", s.Target)
			}
		}
	}
	w.results()
	if vs := readVariants(t, w); vs["base"].ModelID != other || vs["theirs"].ModelID != tm.FineTunedModel {
		t.Fatalf("after the change: base %q, theirs %q", vs["base"].ModelID, vs["theirs"].ModelID)
	}
}

// A model_id the local engine never trained is an error at its block,
// naming the model and the id, told once; nothing is marked stale for it
// and nothing trains it.
func TestUnknownModelIDIsLocated(t *testing.T) {
	t.Parallel()
	const ghost = "ft:gpt-4.1-mini-2025-04-14:org-local:ghost:0000"
	hcl := `
evaluation {
  limit = 3
  task "evil_detection" { trait = "evil" }
  task "sycophantic_detection" { trait = "sycophantic" }
}
model "ghost" {
  model_id = "` + ghost + `"
}
`
	w := newWorkspace(t, hcl)
	var log bytes.Buffer
	p := connected(t, w, &log)
	defer p.Close()
	_, err := p.Results(context.Background())
	if err == nil {
		t.Fatal("results succeeded with a model the engine does not have")
	}
	msg := err.Error()
	for _, want := range []string{"experiment.hcl:8:14: Unknown reference model", `Model "ghost"`, ghost, "model_id"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "stale") || strings.Count(msg, "Unknown reference model") != 1 {
		t.Errorf("want one located error and no stale training:\n%s", msg)
	}
	if n := submissions(t, w); n != 0 {
		t.Errorf("%d training jobs for a reference", n)
	}
}

// Over the OpenAI API (the local engine served), a reference the server
// does not have, a shut-down base model or an ft: id it never trained, is
// an error at its block, each told once; one it has is evaluated.
func TestReferenceUnknownToServedProvider(t *testing.T) {
	t.Parallel()
	srv, env := serve(t, server.Faults{}, testJobDuration)
	const ghost = "ft:gpt-4.1-mini-2025-04-14:org-local:ghost:0000"
	hcl := `
provider "openai" {
  api_key  = env("OPENAI_API_KEY")
  base_url = env("OPENAI_BASE_URL")
}
training {
  provider   = env("PROVIDER")
  base_model = "gpt-4.1-nano-2025-04-14"
}
evaluation {
  provider = env("PROVIDER")
  limit    = 2
  task "evil_detection" { trait = "evil" }
  task "sycophantic_detection" { trait = "sycophantic" }
}
model "base" {
  base_only = true
}
model "ghost" {
  model_id = "` + ghost + `"
}
model "served" {
  model_id = "gpt-4o-mini-2024-07-18"
}
`
	w := newWorkspace(t, hcl, env)
	var log bytes.Buffer
	p := connected(t, w, &log)
	_, err := p.Results(context.Background())
	p.Close()
	if err == nil {
		t.Fatal("results succeeded with models the server does not have")
	}
	msg := err.Error()
	for _, want := range []string{
		`experiment.hcl:17:15: Unknown reference model: Model "base": evaluation provider "openai" does not know model gpt-4.1-nano-2025-04-14, its training.base_model`,
		`experiment.hcl:20:14: Unknown reference model: Model "ghost": evaluation provider "openai" does not know model ` + ghost + `, its model_id`,
	} {
		if strings.Count(msg, want) != 1 {
			t.Errorf("error does not say once %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "stale") || strings.Contains(msg, `"served"`) {
		t.Errorf("error marks a training stale or blames the served model:\n%s", msg)
	}
	if _, err := os.Stat(filepath.Join(w.artifacts, "evals", "served", "evil_detection.json")); err != nil {
		t.Errorf("the model the server has was not evaluated: %v", err)
	}
	if n := srv.Counters().JobCreations; n != 0 {
		t.Errorf("%d fine-tuning jobs created for references", n)
	}
}
