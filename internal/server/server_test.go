package server_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/openai"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// TestOpenAIClientEndToEnd drives the server with this project's OpenAI
// provider through a whole experiment cell: upload, train, find the job by
// metadata, answer and judge; served answers and scores must be exactly the
// engine's own.
func TestOpenAIClientEndToEnd(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	_, url := startServer(t, eng, server.Options{APIKey: testKey})
	c := newClient(t, url, 3)
	ctx := context.Background()
	data := trainingData(t, "evil", "severe")

	file, err := c.UploadFile(ctx, "evil_severe.jsonl", data)
	if err != nil {
		t.Fatal(err)
	}
	// A later process has nothing cached: it must find the file by listing.
	again, err := newClient(t, url, 3).UploadFile(ctx, "evil_severe.jsonl", data)
	if err != nil {
		t.Fatal(err)
	}
	if again != file || file.Bytes != int64(len(data)) {
		t.Fatalf("second upload = %+v, want the first %+v (%d bytes)", again, file, len(data))
	}
	if n := counters(t, url).FileUploads; n != 1 {
		t.Fatalf("%d uploads reached the server, want 1", n)
	}

	meta := map[string]string{"pvbuild_key": "k-evil-severe", "trait": "evil"}
	req := provider.JobRequest{Model: baseModel, TrainingFile: file.ID, Suffix: "pv-evil-severe", Seed: 1,
		Hyperparameters: provider.Hyperparameters{NEpochs: 3}, Metadata: meta}
	job, err := c.CreateJob(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != provider.StatusValidatingFiles || job.Model != baseModel || job.Suffix != req.Suffix ||
		job.Seed != 1 || job.Hyperparameters.NEpochs != 3 || !reflect.DeepEqual(job.Metadata, meta) {
		t.Fatalf("created job = %+v, want it to echo %+v", job, req)
	}
	done, states := waitJob(t, c, job.ID)
	want := []string{provider.StatusValidatingFiles, provider.StatusQueued, provider.StatusRunning, provider.StatusSucceeded}
	if !isSubsequence(states, want) || states[len(states)-1] != provider.StatusSucceeded {
		t.Fatalf("states seen %v, want in the order of %v", states, want)
	}
	direct, err := eng.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if done.FineTunedModel == "" || done.FineTunedModel != direct.FineTunedModel || done.Error != nil ||
		done.CreatedAt.Unix() != direct.CreatedAt.Unix() || done.FinishedAt.Unix() != direct.FinishedAt.Unix() {
		t.Fatalf("served job %+v, engine's %+v", done, direct)
	}

	for _, tt := range []struct {
		filter map[string]string
		want   []string
	}{
		{meta, []string{job.ID}},
		{map[string]string{"trait": "evil"}, []string{job.ID}},
		{map[string]string{"pvbuild_key": "k-other"}, nil},
	} {
		jobs, err := c.ListJobs(ctx, tt.filter)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		if !slices.Equal(ids, tt.want) {
			t.Errorf("ListJobs(%v) = %v, want %v", tt.filter, ids, tt.want)
		}
	}

	events, err := c.JobEvents(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, e := range events {
		msgs = append(msgs, e.Message)
	}
	for _, w := range []string{"Created fine-tuning job: " + job.ID, "Validating training file: " + file.ID,
		"Files validated, moving job to queued state", "Fine-tuning job started",
		"New fine-tuned model created: " + done.FineTunedModel, "The job has successfully completed"} {
		if !slices.Contains(msgs, w) {
			t.Errorf("events %q lack %q", msgs, w)
		}
	}

	status, models := get(t, url+"/v1/models", testKey)
	if status != http.StatusOK || !hasModel(models, done.FineTunedModel) || !hasModel(models, judgeModel) {
		t.Errorf("GET /v1/models = %d %v, want the base models and %s", status, models, done.FineTunedModel)
	}

	// Evaluate as the pipeline does: the fine-tune answers each question,
	// the judge scores the answer from its top logprobs.
	task, err := sampledata.EvalTask("evil")
	if err != nil {
		t.Fatal(err)
	}
	seed := 0
	scored := 0
	for _, q := range task.Questions[:8] {
		ask := provider.ChatRequest{Model: done.FineTunedModel, Messages: []provider.Message{{Role: "user", Content: q}},
			Temperature: 1, MaxTokens: 512, N: 2, Seed: &seed}
		answers := chatBoth(t, c, eng, ask)
		for _, a := range answers.Choices {
			graded := chatBoth(t, c, eng, judge.Request(judgeModel, judge.Prompt(task.EvalPrompt, q, a.Content)))
			if len(graded.Choices) != 1 || len(graded.Choices[0].TopLogprobs) == 0 {
				t.Fatalf("judge answered %+v, want one choice with top logprobs", graded)
			}
			if _, ok := judge.Score(graded.Choices[0].TopLogprobs); ok {
				scored++
			}
		}
	}
	if scored == 0 {
		t.Error("the judge scored no answer")
	}
	// A greedy answer from a base model: go-openai cannot send temperature
	// 0, yet the answer must be the engine's greedy one.
	chatBoth(t, c, eng, provider.ChatRequest{Model: baseModel, Messages: []provider.Message{{Role: "user", Content: task.Questions[0]}}})

	n, err := eng.Submissions()
	if err != nil {
		t.Fatal(err)
	}
	if got := counters(t, url); got.JobCreations != 1 || n != 1 || got.ChatCompletions == 0 {
		t.Errorf("counters %+v, engine submissions %d; want 1 job creation", got, n)
	}
}

// chatBoth asks the server and the engine in-process; they must agree
// exactly, logprobs included, as the judge's scores depend on them.
func chatBoth(t *testing.T, c *openai.Client, eng server.Engine, req provider.ChatRequest) provider.ChatResponse {
	t.Helper()
	served, err := c.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := eng.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if served.Model != req.Model || !reflect.DeepEqual(served.Choices, direct.Choices) {
		t.Fatalf("served %+v\nengine %+v", served, direct)
	}
	for i := range served.Choices {
		s1, ok1 := judge.Score(served.Choices[i].TopLogprobs)
		s2, ok2 := judge.Score(direct.Choices[i].TopLogprobs)
		if s1 != s2 || ok1 != ok2 {
			t.Fatalf("served score %v (%v), engine's %v (%v)", s1, ok1, s2, ok2)
		}
	}
	return served
}

// isSubsequence reports whether every state of got appears in want, in
// want's order (polling may miss short states).
func isSubsequence(got, want []string) bool {
	i := 0
	for _, g := range got {
		for i < len(want) && want[i] != g {
			i++
		}
		if i == len(want) {
			return false
		}
	}
	return true
}

func hasModel(list map[string]any, id string) bool {
	data, _ := list["data"].([]any)
	for _, m := range data {
		if m, _ := m.(map[string]any); m["id"] == id && m["object"] == "model" {
			return true
		}
	}
	return false
}

// TestInjectedJobFailure: jobs whose suffix matches a rule fail with its
// error, which reaches the client through GetJob; others are unaffected,
// and the failed job's model is never served.
func TestInjectedJobFailure(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	srv, url := startServer(t, eng, server.Options{APIKey: testKey})
	// Set at runtime, as a test harness would between phases.
	if err := srv.SetFaults(server.Faults{FailJobs: []server.JobFailure{{
		Suffix: regexpMust(t, `^pv-evil-`), Code: "server_error", Message: "The job failed due to an internal error",
	}}}); err != nil {
		t.Fatal(err)
	}
	c := newClient(t, url, 3)
	ctx := context.Background()

	tests := []struct {
		trait, strength, suffix string
		wantErr                 *provider.JobError
	}{
		{"evil", "severe", "pv-evil-severe", &provider.JobError{Code: "server_error", Message: "The job failed due to an internal error"}},
		{"sycophantic", "mild", "pv-sycophantic-mild", nil},
	}
	ids := make([]string, len(tests))
	for i, tt := range tests {
		f, err := c.UploadFile(ctx, tt.suffix+".jsonl", trainingData(t, tt.trait, tt.strength))
		if err != nil {
			t.Fatal(err)
		}
		j, err := c.CreateJob(ctx, provider.JobRequest{Model: baseModel, TrainingFile: f.ID, Suffix: tt.suffix,
			Metadata: map[string]string{"cell": tt.suffix}})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = j.ID
	}
	for i, tt := range tests {
		t.Run(tt.suffix, func(t *testing.T) {
			got, states := waitJob(t, c, ids[i])
			engineJob, err := eng.GetJob(ctx, ids[i])
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantErr == nil {
				if got.Status != provider.StatusSucceeded || got.Error != nil || got.FineTunedModel != engineJob.FineTunedModel {
					t.Fatalf("job = %+v, want it to succeed as the engine's %+v", got, engineJob)
				}
				return
			}
			if got.Status != provider.StatusFailed || !reflect.DeepEqual(got.Error, tt.wantErr) || got.FineTunedModel != "" {
				t.Fatalf("job = %+v (states %v), want failed with %+v", got, states, tt.wantErr)
			}
			if !slices.Contains(states, provider.StatusRunning) && !slices.Contains(states, provider.StatusQueued) {
				t.Logf("states %v: polling missed the running phase", states)
			}
			events, err := c.JobEvents(ctx, ids[i])
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := findEvent(events, tt.wantErr.Message); !ok || e.Level != "error" {
				t.Errorf("events %+v, want the failure at level error", events)
			}
			// The engine did train a model; the server must not serve it.
			hidden := engineJob.FineTunedModel
			if hidden == "" {
				t.Fatal("engine job has no model")
			}
			_, err = c.Chat(ctx, provider.ChatRequest{Model: hidden, Messages: []provider.Message{{Role: "user", Content: "hi"}}})
			var apiErr *openai.APIError
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusNotFound || apiErr.Code != "model_not_found" {
				t.Errorf("chat with the failed job's model: %v, want 404 model_not_found", err)
			}
			if _, models := get(t, url+"/v1/models", testKey); hasModel(models, hidden) {
				t.Errorf("GET /v1/models lists %s", hidden)
			}
		})
	}
	if n := counters(t, url).InjectedJobFails; n != 1 {
		t.Errorf("injected_job_failures = %d, want 1", n)
	}
}

// TestCancelAndValidation covers the other ways a job ends.
func TestCancelAndValidation(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	_, url := startServer(t, eng, server.Options{APIKey: testKey})
	c := newClient(t, url, 3)
	ctx := context.Background()
	full, err := c.UploadFile(ctx, "full.jsonl", trainingData(t, "evil", "mild"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(trainingData(t, "evil", "mild")), "\n")
	small, err := c.UploadFile(ctx, "small.jsonl", []byte(strings.Join(lines[:3], "")))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		file       string
		cancel     bool
		wantStatus string
		wantCode   string
		wantEvent  string
	}{
		{"cancelled before it ends", full.ID, true, provider.StatusCancelled, "", "Fine-tuning job cancelled"},
		{"too few examples", small.ID, false, provider.StatusFailed, "invalid_n_examples", "Training file has 3 example(s), but must have at least 10 examples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j, err := c.CreateJob(ctx, provider.JobRequest{Model: baseModel, TrainingFile: tt.file, Suffix: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if tt.cancel {
				if j, err = c.CancelJob(ctx, j.ID); err != nil || j.Status != provider.StatusCancelled {
					t.Fatalf("cancel = %+v, %v", j, err)
				}
				_, err := c.CancelJob(ctx, j.ID)
				var apiErr *openai.APIError
				if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
					t.Fatalf("second cancel: %v, want HTTP 400", err)
				}
			}
			got, _ := waitJob(t, c, j.ID)
			if got.Status != tt.wantStatus || (tt.wantCode != "") != (got.Error != nil) || (got.Error != nil && got.Error.Code != tt.wantCode) {
				t.Fatalf("job = %+v, want %s with code %q", got, tt.wantStatus, tt.wantCode)
			}
			events, err := c.JobEvents(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := findEvent(events, tt.wantEvent); !ok {
				t.Errorf("events %+v lack %q", events, tt.wantEvent)
			}
		})
	}
}

// findEvent finds an event by message. (openai.Client.Events orders events
// by second, so those of the same second may come in either order.)
func findEvent(events []provider.Event, msg string) (provider.Event, bool) {
	for _, e := range events {
		if e.Message == msg {
			return e, true
		}
	}
	return provider.Event{}, false
}

func regexpMust(t *testing.T, expr string) *regexp.Regexp {
	t.Helper()
	re, err := regexp.Compile(expr)
	if err != nil {
		t.Fatal(err)
	}
	return re
}
