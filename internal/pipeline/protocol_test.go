package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"math"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/cost"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// With the paper's protocol, plan against OpenAI's kind (the project's
// loopback server) prices 10 samples per question: the answer prompts once
// a question, everything else (generated answers, trait and coherence judge
// prompts with the answer they quote, judge tokens) ten times what one
// sample costs.
func TestPaperProtocolPricesTenSamples(t *testing.T) {
	t.Parallel()
	_, env := served{}.start(t)
	env = maps.Clone(env)
	env["PROTOCOL"] = "paper"
	plan := func(hcl string) (*Pipeline, map[string]Step) {
		w := newWorkspace(t, hcl, env)
		p := w.load()
		pl, err := p.Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		steps := map[string]Step{}
		for _, s := range pl.Evals {
			steps[s.Target] = s
		}
		return p, steps
	}
	// Trained models only: a reference answers at its base model's rates.
	p, ten := plan(withoutBase(t, shipped(t)))
	if e := p.exp.Evaluation; e.Protocol != "paper" || e.SamplesPerQuestion != 10 || e.MaxTokens != 1000 || len(e.Overridden) > 0 {
		t.Fatalf("shipped file with PROTOCOL=paper: %s", e.ProtocolSummary())
	}
	_, one := plan(strings.Replace(withoutBase(t, shipped(t)), "  seed                 = 0\n", "  seed                 = 0\n  samples_per_question = 1\n", 1))
	evals := 0
	for _, tg := range p.targets {
		if tg.stage != stageEval {
			continue
		}
		evals++
		s10, s1 := ten[tg.id], one[tg.id]
		q := len(tg.task.questions)
		if q != 20 || s10.Calls != q*(1+2*10) || s1.Calls != q*(1+2*1) {
			t.Fatalf("%s: %d questions, %d calls with 10 samples, %d with 1", tg.id, q, s10.Calls, s1.Calls)
		}
		// What the answer prompts cost, asked once a question whatever n.
		prompts := 0
		for _, question := range tg.task.questions {
			n, err := cost.ConversationTokens([]provider.Message{{Role: "user", Content: question}})
			if err != nil {
				t.Fatal(err)
			}
			prompts += n
		}
		if !s10.Sampling.Priced || !s1.Sampling.Priced || prompts == 0 {
			t.Fatalf("%s: not priced: %+v, %+v", tg.id, s10.Sampling, s1.Sampling)
		}
		if got, want := s10.Sampling.Tokens-prompts, 10*(s1.Sampling.Tokens-prompts); got != want {
			t.Errorf("%s: %d tokens with 10 samples, %d with 1, %d of answer prompts: %d beyond the prompts, want %d",
				tg.id, s10.Sampling.Tokens, s1.Sampling.Tokens, prompts, got, want)
		}
		usdPrompts := float64(prompts) * cost.OpenAIFineTunedSamplingPricePerMillion["gpt-4.1-mini-2025-04-14"].Prefill / 1e6
		if got, want := s10.Sampling.USD-usdPrompts, 10*(s1.Sampling.USD-usdPrompts); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s: $%.6f with 10 samples, $%.6f with 1", tg.id, s10.Sampling.USD, s1.Sampling.USD)
		}
	}
	if evals != 27 {
		t.Fatalf("%d evaluations, want 27", evals)
	}
}

// The paper's protocol on the local engine: every evaluation draws 10
// samples a question, and the standard error reported is clustered by
// question, in the evaluation files, eval_results.json and the tables.
func TestPaperProtocolReportsClusteredSE(t *testing.T) {
	t.Parallel()
	hcl := strings.Replace(shipped(t), "limit                = 20", "limit                = 3", 1)
	w := newWorkspace(t, hcl, map[string]string{"PROTOCOL": "paper"})
	shippedRun(t, w) // trainings do not depend on the protocol: only evaluations rebuild
	out, log := w.results()
	if strings.Contains(log, "training job") || !strings.Contains(log, "clustered by question") {
		t.Fatalf("log:\n%s", log)
	}
	for _, v := range out.Variants {
		for task, ev := range v.Evaluations {
			for name, m := range ev.Metrics {
				if strings.HasSuffix(name, "_coherent") {
					// Over the coherent answers only: fewer, still clustered.
					if m.N+m.NoAnswer > 3*10 || !m.Clustered() || m.Clusters > 3 {
						t.Errorf("%s/%s %s: n %d, no answer %d, clusters %d, clustered %v", v.VariantName, task, name, m.N, m.NoAnswer, m.Clusters, m.Clustered())
					}
					continue
				}
				if m.N+m.NoAnswer != 3*10 || !m.Clustered() || m.Clusters < 2 || m.Clusters > 3 {
					t.Errorf("%s/%s %s: n %d, no answer %d, clusters %d, clustered %v", v.VariantName, task, name, m.N, m.NoAnswer, m.Clusters, m.Clustered())
				}
			}
		}
	}
	var ev report.Eval
	if err := json.Unmarshal(readFile(t, w, "evals/evil_severe/evil_detection.json"), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.JudgeModel != "gpt-4.1-mini-2025-04-14" || len(ev.Samples) != 30 || ev.Samples[9].Epoch != 10 || ev.Metric.StderrClustered == nil {
		t.Fatalf("evaluation: judge %s, %d samples, clustered %v", ev.JudgeModel, len(ev.Samples), ev.Metric.StderrClustered)
	}
	if !bytes.Contains(readFile(t, w, "evals/evil_severe/evil_detection.json"), []byte(`"stderr_clustered"`)) ||
		!bytes.Contains(readResults(t, w), []byte(`"stderr_clustered"`)) {
		t.Fatal("stderr_clustered is missing from the evaluation or eval_results.json")
	}
	var table bytes.Buffer
	if err := report.Table(&table, out.Variants, w.load().Tasks(), sampledata.Strengths); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "mean ± stderr clustered by question") || !strings.Contains(table.String(), " clustered (± ") {
		t.Fatalf("table:\n%s", table.String())
	}
}

// An experiment without protocol keeps its keys: the shipped file as it was
// before protocols, with every setting explicit, is fresh against the
// artifacts of the file that leaves them to the protocol.
func TestOriginalProtocolKeepsKeys(t *testing.T) {
	t.Parallel()
	before := `  judge_model          = env("PROVIDER", "local") == "tinker" ? "Qwen/Qwen3-8B" : "gpt-4o-2024-08-06"
  limit                = 20 # questions per task
  samples_per_question = 1
  temperature          = 1.0
  max_tokens           = 512
  seed                 = 0
`
	hcl := shipped(t)
	start := strings.Index(hcl, "  protocol             = env(")
	end := strings.Index(hcl, "  seed                 = 0\n")
	if start < 0 || end < start {
		t.Fatal("the shipped evaluation block has changed; update this test")
	}
	w := newWorkspace(t, hcl[:start]+before+hcl[end+len("  seed                 = 0\n"):])
	shippedRun(t, w)
	if e := w.load().exp.Evaluation; e.Protocol != "original" || len(e.Overridden) > 0 {
		t.Fatalf("explicit original settings: %s", e.ProtocolSummary())
	}
	if stale := w.stale(); len(stale) > 0 {
		t.Fatalf("stale: %v", stale)
	}
	// The key is exactly the one evaluations had before protocols: the same
	// inputs with the old shipped values, and no protocol among them.
	p := newWorkspace(t, shipped(t)).load()
	td := p.tasks["evil_detection"]
	var old build.Inputs
	for _, in := range []struct {
		name  string
		value any
	}{{"format", evalFormat}, {"model", "train-hash"}, {"provider", p.exp.Providers["local"].Identity()},
		{"judge_provider", p.exp.Providers["local"].Identity()}, {"trait", "evil"}, {"task_data", td.hash},
		{"judge_version", p.exp.Providers["local"].Config.(provider.JudgeVersioned).JudgeVersion()},
		{"judge_model", "gpt-4o-2024-08-06"}, {"coherence_prompt", p.coherenceHash}, {"coherence_threshold", 50.0}, {"limit", 20}, {"samples_per_question", 1}, {"temperature", 1.0},
		{"max_tokens", 512}, {"seed", 0}} {
		old.Add(in.name, in.value)
	}
	if got := p.evalInputs("train-hash", td); got.Key() != old.Key() {
		t.Fatalf("evaluation inputs %v, want %v", got, old)
	}
	// And the paper's protocol rebuilds the evaluations, never the trainings.
	w.getenv["PROTOCOL"] = "paper"
	w.write(shipped(t))
	for _, s := range w.stale() {
		if !strings.HasPrefix(s, "eval/") && !strings.HasPrefix(s, "log/") && s != resultsID && s != reportID {
			t.Errorf("%s is stale under the paper's protocol", s)
		}
	}
}
