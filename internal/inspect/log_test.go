package inspect_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/modelorganisms/pvbuild/internal/inspect"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/report/reporttest"
)

// refDir holds Inspect's reference formats: ../shared beside the repository.
const refDir = "../../../shared/ref/inspect"

func ref(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(refDir, name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference %s not found (%v): it comes with ../shared beside the repository", p, err)
	}
	return p
}

func readJSON(t *testing.T, path string) any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

var created = time.Date(2026, 11, 26, 19, 30, 0, 0, time.UTC)

type logCase struct {
	name  string
	model report.Model
	eval  report.Eval
}

// cases are every evaluation of the test run, and variants of one with what
// a real run can also produce: unanswered samples and several epochs.
func cases(t *testing.T) []logCase {
	e := reporttest.Experiment(t)
	models := map[string]report.Model{}
	for _, m := range e.Models {
		models[m.Name] = m
	}
	var out []logCase
	for _, ev := range e.Evals {
		out = append(out, logCase{ev.Model + "/" + ev.Task, models[ev.Model], ev})
	}
	base := e.Evals[len(e.Evals)-1]

	noAnswer := base
	noAnswer.Samples = slices.Clone(base.Samples)
	noAnswer.Samples[1].Score, noAnswer.Samples[4].Score = nil, nil
	noAnswer.Metric = judge.Summarise(scoresOf(noAnswer.Samples))
	out = append(out, logCase{"unanswered samples", models[base.Model], noAnswer})

	allNone := base
	allNone.Samples = slices.Clone(base.Samples)
	for i := range allNone.Samples {
		allNone.Samples[i].Score = nil
	}
	allNone.Metric = judge.Summarise(scoresOf(allNone.Samples))
	out = append(out, logCase{"no answer at all", models[base.Model], allNone})

	// Two answers per question: the second epoch scores differently, and
	// one question's second answer went unanswered.
	epochs := base
	epochs.Samples = nil
	for i, s := range base.Samples {
		s.Epoch = 1
		epochs.Samples = append(epochs.Samples, s)
		s.Epoch = 2
		if i == 2 {
			s.Score = nil
		} else {
			v := math.Mod(*s.Score*7+13, 100)
			s.Score = &v
		}
		s.Answer += " (again)"
		epochs.Samples = append(epochs.Samples, s)
	}
	epochs.Metric = judge.Summarise(scoresOf(epochs.Samples))
	out = append(out, logCase{"two epochs", models[base.Model], epochs})

	out = append(out, logCase{"timed calls with usage", models[base.Model], timed(base, true)})
	out = append(out, logCase{"judged for coherence", models[base.Model], withCoherence(timed(base, true))})
	out = append(out, logCase{"timed calls, no usage", models[base.Model], timed(base, false)})
	return out
}

// timed is ev as the evaluation now records it: each sample's answering
// and judge calls with their times and, if withUsage, their token counts.
func timed(ev report.Eval, withUsage bool) report.Eval {
	ev.JudgePrompt = "Rate {answer} to {question} from 0 to 100."
	ev.Samples = slices.Clone(ev.Samples)
	at := ev.Created.Add(1500 * time.Millisecond)
	for i := range ev.Samples {
		s := &ev.Samples[i]
		s.AnswerCall = &report.Call{Started: at, Completed: at.Add(250 * time.Millisecond)}
		s.JudgeCall = &report.Call{Started: at.Add(300 * time.Millisecond), Completed: at.Add(400 * time.Millisecond)}
		if withUsage {
			s.AnswerCall.Usage = &provider.Usage{PromptTokens: 12, CompletionTokens: 30 + i}
			s.JudgeCall.Usage = &provider.Usage{PromptTokens: 200, CompletionTokens: 1}
		}
		at = at.Add(time.Second)
	}
	ev.Completed = at
	return ev
}

// withCoherence is ev judged for coherence as well: sample i scores 20·i
// (the third no answer), timed after its trait judgement, 50 the threshold.
func withCoherence(ev report.Eval) report.Eval {
	ev.Samples = slices.Clone(ev.Samples)
	var scores []*float64
	coherent := 0
	for i := range ev.Samples {
		s := &ev.Samples[i]
		if i != 2 {
			v := float64(20 * i)
			s.Coherence = &v
			if v > 50 {
				coherent++
			}
		}
		s.CoherenceJudge = []provider.TokenLogprob{{Token: fmt.Sprint(20 * i), Logprob: -0.1}}
		if s.JudgeCall != nil {
			c := *s.JudgeCall
			c.Started, c.Completed = c.Completed.Add(50*time.Millisecond), c.Completed.Add(150*time.Millisecond)
			s.CoherenceCall = &c
		}
		scores = append(scores, s.Coherence)
	}
	m := judge.Summarise(scores)
	ev.Coherence = &report.Coherence{Prompt: "Is {answer} a coherent reply to {question}? 0 to 100.", Threshold: 50,
		Metric: m, Coherent: coherent, Share: float64(coherent) / float64(m.N)}
	return ev
}

func scoresOf(ss []report.Sample) []*float64 {
	var out []*float64
	for _, s := range ss {
		out = append(out, s.Score)
	}
	return out
}

// TestSchema validates every log against Inspect's JSON Schema of 2026-04
// and against the EvalLog schema of current Inspect with one exception (see
// below), and finds no null value in it.
func TestSchema(t *testing.T) {
	api := readJSON(t, ref(t, "inspect-openapi.json"))
	schemas := api.(map[string]any)["components"].(map[string]any)["schemas"].(map[string]any)

	// Current Inspect lists stats.connection_limit_history as required while
	// the 2026-04 schema forbids any field it does not know (additionalProperties
	// false), so no log satisfies both. The field is new, has a default (an
	// empty list) when Inspect reads a log, and is about Inspect's own
	// connection pool, which this build does not have: the log leaves it out,
	// and the current schema is checked without that one requirement.
	stats := schemas["EvalStats"].(map[string]any)
	stats["required"] = slices.DeleteFunc(stats["required"].([]any), func(f any) bool { return f == "connection_limit_history" })
	// The 2026-04 schema marks every field required, None-valued ones too,
	// while Inspect leaves a None out of the log (as the example log shows,
	// and as this build does): its types and closed objects are checked with
	// the required lists of current Inspect, which are what Inspect enforces.
	oldDoc := readJSON(t, ref(t, "log-schema-2026-04.json"))
	oldRoot := oldDoc.(map[string]any)
	defs, _ := oldRoot["$defs"].(map[string]any)
	for name, d := range defs {
		d, ok := d.(map[string]any)
		if !ok || d["required"] == nil {
			continue
		}
		if cur, ok := schemas[name].(map[string]any); ok {
			if req, ok := cur["required"]; ok {
				d["required"] = req
			} else {
				delete(d, "required")
			}
		}
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("file:///log-schema-2026-04.json", oldDoc); err != nil {
		t.Fatal(err)
	}
	old, err := c.Compile("file:///log-schema-2026-04.json")
	if err != nil {
		t.Fatal(err)
	}

	c = jsonschema.NewCompiler()
	if err := c.AddResource("file:///inspect-openapi.json", api); err != nil {
		t.Fatal(err)
	}
	current, err := c.Compile("file:///inspect-openapi.json#/components/schemas/EvalLog")
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range cases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, data, err := inspect.Log(tc.eval, tc.model, created)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if nulls := nullPaths("", doc); len(nulls) > 0 {
				t.Errorf("%d null fields, which Inspect leaves out: %v", len(nulls), nulls)
			}
			if err := old.Validate(doc); err != nil {
				t.Errorf("2026-04 schema: %v", err)
			}
			if err := current.Validate(doc); err != nil {
				t.Errorf("current schema: %v", err)
			}
		})
	}
}

// nullPaths lists the null values in a JSON document, by path.
func nullPaths(path string, v any) []string {
	var out []string
	switch v := v.(type) {
	case nil:
		out = append(out, path)
	case map[string]any:
		for k, e := range v {
			out = append(out, nullPaths(path+"."+k, e)...)
		}
	case []any:
		for i, e := range v {
			out = append(out, nullPaths(fmt.Sprintf("%s[%d]", path, i), e)...)
		}
	}
	return out
}

// structure exceptions: where the example log has a value and ours has
// none (the field is left out), because the build does not know it.
var absent = map[string]string{
	"eval.task_file":                 "tasks are not Python files",
	"eval.task_registry_name":        "tasks are not registered with Inspect",
	"eval.dataset.location":          "questions are embedded in the build",
	"eval.model_base_url":            "the provider's endpoint is not part of an evaluation",
	"eval.revision":                  "the build does not read git",
	"eval.config.limit":              "the limit is in experiment.hcl, not in an evaluation",
	"samples.output.usage":           "token usage is not recorded in an evaluation made before calls were, nor given by every provider",
	"samples.output.time":            "timing is not recorded in an evaluation made before calls were",
	"samples.total_time":             "timing is not recorded in an evaluation made before calls were",
	"samples.working_time":           "timing is not recorded in an evaluation made before calls were",
	"samples.events.span_id":         "the build has no spans: a sample's events are its model calls",
	"samples.events.call":            "the raw API request and response are not recorded",
	"samples.events.output.usage":    "not every provider gives token counts",
	"reductions.samples.answer":      "a mean over epochs has no single answer",
	"reductions.samples.explanation": "a mean over epochs has no single explanation",
	"eval.config.sandbox_cleanup":    "Inspect run options the build has no counterpart for",
	"eval.config.log_realtime":       "Inspect run options the build has no counterpart for",
	"eval.config.log_images":         "Inspect run options the build has no counterpart for",
	"eval.config.log_shared":         "Inspect run options the build has no counterpart for",
	"eval.config.score_display":      "Inspect run options the build has no counterpart for",
}

// dataKeys are objects keyed by names from the data (scorers, models,
// metrics), not by fields: their values are compared with each other.
var dataKeys = []string{
	"eval.model_roles", "eval.packages", "results.scores.metrics", "stats.model_usage",
	"samples.scores", "samples.model_usage", "samples.attachments",
}

// freeForm objects hold whatever the task, solver or scorer put there.
var freeForm = []string{
	"eval.task_attribs", "eval.task_args", "eval.task_args_passed", "eval.model_args",
	"eval.metadata", "eval.scorers.options", "eval.scorers.metadata", "eval.scorers.metrics.options",
	"plan.steps.params", "results.scores.params", "results.scores.metrics.*.params",
	"samples.metadata", "samples.store", "samples.scores.*.metadata",
}

// anyType are values whose type Inspect leaves open: a score is "C" for a
// match and a number for a judge; a sample id is an integer or a string (ours
// are the question ids).
var anyType = []string{"samples.scores.*.value", "samples.id", "eval.dataset.sample_ids", "reductions.samples.sample_id"}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	}
	return "number"
}

// like checks that got has every field of the example ex, with a value of
// the same JSON type, recursively.
func like(t *testing.T, path string, ex, got any) {
	t.Helper()
	if slices.Contains(anyType, path) || ex == nil {
		return
	}
	if got == nil {
		t.Errorf("%s: null where the example has %s", path, kind(ex))
		return
	}
	if kind(ex) != kind(got) {
		t.Errorf("%s: %s where the example has %s", path, kind(got), kind(ex))
		return
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch ex := ex.(type) {
	case map[string]any:
		got := got.(map[string]any)
		if slices.Contains(freeForm, path) {
			return
		}
		if slices.Contains(dataKeys, path) {
			for _, exv := range ex {
				for _, gv := range got {
					like(t, join("*"), exv, gv)
				}
				break
			}
			return
		}
		for k, exv := range ex {
			gv, ok := got[k]
			if !ok {
				if _, ok := absent[join(k)]; !ok {
					t.Errorf("%s: no field %q", path, k)
				}
				continue
			}
			like(t, join(k), exv, gv)
		}
	case []any:
		for _, gv := range got.([]any) {
			// A message is compared with the example's message of its role.
			exv := ex[0]
			// An event with the example's event of its kind.
			if m, ok := gv.(map[string]any); ok && m["event"] != nil {
				for _, e := range ex {
					if e.(map[string]any)["event"] == m["event"] {
						exv = e
					}
				}
			} else if ok && m["role"] != nil {
				for _, e := range ex {
					if e.(map[string]any)["role"] == m["role"] {
						exv = e
					}
				}
			}
			if len(ex) > 0 {
				like(t, path, exv, gv)
			}
		}
	}
}

// topKeys lists a JSON object's keys in file order.
func topKeys(t *testing.T, data []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

var fileName = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}[+-]\d{2}-\d{2}_[A-Za-z0-9.-]+_[2-9A-HJ-NP-Za-km-z]{22}\.json$`)

// TestStructure compares each log with the log Inspect itself wrote.
func TestStructure(t *testing.T) {
	exPath := ref(t, "example-log.json")
	exData, err := os.ReadFile(exPath)
	if err != nil {
		t.Fatal(err)
	}
	ex := readJSON(t, exPath)
	header := []string{"version", "status", "eval", "plan", "results", "stats"}
	for _, tc := range cases(t) {
		t.Run(tc.name, func(t *testing.T) {
			name, data, err := inspect.Log(tc.eval, tc.model, created)
			if err != nil {
				t.Fatal(err)
			}
			if !fileName.MatchString(name) || !strings.HasPrefix(name, "2026-11-26T19-30-00+00-00_") {
				t.Errorf("file name %q: the viewer lists only <ISO time>_<task>_<id>.json", name)
			}
			got, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			like(t, "", ex, got)

			keys := topKeys(t, data)
			si := slices.Index(keys, "samples")
			for _, h := range header {
				if i := slices.Index(keys, h); i < 0 || i > si {
					t.Errorf("%s at %d, samples at %d: the header must come first (keys %q)", h, i, si, keys)
				}
			}
			// Every field of the example's header is in ours, in the same order.
			var common []string
			for _, k := range topKeys(t, exData) {
				if slices.Contains(keys, k) {
					common = append(common, k)
				}
			}
			var ours []string
			for _, k := range keys {
				if slices.Contains(common, k) {
					ours = append(ours, k)
				}
			}
			if !slices.Equal(ours, common) {
				t.Errorf("top-level order %q, the example's %q", ours, common)
			}
		})
	}
}

// parsed is the part of a log the results test reads.
type parsed struct {
	Eval struct {
		Created string `json:"created"`
		Task    string `json:"task"`
		Model   string `json:"model"`
		Dataset struct {
			Samples   int      `json:"samples"`
			SampleIDs []string `json:"sample_ids"`
		} `json:"dataset"`
		Config struct {
			Epochs int `json:"epochs"`
		} `json:"config"`
	} `json:"eval"`
	Results struct {
		TotalSamples int `json:"total_samples"`
		Scores       []struct {
			Name            string `json:"name"`
			ScoredSamples   int    `json:"scored_samples"`
			UnscoredSamples int    `json:"unscored_samples"`
			Metrics         map[string]struct {
				Value float64 `json:"value"`
			} `json:"metrics"`
		} `json:"scores"`
	} `json:"results"`
	Samples []struct {
		ID       string `json:"id"`
		Epoch    int    `json:"epoch"`
		Input    string `json:"input"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		Output struct {
			Completion string `json:"completion"`
		} `json:"output"`
		Scores map[string]struct {
			Value       float64        `json:"value"`
			Explanation string         `json:"explanation"`
			Metadata    map[string]any `json:"metadata"`
		} `json:"scores"`
		Metadata map[string]any `json:"metadata"`
	} `json:"samples"`
	Reductions []struct {
		Samples []struct {
			Value    float64 `json:"value"`
			SampleID string  `json:"sample_id"`
		} `json:"samples"`
	} `json:"reductions"`
}

// inspectMetric computes what Inspect reports: each question's answers
// reduced to their mean, then mean and std(ddof=1)/sqrt(n) over questions.
func inspectMetric(ss []report.Sample) (ids []string, reduced map[string]float64, mean, stderr float64) {
	sums, counts := map[string]float64{}, map[string]int{}
	for _, s := range ss {
		if !slices.Contains(ids, s.ID) {
			ids = append(ids, s.ID)
		}
		if s.Score != nil {
			sums[s.ID] += *s.Score
			counts[s.ID]++
		}
	}
	reduced = map[string]float64{}
	for id, n := range counts {
		reduced[id] = sums[id] / float64(n)
		mean += reduced[id]
	}
	n := float64(len(reduced))
	if n == 0 {
		return ids, reduced, 0, 0
	}
	mean /= n
	if n > 1 {
		var ss float64
		for _, v := range reduced {
			ss += (v - mean) * (v - mean)
		}
		stderr = math.Sqrt(ss/(n-1)) / math.Sqrt(n)
	}
	return ids, reduced, mean, stderr
}

func TestResults(t *testing.T) {
	for _, tc := range cases(t) {
		t.Run(tc.name, func(t *testing.T) {
			_, data, err := inspect.Log(tc.eval, tc.model, created)
			if err != nil {
				t.Fatal(err)
			}
			var got parsed
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			ev := tc.eval
			ids, reduced, mean, stderr := inspectMetric(ev.Samples)
			scorer := ev.Trait + "_score"
			epochs := 0
			for _, s := range ev.Samples {
				epochs = max(epochs, s.Epoch)
			}

			if got.Eval.Task != ev.Task || got.Eval.Model != "openai/"+ev.ModelID || got.Eval.Created != "2026-11-26T19:30:00+00:00" {
				t.Errorf("eval: task %q model %q created %q", got.Eval.Task, got.Eval.Model, got.Eval.Created)
			}
			if !slices.Equal(got.Eval.Dataset.SampleIDs, ids) || got.Eval.Dataset.Samples != len(ids) || got.Eval.Config.Epochs != epochs {
				t.Errorf("dataset %v (%d), epochs %d; want %v, %d", got.Eval.Dataset.SampleIDs, got.Eval.Dataset.Samples, got.Eval.Config.Epochs, ids, epochs)
			}
			// The trait's scorer first; a coherence judgement adds its own
			// (TestCoherenceInLog).
			scorers := 1
			if ev.Coherence != nil {
				scorers = 2
			}
			if len(got.Results.Scores) != scorers || got.Results.Scores[0].Name != scorer {
				t.Fatalf("results scores %+v, want %d, the first named %s", got.Results.Scores, scorers, scorer)
			}
			rs := got.Results.Scores[0]
			if math.Abs(rs.Metrics["mean"].Value-mean) > 1e-9 || math.Abs(rs.Metrics["stderr"].Value-stderr) > 1e-9 {
				t.Errorf("mean %v stderr %v, want %v and %v", rs.Metrics["mean"].Value, rs.Metrics["stderr"].Value, mean, stderr)
			}
			if rs.ScoredSamples != len(reduced) || rs.UnscoredSamples != len(ids)-len(reduced) || got.Results.TotalSamples != len(ev.Samples) {
				t.Errorf("scored %d, unscored %d, total %d", rs.ScoredSamples, rs.UnscoredSamples, got.Results.TotalSamples)
			}
			if epochs == 1 && (math.Abs(rs.Metrics["mean"].Value-ev.Metric.Mean) > 1e-9 || math.Abs(rs.Metrics["stderr"].Value-ev.Metric.Stderr) > 1e-9 || rs.UnscoredSamples != ev.Metric.NoAnswer) {
				t.Errorf("with one epoch the results are not the build's metric %+v", ev.Metric)
			}
			if len(got.Reductions) != scorers || len(got.Reductions[0].Samples) != len(reduced) {
				t.Fatalf("reductions %+v", got.Reductions)
			}
			for _, r := range got.Reductions[0].Samples {
				if math.Abs(r.Value-reduced[r.SampleID]) > 1e-9 {
					t.Errorf("reduced %s: %v, want %v", r.SampleID, r.Value, reduced[r.SampleID])
				}
			}

			if len(got.Samples) != len(ev.Samples) {
				t.Fatalf("%d samples, want %d", len(got.Samples), len(ev.Samples))
			}
			for i, s := range ev.Samples {
				g := got.Samples[i]
				if g.ID != s.ID || g.Epoch != s.Epoch || g.Input != s.Question || g.Output.Completion != s.Answer {
					t.Errorf("sample %d: %s/%d %q -> %q", i, g.ID, g.Epoch, g.Input, g.Output.Completion)
				}
				if len(g.Messages) != 2 || g.Messages[0].Role != "user" || g.Messages[0].Content != s.Question ||
					g.Messages[1].Role != "assistant" || g.Messages[1].Content != s.Answer {
					t.Errorf("sample %d messages %+v", i, g.Messages)
				}
				logprobs := g.Metadata["judge_logprobs"]
				if s.Score != nil {
					sc, ok := g.Scores[scorer]
					if !ok || sc.Value != *s.Score {
						t.Errorf("sample %d: score %+v, want %v", i, sc, *s.Score)
					}
					logprobs = sc.Metadata["judge_logprobs"]
					for _, lp := range s.Judge {
						if !strings.Contains(sc.Explanation, fmt.Sprintf("%q %.1f%%", lp.Token, 100*math.Exp(lp.Logprob))) {
							t.Errorf("sample %d: explanation %q lacks token %q", i, sc.Explanation, lp.Token)
						}
					}
				} else if len(g.Scores) != 0 || g.Metadata["judge_no_answer"] == nil {
					t.Errorf("sample %d has no answer from the judge, yet scores %+v, metadata %v", i, g.Scores, g.Metadata)
				}
				var have []provider.TokenLogprob
				if b, err := json.Marshal(logprobs); err != nil || json.Unmarshal(b, &have) != nil || !slices.Equal(have, s.Judge) {
					t.Errorf("sample %d judge logprobs %v, want %v", i, have, s.Judge)
				}
			}
		})
	}
}

func TestReproducible(t *testing.T) {
	e := reporttest.Experiment(t)
	ev, m := e.Evals[0], e.Models[0]
	name1, data1, err := inspect.Log(ev, m, created)
	if err != nil {
		t.Fatal(err)
	}
	name2, data2, _ := inspect.Log(ev, m, created.In(time.FixedZone("EST", -5*3600)))
	if name1 != name2 || !bytes.Equal(data1, data2) {
		t.Error("the same inputs give different logs")
	}
	name3, data3, _ := inspect.Log(ev, m, created.Add(time.Second))
	if name3 == name1 || bytes.Equal(data3, data1) {
		t.Error("another build time gives the same log")
	}

	// Without a created time, the evaluation's own names the log.
	name4, data4, err := inspect.Log(ev, m, time.Time{})
	name5, data5, _ := inspect.Log(ev, m, ev.Created)
	if err != nil || name4 != name5 || !bytes.Equal(data4, data5) || !strings.HasPrefix(name4, ev.Created.UTC().Format("2006-01-02T15-04-05+00-00_")) {
		t.Errorf("zero created: %s (err %v), want the log of the evaluation's time %s", name4, err, ev.Created)
	}

	logs, err := inspect.Logs(e, created)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != len(e.Evals) {
		t.Errorf("%d logs for %d evaluations: names collide", len(logs), len(e.Evals))
	}
	if _, ok := logs[name1]; !ok {
		t.Errorf("Logs lacks %s", name1)
	}
}

func TestLogRefuses(t *testing.T) {
	e := reporttest.Experiment(t)
	dup := e.Evals[0]
	dup.Samples = append(slices.Clone(dup.Samples), dup.Samples[0])
	noID := e.Evals[0]
	noID.ModelID = ""
	noTime := e.Evals[0]
	noTime.Created = time.Time{}
	tests := []struct {
		name    string
		ev      report.Eval
		m       report.Model
		created time.Time
	}{
		{"no time at all", noTime, e.Models[0], time.Time{}},
		{"other model", e.Evals[0], e.Models[1], created},
		{"repeated sample and epoch", dup, e.Models[0], created},
		{"no model id", noID, report.Model{Name: noID.Model}, created},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := inspect.Log(tc.ev, tc.m, tc.created); err == nil {
				t.Error("no error")
			}
		})
	}
}

// TestTaskID: every log has its own eval.task_id, derived from its task and
// model names only, so a rerun of the same target (another created time,
// another model id) keeps it, and the file is named as Inspect names it.
func TestTaskID(t *testing.T) {
	e := reporttest.Experiment(t)
	logs, err := inspect.Logs(e, created)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for name, data := range logs {
		var h struct {
			Eval struct {
				Created string `json:"created"`
				Task    string `json:"task"`
				TaskID  string `json:"task_id"`
			} `json:"eval"`
		}
		if err := json.Unmarshal(data, &h); err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[h.Eval.TaskID]; ok {
			t.Errorf("%s and %s share task_id %s", name, other, h.Eval.TaskID)
		}
		seen[h.Eval.TaskID] = name
		want := strings.ReplaceAll(h.Eval.Created, ":", "-") + "_" + strings.ReplaceAll(h.Eval.Task, "_", "-") + "_" + h.Eval.TaskID + ".json"
		if name != want {
			t.Errorf("file %s, want %s", name, want)
		}
	}
	if len(seen) != len(e.Evals) {
		t.Errorf("%d task ids for %d evaluations", len(seen), len(e.Evals))
	}

	ev, m := e.Evals[0], e.Models[0]
	rerun := ev
	rerun.ModelID = ev.ModelID + "-retrained"
	n1, _, _ := inspect.Log(ev, m, created)
	n2, _, err := inspect.Log(rerun, m, created.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	id := func(name string) string { return strings.TrimSuffix(name[strings.LastIndex(name, "_")+1:], ".json") }
	if id(n1) != id(n2) || id(n1) != inspect.TaskID(ev.Task, m.Name) {
		t.Errorf("a rerun of the same target has task_id %s, first %s", id(n2), id(n1))
	}
}

// TestCallsInLog: the recorded calls become each sample's model events,
// times and usage, summed in the stats; the tool's version is a package.
func TestCallsInLog(t *testing.T) {
	e := reporttest.Experiment(t)
	base := e.Evals[len(e.Evals)-1]
	var model report.Model
	for _, m := range e.Models {
		if m.Name == base.Model {
			model = m
		}
	}
	type usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}
	type event struct {
		Event        string  `json:"event"`
		Model        string  `json:"model"`
		Timestamp    string  `json:"timestamp"`
		Completed    string  `json:"completed"`
		WorkingStart float64 `json:"working_start"`
		WorkingTime  float64 `json:"working_time"`
		Output       struct {
			Usage *usage `json:"usage"`
		} `json:"output"`
	}
	type logDoc struct {
		Eval struct {
			Packages map[string]string `json:"packages"`
		} `json:"eval"`
		Stats struct {
			StartedAt   string           `json:"started_at"`
			CompletedAt string           `json:"completed_at"`
			ModelUsage  map[string]usage `json:"model_usage"`
		} `json:"stats"`
		Samples []struct {
			StartedAt   string           `json:"started_at"`
			CompletedAt string           `json:"completed_at"`
			TotalTime   float64          `json:"total_time"`
			WorkingTime float64          `json:"working_time"`
			ModelUsage  map[string]usage `json:"model_usage"`
			Events      []event          `json:"events"`
		} `json:"samples"`
	}
	decode := func(ev report.Eval) logDoc {
		_, data, err := inspect.Log(ev, model, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var d logDoc
		if err := json.Unmarshal(data, &d); err != nil {
			t.Fatal(err)
		}
		return d
	}

	ev := timed(base, true)
	d := decode(ev)
	if d.Eval.Packages["pvbuild"] == "" {
		t.Errorf("eval.packages %v: no pvbuild version", d.Eval.Packages)
	}
	if d.Stats.StartedAt == d.Stats.CompletedAt || d.Stats.CompletedAt != ev.Completed.UTC().Format("2006-01-02T15:04:05.000000-07:00") {
		t.Errorf("stats started %s, completed %s; want the evaluation's completion %s", d.Stats.StartedAt, d.Stats.CompletedAt, ev.Completed)
	}
	answerModel, judgeModel := "openai/"+base.ModelID, "openai/"+base.JudgeModel
	n := len(ev.Samples)
	wantAnswer := usage{12 * n, 30*n + n*(n-1)/2, 0}
	wantAnswer.TotalTokens = wantAnswer.InputTokens + wantAnswer.OutputTokens
	if got := d.Stats.ModelUsage[answerModel]; got != wantAnswer {
		t.Errorf("stats usage of %s: %+v, want %+v", answerModel, got, wantAnswer)
	}
	if got := d.Stats.ModelUsage[judgeModel]; got != (usage{200 * n, n, 201 * n}) {
		t.Errorf("stats usage of %s: %+v, want %d samples of 200+1", judgeModel, got, n)
	}
	for i, s := range d.Samples {
		if s.StartedAt == s.CompletedAt || math.Abs(s.TotalTime-0.4) > 1e-9 || math.Abs(s.WorkingTime-0.35) > 1e-9 {
			t.Errorf("sample %d: started %s, completed %s, total %g s, working %g s; want 0.4 s and 0.35 s", i, s.StartedAt, s.CompletedAt, s.TotalTime, s.WorkingTime)
		}
		if s.ModelUsage[answerModel].OutputTokens != 30+i || s.ModelUsage[judgeModel].InputTokens != 200 {
			t.Errorf("sample %d usage %+v", i, s.ModelUsage)
		}
		if len(s.Events) != 2 || s.Events[0].Event != "model" || s.Events[0].Model != answerModel ||
			s.Events[1].Event != "model" || s.Events[1].Model != judgeModel || s.Events[1].Output.Usage == nil ||
			s.Events[1].WorkingStart != s.Events[0].WorkingTime || s.Events[0].Timestamp == s.Events[0].Completed {
			t.Errorf("sample %d events %+v: want the answer's model event, then the judge's", i, s.Events)
		}
	}

	// A provider that gives no token counts: no usage, still the events.
	d = decode(timed(base, false))
	if len(d.Stats.ModelUsage) != 0 || len(d.Samples[0].ModelUsage) != 0 || len(d.Samples[0].Events) != 2 || d.Samples[0].Events[0].Output.Usage != nil {
		t.Errorf("without usage: stats %v, sample %v, events %+v", d.Stats.ModelUsage, d.Samples[0].ModelUsage, d.Samples[0].Events)
	}
	// An evaluation recorded without calls: no events, as before.
	if d = decode(base); len(d.Samples[0].Events) != 0 || d.Samples[0].StartedAt != "" {
		t.Errorf("untimed evaluation: events %+v, started %q", d.Samples[0].Events, d.Samples[0].StartedAt)
	}
}

// TestCoherenceInLog checks that a log shows both judgements of each
// answer: two scores a sample (the coherence one absent where its judge gave
// none, with the reason in metadata), two scorers in the results, each
// computed from its own scores, and a model event for each judge call.
func TestCoherenceInLog(t *testing.T) {
	e := reporttest.Experiment(t)
	base := e.Evals[len(e.Evals)-1]
	var model report.Model
	for _, m := range e.Models {
		if m.Name == base.Model {
			model = m
		}
	}
	ev := withCoherence(timed(base, true))
	_, data, err := inspect.Log(ev, model, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Eval struct {
			Scorers []struct{ Name string } `json:"scorers"`
		} `json:"eval"`
		Results struct {
			Scores []struct {
				Name          string `json:"name"`
				ScoredSamples int    `json:"scored_samples"`
				Metrics       map[string]struct {
					Value float64 `json:"value"`
				} `json:"metrics"`
			} `json:"scores"`
		} `json:"results"`
		Samples []struct {
			Scores map[string]struct {
				Value  float64 `json:"value"`
				Answer string  `json:"answer"`
			} `json:"scores"`
			Metadata map[string]any `json:"metadata"`
			Events   []struct {
				Role  string `json:"role"`
				Input []struct {
					Content string `json:"content"`
				} `json:"input"`
			} `json:"events"`
			ModelUsage map[string]struct {
				InputTokens int `json:"input_tokens"`
			} `json:"model_usage"`
		} `json:"samples"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	trait := ev.Trait + "_score"
	if len(d.Eval.Scorers) != 2 || d.Eval.Scorers[0].Name != trait || d.Eval.Scorers[1].Name != "coherence" {
		t.Errorf("scorers %+v, want %s then coherence", d.Eval.Scorers, trait)
	}
	var sum float64
	n := 0
	for _, s := range ev.Samples {
		if s.Coherence != nil {
			sum += *s.Coherence
			n++
		}
	}
	if len(d.Results.Scores) != 2 || d.Results.Scores[1].Name != "coherence" || d.Results.Scores[1].ScoredSamples != n ||
		math.Abs(d.Results.Scores[1].Metrics["mean"].Value-sum/float64(n)) > 1e-9 {
		t.Errorf("results %+v; want coherence over %d samples, mean %g", d.Results.Scores, n, sum/float64(n))
	}
	judgeModel := "openai/" + ev.JudgeModel
	for i, s := range d.Samples {
		want := ev.Samples[i]
		c, ok := s.Scores["coherence"]
		if ok != (want.Coherence != nil) || (ok && (c.Value != *want.Coherence || c.Answer != want.Answer)) {
			t.Errorf("sample %d: coherence score %+v (present %v), want %v", i, c, ok, want.Coherence)
		}
		if _, ok := s.Scores[trait]; ok != (want.Score != nil) {
			t.Errorf("sample %d: trait score present %v", i, ok)
		}
		if want.Coherence == nil && s.Metadata["coherence_no_answer"] == nil {
			t.Errorf("sample %d: no coherence score and no reason in metadata %v", i, s.Metadata)
		}
		if len(s.Events) != 3 || s.Events[2].Role != "grader" || len(s.Events[2].Input) != 1 ||
			!strings.HasPrefix(s.Events[2].Input[0].Content, "Is "+want.Answer+" a coherent reply to") {
			t.Errorf("sample %d: events %+v; want the answer's, the trait judge's and the coherence judge's", i, s.Events)
		}
		if got := s.ModelUsage[judgeModel].InputTokens; got != 400 {
			t.Errorf("sample %d: judge input tokens %d, want both calls' 200", i, got)
		}
	}
}
