// Package inspect writes evaluations as Inspect AI eval logs (the format of
// `inspect eval --log-format json`), one file per model and task, so that
// `inspect view` and Inspect's log readers open the experiment's results.
//
// A log is a pure function of its inputs: the ids, timestamps and file name
// come from the evaluation, the model and the created time the caller gives,
// never from the clock or a random source, so a rebuild writes the same bytes.
package inspect

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// Inspect names models "<api>/<model>". Every provider of this build speaks
// OpenAI's API and names fine-tuned models in its format (ft:<base>:<org>:...;
// the org is "local" for the embedded engine).
const modelAPI = "openai/"

// reducer is how Inspect combines a sample's epochs: the mean, as the
// per-question average of the samples drawn for it.
const reducer = "mean"

// Log returns the file name and content of the eval log of ev, the
// evaluation of model m. created stamps the log (its file name, ids and
// times); a zero created means ev.Created, when the evaluation ran. Either
// way it must be fixed by the build's inputs, never time.Now at render time,
// so that rebuilding unchanged inputs writes identical logs.
//
// Results follow Inspect's definitions: the epochs of a sample (the answers
// drawn for one question) are reduced to their mean, then the scorer's mean
// and stderr (std with ddof=1 over sqrt(n)) are taken over questions. With one
// answer per question they equal ev.Metric. A sample the judge gave no
// answer for has no score; its judge logprobs are in its metadata.
func Log(ev report.Eval, m report.Model, created time.Time) (name string, data []byte, err error) {
	if created.IsZero() {
		created = ev.Created
	}
	if created.IsZero() {
		return "", nil, fmt.Errorf("inspect log: %s on %s: no created time, and the evaluation records none", ev.Model, ev.Task)
	}
	if ev.Model != m.Name {
		return "", nil, fmt.Errorf("inspect log: evaluation of %q given with model %q", ev.Model, m.Name)
	}
	if ev.Task == "" {
		return "", nil, fmt.Errorf("inspect log: evaluation of %q has no task", ev.Model)
	}
	modelID := ev.ModelID
	if modelID == "" {
		modelID = m.ModelID
	}
	if modelID == "" {
		return "", nil, fmt.Errorf("inspect log: %s on %s: no model id", ev.Model, ev.Task)
	}

	created = created.UTC()
	stamp := created.Format(timeFormat)
	evalID := shortID("eval", stamp, m.Name, modelID, ev.Task, ev.Trait)
	taskID := TaskID(ev.Task, m.Name)
	scorer := ev.Trait + "_score"
	scorers := []scorerOf{{scorer, func(s report.Sample) *float64 { return s.Score }, ev.Metric}}
	if c := ev.Coherence; c != nil {
		scorers = append(scorers, scorerOf{CoherenceScorer, func(s report.Sample) *float64 { return s.Coherence }, c.Metric})
	}

	ids, epochs, err := sampleIDs(ev)
	if err != nil {
		return "", nil, fmt.Errorf("inspect log: %s on %s: %w", ev.Model, ev.Task, err)
	}
	req := judge.Request(ev.JudgeModel, "")
	log := evalLog{
		Version: 2,
		Status:  "success",
		Eval: evalSpec{
			EvalID:         evalID,
			RunID:          shortID("run", stamp),
			Created:        stamp,
			Task:           ev.Task,
			TaskID:         taskID,
			TaskAttribs:    map[string]any{},
			TaskArgs:       map[string]any{},
			TaskArgsPassed: map[string]any{},
			Dataset: evalDataset{
				Name: ev.Task, Samples: len(ids), SampleIDs: ids,
			},
			Model:     modelAPI + modelID,
			ModelArgs: map[string]any{},
			ModelRoles: map[string]modelConfig{
				// Inspect's name for the model a model-graded scorer uses.
				"grader": {
					Model: modelAPI + ev.JudgeModel,
					Config: generateConfig{
						Temperature: req.Temperature, MaxTokens: req.MaxTokens, NumChoices: req.N,
						Seed: req.Seed, Logprobs: req.Logprobs, TopLogprobs: req.TopLogprobs,
					},
					Args: map[string]any{},
				},
			},
			Config:   evalConfig{Epochs: epochs, EpochsReducer: []string{reducer}, LogSamples: true},
			Packages: map[string]string{"pvbuild": Version()},
			Metadata: map[string]any{
				"model":       m.Name,
				"trait":       m.Trait,
				"strength":    m.Strength,
				"task_trait":  ev.Trait,
				"judge_model": ev.JudgeModel,
			},
			Scorers: scorerSpecs(ev, scorers),
		},
		Plan: evalPlan{
			Name:  "plan",
			Steps: []planStep{{Solver: "generate", Params: map[string]any{}, ParamsPassed: map[string]any{}}},
		},
		Stats:    evalStats{StartedAt: stamp, CompletedAt: stamp, ModelUsage: map[string]any{}, RoleUsage: map[string]any{}},
		Tags:     []string{},
		Metadata: map[string]any{},
	}

	if !ev.Completed.IsZero() {
		log.Stats.CompletedAt = ev.Completed.UTC().Format(preciseFormat)
	}
	for _, s := range ev.Samples {
		es := sample(ev, s, evalID, modelID, scorer, log.Eval.ModelGenerateConfig, log.Eval.ModelRoles["grader"].Config)
		for model, u := range es.ModelUsage {
			sum, _ := log.Stats.ModelUsage[model].(modelUsage)
			u := u.(modelUsage)
			log.Stats.ModelUsage[model] = modelUsage{InputTokens: sum.InputTokens + u.InputTokens,
				OutputTokens: sum.OutputTokens + u.OutputTokens, TotalTokens: sum.TotalTokens + u.TotalTokens}
		}
		log.Samples = append(log.Samples, es)
	}
	log.Results = evalResults{TotalSamples: len(ev.Samples), CompletedSamples: len(ev.Samples), Scores: []evalScore{}}
	for _, sc := range scorers {
		red, res := reduce(ev, ids, epochs, sc)
		log.Reductions = append(log.Reductions, red)
		log.Results.Scores = append(log.Results.Scores, res)
	}

	data, err = json.MarshalIndent(log, "", "  ")
	if err != nil {
		return "", nil, fmt.Errorf("inspect log: %s on %s: %w", ev.Model, ev.Task, err)
	}
	name = FileName(stamp, ev.Task, taskID)
	return name, append(data, '\n'), nil
}

// timeFormat is how Inspect writes times: ISO 8601 with the offset.
const timeFormat = "2006-01-02T15:04:05-07:00"

// preciseFormat is how Inspect writes the times of samples and events.
const preciseFormat = "2006-01-02T15:04:05.000000-07:00"

// Version is this tool's version as Go recorded it in the binary: the
// module version, else the VCS revision, else "devel".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && s.Value != "" {
			return s.Value
		}
	}
	return "devel"
}

// TaskID is the eval.task_id of the log of model on task: derived from the
// two names only, so every (task, model) pair has its own, and a rerun of the
// same log target (a retrained model, a re-judged evaluation, another created
// time) keeps it. Inspect's viewer and bundler list one entry per task_id
// and take a newer log of the same task_id for a retry of the older one,
// which is what a rebuilt target is.
func TaskID(task, model string) string { return shortID("task", task, model) }

// FileName is the name Inspect gives a log ({created}_{task}_{task_id}.json):
// the created time with its offset, ':' made '-', as in
// 2026-11-26T19-30-00+00-00_evil-detection_<task_id>.json; '_' in the task
// name becomes '-' too, since '_' separates the parts.
func FileName(created, task, taskID string) string {
	return strings.ReplaceAll(created, ":", "-") + "_" + fileSafe(task) + "_" + taskID + ".json"
}

// Logs returns the eval logs of every evaluation of e's models, by file
// name. A zero created stamps each log with its evaluation's time.
func Logs(e report.Experiment, created time.Time) (map[string][]byte, error) {
	models := map[string]report.Model{}
	for _, m := range e.Models {
		models[m.Name] = m
	}
	out := map[string][]byte{}
	var errs []error
	for _, ev := range e.Evals {
		m, ok := models[ev.Model]
		if !ok {
			errs = append(errs, fmt.Errorf("inspect log: evaluation of unknown model %q", ev.Model))
			continue
		}
		name, data, err := Log(ev, m, created)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out[name] = data
	}
	return out, errors.Join(errs...)
}

func sample(ev report.Eval, s report.Sample, evalID, modelID, scorer string, answerConfig, judgeConfig generateConfig) evalSample {
	key := func(kind string) string { return shortID(kind, evalID, s.ID, fmt.Sprint(s.Epoch)) }
	answer := assistantMessage{ID: key("answer"), Content: s.Answer, Source: "generate", Role: "assistant", Model: modelID}
	out := evalSample{
		ID:    s.ID,
		Epoch: s.Epoch,
		Input: s.Question,
		Messages: []any{
			userMessage{ID: key("question"), Content: s.Question, Source: "input", Role: "user"},
			answer,
		},
		Output: modelOutput{
			Model: modelID,
			// The finish reason of the answer is not recorded.
			Choices:    []choice{{Message: answer, StopReason: "unknown"}},
			Completion: s.Answer,
		},
		Scores:       map[string]score{},
		Metadata:     map[string]any{},
		Store:        map[string]any{},
		Events:       []any{},
		ErrorRetries: []any{},
		ModelUsage:   map[string]any{},
		RoleUsage:    map[string]any{},
		UUID:         key("sample"),
		Attachments:  map[string]any{},
	}
	timeSample(&out, ev, s, key, modelID, answer, answerConfig, judgeConfig)
	top := topTokens(s.Judge)
	if s.Score != nil {
		out.Scores[scorer] = score{
			Value: *s.Score,
			// What the judge scored: the model's whole answer.
			Answer: s.Answer,
			Explanation: fmt.Sprintf("The probability-weighted mean of the integer tokens 0..100 among the top tokens of judge %s: %s.",
				ev.JudgeModel, top),
			Metadata: map[string]any{"judge_model": ev.JudgeModel, "judge_logprobs": s.Judge},
			History:  []any{},
		}
	} else {
		out.Metadata["judge_model"] = ev.JudgeModel
		out.Metadata["judge_logprobs"] = s.Judge
		out.Metadata["judge_no_answer"] = fmt.Sprintf("The integer tokens 0..100 hold less than %.0f%% of the probability of the judge's top tokens (%s), so the judge gave no answer.",
			100*judge.MinMass, top)
	}
	if ev.Coherence == nil {
		return out
	}
	top = topTokens(s.CoherenceJudge)
	if s.Coherence != nil {
		out.Scores[CoherenceScorer] = score{
			Value:  *s.Coherence,
			Answer: s.Answer,
			Explanation: fmt.Sprintf("Coherence: the probability-weighted mean of the integer tokens 0..100 among the top tokens of judge %s: %s.",
				ev.JudgeModel, top),
			Metadata: map[string]any{"judge_model": ev.JudgeModel, "judge_logprobs": s.CoherenceJudge,
				"coherent": s.Coherent(ev.Coherence.Threshold), "threshold": ev.Coherence.Threshold},
			History: []any{},
		}
		return out
	}
	out.Metadata["coherence_logprobs"] = s.CoherenceJudge
	out.Metadata["coherence_no_answer"] = fmt.Sprintf("The integer tokens 0..100 hold less than %.0f%% of the probability of the coherence judge's top tokens (%s), so it gave no answer.",
		100*judge.MinMass, top)
	return out
}

// CoherenceScorer names the coherence judgement's scores in a log.
const CoherenceScorer = "coherence"

// scorerOf is one of a log's scorers: its name, a sample's score (nil when
// its judge gave none) and the build's own metric of it.
type scorerOf struct {
	name   string
	value  func(report.Sample) *float64
	metric judge.Metric
}

func scorerSpecs(ev report.Eval, scorers []scorerOf) []evalScorer {
	var out []evalScorer
	for _, sc := range scorers {
		out = append(out, evalScorer{
			Name:    sc.name,
			Options: map[string]any{},
			Metrics: []metricDefinition{
				{Name: "inspect_ai/mean", Options: map[string]any{}},
				{Name: "inspect_ai/stderr", Options: map[string]any{}},
			},
			Metadata: map[string]any{"judge_model": ev.JudgeModel},
		})
	}
	return out
}

// reduce is a scorer's reduction of each question's epochs to their mean and
// its results: mean and stderr over the questions with a score.
func reduce(ev report.Eval, ids []string, epochs int, sc scorerOf) (reduction, evalScore) {
	red := reduction{Scorer: sc.name, Samples: []reducedScore{}}
	if epochs > 1 {
		red.Reducer = reducer
	}
	reduced := map[string][]float64{}
	for _, s := range ev.Samples {
		if v := sc.value(s); v != nil {
			reduced[s.ID] = append(reduced[s.ID], *v)
		}
	}
	var perQuestion []*float64
	for _, id := range ids {
		if vs := reduced[id]; len(vs) > 0 {
			v := mean(vs)
			perQuestion = append(perQuestion, &v)
			red.Samples = append(red.Samples, reducedScore{Value: v, History: []any{}, SampleID: id})
		}
	}
	metric := judge.Summarise(perQuestion)
	return red, evalScore{
		Name:            sc.name,
		Scorer:          sc.name,
		Reducer:         red.Reducer,
		ScoredSamples:   metric.N,
		UnscoredSamples: len(ids) - metric.N,
		Params:          map[string]any{},
		Metrics: map[string]evalMetric{
			"mean":   {Name: "mean", Value: metric.Mean, Params: map[string]any{}},
			"stderr": {Name: "stderr", Value: metric.Stderr, Params: map[string]any{}},
		},
		// The build's own metric, over answers rather than questions.
		Metadata: map[string]any{"pvbuild_metric": sc.metric},
	}
}

// timeSample adds what the evaluation recorded of the sample's calls: a
// model event for the answer and one for the judgement, the sample's times
// and the tokens each model used. Evaluations recorded without calls get
// none of these.
func timeSample(out *evalSample, ev report.Eval, s report.Sample, key func(string) string, modelID string,
	answer assistantMessage, answerConfig, judgeConfig generateConfig) {
	var start time.Time
	for _, c := range []*report.Call{s.AnswerCall, s.JudgeCall, s.CoherenceCall} {
		if c != nil && (start.IsZero() || c.Started.Before(start)) {
			start = c.Started
		}
	}
	if start.IsZero() {
		return
	}
	var end time.Time
	var spans [][2]time.Time
	event := func(c *report.Call, model string, role any, input []any, config generateConfig, output modelOutput) {
		took := c.Completed.Sub(c.Started).Seconds()
		if u := c.Usage; u != nil {
			mu := modelUsage{InputTokens: u.PromptTokens, OutputTokens: u.CompletionTokens, TotalTokens: u.PromptTokens + u.CompletionTokens}
			output.Usage = mu
			// The judge model is called twice a sample: trait, coherence.
			sum, _ := out.ModelUsage[model].(modelUsage)
			out.ModelUsage[model] = modelUsage{InputTokens: sum.InputTokens + mu.InputTokens,
				OutputTokens: sum.OutputTokens + mu.OutputTokens, TotalTokens: sum.TotalTokens + mu.TotalTokens}
		}
		output.Time = took
		// The judgements run at once: the sample works while any of its
		// calls runs, and an event starts at the work done before it.
		out.Events = append(out.Events, modelEvent{
			Timestamp: c.Started.UTC().Format(preciseFormat), WorkingStart: busy(spans, c.Started), Event: "model",
			Model: model, Role: role, Input: input, Tools: []any{}, ToolChoice: "none", Config: config, Output: output,
			Completed: c.Completed.UTC().Format(preciseFormat), WorkingTime: took,
		})
		spans = append(spans, [2]time.Time{c.Started, c.Completed})
		if c.Completed.After(end) {
			end = c.Completed
		}
	}
	question := userMessage{ID: key("question"), Content: s.Question, Source: "input", Role: "user"}
	if c := s.AnswerCall; c != nil {
		event(c, modelAPI+modelID, nil, []any{question}, answerConfig, modelOutput{
			Model: modelID, Choices: []choice{{Message: answer, StopReason: "unknown"}}, Completion: s.Answer,
		})
	}
	if c := s.JudgeCall; c != nil {
		prompt := userMessage{ID: key("judge_prompt"), Content: judge.Prompt(ev.JudgePrompt, s.Question, s.Answer), Source: "input", Role: "user"}
		var token string
		if len(s.Judge) > 0 {
			token = s.Judge[0].Token
		}
		verdict := assistantMessage{ID: key("judge_answer"), Content: token, Source: "generate", Role: "assistant", Model: ev.JudgeModel}
		event(c, modelAPI+ev.JudgeModel, "grader", []any{prompt}, judgeConfig, modelOutput{
			Model: ev.JudgeModel, Choices: []choice{{Message: verdict, StopReason: "max_tokens"}}, Completion: token,
		})
	}
	if c := s.CoherenceCall; c != nil && ev.Coherence != nil {
		prompt := userMessage{ID: key("coherence_prompt"), Content: judge.Prompt(ev.Coherence.Prompt, s.Question, s.Answer), Source: "input", Role: "user"}
		var token string
		if len(s.CoherenceJudge) > 0 {
			token = s.CoherenceJudge[0].Token
		}
		verdict := assistantMessage{ID: key("coherence_answer"), Content: token, Source: "generate", Role: "assistant", Model: ev.JudgeModel}
		event(c, modelAPI+ev.JudgeModel, "grader", []any{prompt}, judgeConfig, modelOutput{
			Model: ev.JudgeModel, Choices: []choice{{Message: verdict, StopReason: "max_tokens"}}, Completion: token,
		})
	}
	out.StartedAt = start.UTC().Format(preciseFormat)
	out.CompletedAt = end.UTC().Format(preciseFormat)
	out.TotalTime = end.Sub(start).Seconds()
	out.WorkingTime = busy(spans, end)
}

// busy is how long before the instant until at least one of the spans
// was running, in seconds.
func busy(spans [][2]time.Time, until time.Time) float64 {
	var clipped [][2]time.Time
	for _, sp := range spans {
		if sp[0].Before(until) {
			if sp[1].After(until) {
				sp[1] = until
			}
			clipped = append(clipped, sp)
		}
	}
	slices.SortFunc(clipped, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	var total time.Duration
	var cur [2]time.Time
	for i, sp := range clipped {
		switch {
		case i == 0:
			cur = sp
		case !sp[0].After(cur[1]):
			if sp[1].After(cur[1]) {
				cur[1] = sp[1]
			}
		default:
			total += cur[1].Sub(cur[0])
			cur = sp
		}
	}
	if len(clipped) > 0 {
		total += cur[1].Sub(cur[0])
	}
	return total.Seconds()
}

// topTokens lists the judge's candidates with their probabilities.
func topTokens(lps []provider.TokenLogprob) string {
	if len(lps) == 0 {
		return "none recorded"
	}
	parts := make([]string, len(lps))
	for i, t := range lps {
		parts[i] = fmt.Sprintf("%q %.1f%%", t.Token, 100*math.Exp(t.Logprob))
	}
	return strings.Join(parts, ", ")
}

// sampleIDs lists the distinct sample ids in order and the number of epochs,
// refusing a repeated (id, epoch): Inspect keys samples by the pair.
func sampleIDs(ev report.Eval) (ids []string, epochs int, err error) {
	seen := map[string]bool{}
	type key struct {
		id    string
		epoch int
	}
	pairs := map[key]bool{}
	for _, s := range ev.Samples {
		if s.ID == "" || s.Epoch < 1 {
			return nil, 0, fmt.Errorf("sample %q epoch %d: needs an id and an epoch from 1", s.ID, s.Epoch)
		}
		if pairs[key{s.ID, s.Epoch}] {
			return nil, 0, fmt.Errorf("sample %q epoch %d appears twice", s.ID, s.Epoch)
		}
		pairs[key{s.ID, s.Epoch}] = true
		if !seen[s.ID] {
			seen[s.ID] = true
			ids = append(ids, s.ID)
		}
		epochs = max(epochs, s.Epoch)
	}
	return ids, max(epochs, 1), nil
}

func mean(vs []float64) float64 {
	var sum float64
	for _, v := range vs {
		sum += v
	}
	return sum / float64(len(vs))
}

// base57 is the alphabet of Inspect's short ids (no 0, 1, I, O, l).
const base57 = "23456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// shortID is a 22-character id in Inspect's style, derived from its parts
// so that it is the same on every rebuild.
func shortID(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	n := new(big.Int).SetBytes(sum[:16])
	base := big.NewInt(int64(len(base57)))
	var b [22]byte
	d := new(big.Int)
	for i := range b {
		n.DivMod(n, base, d)
		b[i] = base57[d.Int64()]
	}
	return string(b[:])
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// fileSafe makes a task name a file-name part. Underscores go too: they
// separate the timestamp, task and id in the name.
func fileSafe(s string) string { return unsafeChars.ReplaceAllString(s, "-") }
