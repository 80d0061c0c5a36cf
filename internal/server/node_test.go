package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// nodeReport is what testdata/node/client.mjs prints.
type nodeReport struct {
	File struct {
		ID       string `json:"id"`
		Object   string `json:"object"`
		Bytes    int    `json:"bytes"`
		Filename string `json:"filename"`
		Purpose  string `json:"purpose"`
	} `json:"file"`
	Reused   bool             `json:"reused"`
	ReusedID string           `json:"reusedID"`
	Created  nodeJob          `json:"created"`
	States   []string         `json:"states"`
	Job      nodeJob          `json:"job"`
	Listed   []string         `json:"listed"`
	Unmatch  []string         `json:"unmatched"`
	Events   []string         `json:"events"`
	Models   []string         `json:"models"`
	Judged   nodeChat         `json:"judged"`
	Answered nodeChat         `json:"answered"`
	NotFound *json.RawMessage `json:"notFound"`
}

type nodeJob struct {
	ID             string            `json:"id"`
	Status         string            `json:"status"`
	FineTunedModel *string           `json:"fine_tuned_model"`
	Seed           int               `json:"seed"`
	Metadata       map[string]string `json:"metadata"`
	Method         struct {
		Supervised struct {
			Hyperparameters struct {
				NEpochs any `json:"n_epochs"`
			} `json:"hyperparameters"`
		} `json:"supervised"`
	} `json:"method"`
}

type nodeChat struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []struct {
				Token       string                  `json:"token"`
				TopLogprobs []provider.TokenLogprob `json:"top_logprobs"`
			} `json:"content"`
		} `json:"logprobs"`
	} `json:"choices"`
}

// TestNodeClient drives the server with OpenAI's official Node client
// (the openai npm package, version pinned by testdata/node/package-lock.json):
// upload with dedup, job creation, polling, listing by metadata with paging,
// events, models, and chat with logprobs, whose answers must be the engine's.
func TestNodeClient(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the official Node client test needs node (v20+) and npm")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not installed; the official Node client test needs node (v20+) and npm")
	}
	t.Parallel()
	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "client.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "node", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Few, short retries: offline, the test should skip in seconds, not minutes.
	install := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts", "--prefer-offline",
		"--fetch-retries=1", "--fetch-retry-mintimeout=1000", "--fetch-retry-maxtimeout=5000")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		t.Skipf("npm ci could not install the openai package (no registry access?): %v\n%s", err, out)
	}

	eng := newEngine(t)
	_, url := startServer(t, eng, server.Options{APIKey: testKey})
	data := trainingData(t, "evil", "severe")
	trainPath := filepath.Join(dir, "train.jsonl")
	if err := os.WriteFile(trainPath, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// An older job that also matches the filter, so that listing pages.
	meta := map[string]string{"pvbuild_key": "node-1"}
	f, err := eng.UploadFile(ctx, "older.jsonl", data)
	if err != nil {
		t.Fatal(err)
	}
	older, err := eng.CreateJob(ctx, provider.JobRequest{Model: baseModel, TrainingFile: f.ID,
		Metadata: map[string]string{"pvbuild_key": "node-1", "extra": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	task, err := sampledata.EvalTask("evil")
	if err != nil {
		t.Fatal(err)
	}
	prompt := judgeCases(t, 1)[0].prompt
	input, _ := json.Marshal(map[string]any{
		"trainingFile": trainPath, "filename": "node-evil-severe.jsonl", "baseModel": baseModel, "judgeModel": judgeModel,
		"suffix": "node-evil", "metadata": meta, "judgePrompt": prompt, "question": task.Questions[0],
	})
	inputPath := filepath.Join(dir, "input.json")
	if err := os.WriteFile(inputPath, input, 0o644); err != nil {
		t.Fatal(err)
	}

	run := exec.CommandContext(ctx, node, "client.mjs")
	run.Dir = dir
	run.Env = append(os.Environ(), "OPENAI_BASE_URL="+url+"/v1", "OPENAI_API_KEY="+testKey, "PVBUILD_INPUT="+inputPath,
		"OPENAI_ORG_ID=", "OPENAI_PROJECT_ID=")
	var stdout, stderr bytes.Buffer
	run.Stdout, run.Stderr = &stdout, &stderr
	if err := run.Run(); err != nil {
		t.Fatalf("node client.mjs: %v\n%s", err, stderr.Bytes())
	}
	var r nodeReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.Bytes())
	}

	if r.File.Object != "file" || r.File.Filename != "node-evil-severe.jsonl" || r.File.Bytes != len(data) || r.File.Purpose != "fine-tune" {
		t.Errorf("uploaded file %+v", r.File)
	}
	if !r.Reused || r.ReusedID != r.File.ID {
		t.Errorf("second upload reused %v (%s), want the first file %s found by listing", r.Reused, r.ReusedID, r.File.ID)
	}
	if r.Created.Status != provider.StatusValidatingFiles || r.Created.Seed != 7 || !reflect.DeepEqual(r.Created.Metadata, meta) ||
		r.Created.Method.Supervised.Hyperparameters.NEpochs != 2.0 {
		t.Errorf("created job %+v", r.Created)
	}
	want := []string{provider.StatusValidatingFiles, provider.StatusQueued, provider.StatusRunning, provider.StatusSucceeded}
	if !isSubsequence(r.States, want) || r.Job.Status != provider.StatusSucceeded || r.Job.FineTunedModel == nil {
		t.Fatalf("states %v, final job %+v", r.States, r.Job)
	}
	direct, err := eng.GetJob(ctx, r.Job.ID)
	if err != nil {
		t.Fatal(err)
	}
	ft := *r.Job.FineTunedModel
	if ft != direct.FineTunedModel {
		t.Errorf("fine-tuned model %s, engine says %s", ft, direct.FineTunedModel)
	}
	if !slices.Equal(r.Listed, []string{r.Created.ID, older.ID}) || len(r.Unmatch) != 0 {
		t.Errorf("listed %v and %v, want [%s %s] and none", r.Listed, r.Unmatch, r.Created.ID, older.ID)
	}
	for _, w := range []string{"Created fine-tuning job: " + r.Created.ID, "New fine-tuned model created: " + ft, "The job has successfully completed"} {
		if !slices.Contains(r.Events, w) {
			t.Errorf("events %q lack %q", r.Events, w)
		}
	}
	if !slices.Contains(r.Models, ft) || !slices.Contains(r.Models, judgeModel) {
		t.Errorf("models %v", r.Models)
	}

	// The judge's top logprobs, and so the score, are the engine's.
	engJudge, err := eng.Chat(ctx, judge.Request(judgeModel, prompt))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Judged.Choices) != 1 || r.Judged.Choices[0].Logprobs == nil || len(r.Judged.Choices[0].Logprobs.Content) != 1 {
		t.Fatalf("judge answer %+v", r.Judged)
	}
	top := r.Judged.Choices[0].Logprobs.Content[0].TopLogprobs
	if !reflect.DeepEqual(top, engJudge.Choices[0].TopLogprobs) || r.Judged.Choices[0].Message.Content != engJudge.Choices[0].Content {
		t.Errorf("judge top logprobs %v\nengine's %v", top, engJudge.Choices[0].TopLogprobs)
	}
	served, _ := judge.Score(top)
	inProcess, _ := judge.Score(engJudge.Choices[0].TopLogprobs)
	if served != inProcess {
		t.Errorf("score %v, engine's %v", served, inProcess)
	}
	seed := 0
	engAnswer, err := eng.Chat(ctx, provider.ChatRequest{Model: ft, Messages: []provider.Message{{Role: "user", Content: task.Questions[0]}},
		Temperature: 1, MaxTokens: 512, N: 2, Seed: &seed})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Answered.Choices) != 2 {
		t.Fatalf("answer %+v", r.Answered)
	}
	for i, c := range r.Answered.Choices {
		if c.Message.Content != engAnswer.Choices[i].Content {
			t.Errorf("answer %d %q, engine's %q", i, c.Message.Content, engAnswer.Choices[i].Content)
		}
	}
	var nf struct {
		Status          int    `json:"status"`
		Type            string `json:"type"`
		IsNotFoundError bool   `json:"isNotFoundError"`
	}
	if r.NotFound == nil || json.Unmarshal(*r.NotFound, &nf) != nil || nf.Status != 404 || !nf.IsNotFoundError || nf.Type != "invalid_request_error" {
		t.Errorf("unknown job: %s, want a NotFoundError", deref(r.NotFound))
	}
	if n := counters(t, url).JobCreations; n != 1 {
		t.Errorf("%d job creations through the server, want 1", n)
	}
}

func deref(m *json.RawMessage) string {
	if m == nil {
		return "null"
	}
	return string(*m)
}
