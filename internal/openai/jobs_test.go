package openai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

func TestCreateJobBody(t *testing.T) {
	tests := []struct {
		name string
		req  provider.JobRequest
		want string // the JSON body OpenAI should receive
	}{
		{
			name: "everything set",
			req: provider.JobRequest{
				Model: "gpt-4.1-mini-2025-04-14", TrainingFile: "file-abc", Suffix: "evil-s1", Seed: 1,
				Hyperparameters: provider.Hyperparameters{NEpochs: 3, LearningRateMultiplier: 0.5, BatchSize: 8},
				Metadata:        map[string]string{"pvbuild_run": "r1", "trait": "evil"},
			},
			want: `{"model":"gpt-4.1-mini-2025-04-14","training_file":"file-abc","suffix":"evil-s1","seed":1,
				"method":{"type":"supervised","supervised":{"hyperparameters":{"n_epochs":3,"learning_rate_multiplier":0.5,"batch_size":8}}},
				"metadata":{"pvbuild_run":"r1","trait":"evil"}}`,
		},
		{
			name: "zero hyperparameters left to OpenAI, seed 0 still sent",
			req:  provider.JobRequest{Model: "gpt-4o-mini-2024-07-18", TrainingFile: "file-abc"},
			want: `{"model":"gpt-4o-mini-2024-07-18","training_file":"file-abc","seed":0,"method":{"type":"supervised","supervised":{}}}`,
		},
		{
			name: "only epochs set",
			req: provider.JobRequest{Model: "gpt-4o-mini-2024-07-18", TrainingFile: "file-abc", Seed: 7,
				Hyperparameters: provider.Hyperparameters{NEpochs: 2}},
			want: `{"model":"gpt-4o-mini-2024-07-18","training_file":"file-abc","seed":7,
				"method":{"type":"supervised","supervised":{"hyperparameters":{"n_epochs":2}}}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got map[string]any
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method != http.MethodPost || r.URL.Path != "/v1/fine_tuning/jobs" {
					writeJSON(w, 404, apiErrorBody("unknown route", "invalid_request_error", "", nil))
					return
				}
				if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
					writeJSON(w, 400, apiErrorBody(err.Error(), "invalid_request_error", "", nil))
					return
				}
				writeJSON(w, 200, jobObject("ftjob-1", "validating_files", map[string]any{
					"model": got["model"], "training_file": got["training_file"], "seed": got["seed"],
					"metadata": got["metadata"], "method": got["method"],
				}))
			}))
			job, err := c.CreateJob(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			var want map[string]any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := json.Marshal(got)
				t.Fatalf("server received\n%s\nwant\n%s", g, tt.want)
			}
			if job.ID != "ftjob-1" || job.Status != provider.StatusValidatingFiles || job.Model != tt.req.Model ||
				job.Seed != tt.req.Seed || job.Hyperparameters != tt.req.Hyperparameters ||
				!reflect.DeepEqual(job.Metadata, tt.req.Metadata) {
				t.Fatalf("job = %+v, want it to echo %+v", job, tt.req)
			}
			checkAgainstSpec(t, got)
		})
	}
}

// checkAgainstSpec fails on fields the API reference does not define.
func checkAgainstSpec(t *testing.T, body map[string]any) {
	t.Helper()
	props, required, ok := specSchema(t, "CreateFineTuningJobRequest")
	if !ok {
		return
	}
	for k := range body {
		if _, ok := props[k]; !ok {
			t.Errorf("sent field %q, which CreateFineTuningJobRequest does not define", k)
		}
	}
	for _, k := range required {
		if _, ok := body[k]; !ok {
			t.Errorf("required field %q not sent", k)
		}
	}
	hpProps, _, _ := specSchema(t, "FineTuneSupervisedHyperparameters")
	method, _ := body["method"].(map[string]any)
	sup, _ := method["supervised"].(map[string]any)
	hp, _ := sup["hyperparameters"].(map[string]any)
	for k := range hp {
		if _, ok := hpProps[k]; !ok {
			t.Errorf("sent hyperparameter %q, which the spec does not define", k)
		}
	}
}

func TestCreateJobRejectsBadRequests(t *testing.T) {
	ok := provider.JobRequest{Model: "gpt-4.1-mini-2025-04-14", TrainingFile: "file-abc"}
	many := map[string]string{}
	for i := range 17 {
		many[fmt.Sprint("k", i)] = "v"
	}
	tests := []struct {
		name   string
		change func(*provider.JobRequest)
		want   string
	}{
		{"no model", func(r *provider.JobRequest) { r.Model = "" }, "no model"},
		{"no training file", func(r *provider.JobRequest) { r.TrainingFile = "" }, "no training file"},
		{"long suffix", func(r *provider.JobRequest) { r.Suffix = strings.Repeat("x", 65) }, "suffix"},
		{"negative seed", func(r *provider.JobRequest) { r.Seed = -1 }, "seed"},
		{"too many epochs", func(r *provider.JobRequest) { r.Hyperparameters.NEpochs = 51 }, "n_epochs"},
		{"negative batch", func(r *provider.JobRequest) { r.Hyperparameters.BatchSize = -2 }, "batch_size"},
		{"NaN learning rate", func(r *provider.JobRequest) { r.Hyperparameters.LearningRateMultiplier = math.NaN() }, "learning_rate"},
		{"17 metadata pairs", func(r *provider.JobRequest) { r.Metadata = many }, "metadata"},
		{"empty metadata key", func(r *provider.JobRequest) { r.Metadata = map[string]string{"": "v"} }, "metadata key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				hits.Add(1)
				writeJSON(w, 500, apiErrorBody("should not be called", "server_error", "", nil))
			}))
			req := ok
			tt.change(&req)
			_, err := c.CreateJob(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if hits.Load() != 0 {
				t.Fatal("invalid request reached the server")
			}
		})
	}
}

// jobServer holds jobs and lists them as OpenAI does: newest first,
// filtered by metadata[k]=v, two per page with after/has_more.
type jobServer struct {
	mu      sync.Mutex
	jobs    []map[string]any // newest first
	queries []url.Values
}

func (s *jobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Method != http.MethodGet || r.URL.Path != "/v1/fine_tuning/jobs" {
		writeJSON(w, 404, apiErrorBody("unknown route", "invalid_request_error", "", nil))
		return
	}
	q := r.URL.Query()
	s.queries = append(s.queries, q)
	filter := map[string]string{}
	for k, v := range q {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") {
			filter[strings.TrimSuffix(name, "]")] = v[0]
		}
	}
	var list []map[string]any
	for _, j := range s.jobs {
		md, _ := j["metadata"].(map[string]string)
		match := true
		for k, v := range filter {
			match = match && md[k] == v
		}
		if match {
			list = append(list, j)
		}
	}
	if after := q.Get("after"); after != "" {
		for i, j := range list {
			if j["id"] == after {
				list = list[i+1:]
				break
			}
		}
	}
	more := len(list) > 2
	if more {
		list = list[:2]
	}
	writeJSON(w, 200, map[string]any{"object": "list", "data": list, "has_more": more})
}

func TestListJobsByMetadata(t *testing.T) {
	srv := &jobServer{}
	md := func(kv ...string) map[string]string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for i, m := range []map[string]string{
		md("run", "a", "trait", "evil"),
		md("run", "b", "trait", "evil"),
		md("run", "a", "trait", "sycophantic"),
		nil,
		md("run", "a", "trait", "evil", "seed", "2"),
		md("run", "a", "trait", "evil", "seed", "3"),
	} {
		srv.jobs = append(srv.jobs, jobObject(fmt.Sprintf("ftjob-%d", i+1), "running", map[string]any{"metadata": m}))
	}
	c := newTestClient(t, srv)
	tests := []struct {
		name    string
		filter  map[string]string
		wantIDs []string
	}{
		{"one key, three pages", md("run", "a"), []string{"ftjob-1", "ftjob-3", "ftjob-5", "ftjob-6"}},
		{"two keys", md("run", "a", "trait", "evil"), []string{"ftjob-1", "ftjob-5", "ftjob-6"}},
		{"no match", md("run", "zzz"), nil},
		{"no filter lists all", nil, []string{"ftjob-1", "ftjob-2", "ftjob-3", "ftjob-4", "ftjob-5", "ftjob-6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.mu.Lock()
			srv.queries = nil
			srv.mu.Unlock()
			jobs, err := c.ListJobs(context.Background(), tt.filter)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, j := range jobs {
				ids = append(ids, j.ID)
				for k, v := range tt.filter {
					if j.Metadata[k] != v {
						t.Errorf("job %s metadata %v does not match %s=%s", j.ID, j.Metadata, k, v)
					}
				}
			}
			if !slices.Equal(ids, tt.wantIDs) {
				t.Fatalf("ids = %v, want %v", ids, tt.wantIDs)
			}
			srv.mu.Lock()
			defer srv.mu.Unlock()
			for i, q := range srv.queries {
				for k, v := range tt.filter {
					if q.Get("metadata["+k+"]") != v {
						t.Errorf("request %d query %v lacks metadata[%s]=%s", i, q, k, v)
					}
				}
				if i > 0 && q.Get("after") == "" {
					t.Errorf("request %d has no after cursor", i)
				}
			}
		})
	}
}

func TestJobMapping(t *testing.T) {
	// The failed jobs carry error objects recorded from the real API.
	f, haveFacts := readFacts(t)
	var tooFew, generic map[string]any
	if haveFacts {
		if err := json.Unmarshal(f.observed(t, "job.error, too few examples"), &tooFew); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(f.observed(t, "job.error, generic"), &generic); err != nil {
			t.Fatal(err)
		}
	}
	created, finished := int64(1764000000), int64(1764003600)
	tests := []struct {
		name    string
		factual bool // needs facts.json
		job     map[string]any
		want    provider.Job
	}{
		{
			name: "failed: too few examples", factual: true,
			job: jobObject("ftjob-f1", "failed", map[string]any{"error": tooFew, "finished_at": finished}),
			want: provider.Job{ID: "ftjob-f1", Status: "failed", Model: "gpt-4.1-mini-2025-04-14", TrainingFile: "file-abc123", Seed: 42,
				CreatedAt: time.Unix(created, 0).UTC(), FinishedAt: time.Unix(finished, 0).UTC(),
				Error: &provider.JobError{Code: "invalid_n_examples", Message: "Training file has 7 example(s), but must have at least 10 examples", Param: "training_file"}},
		},
		{
			name: "failed: server error, null param", factual: true,
			job: jobObject("ftjob-f2", "failed", map[string]any{"error": generic, "finished_at": finished}),
			want: provider.Job{ID: "ftjob-f2", Status: "failed", Model: "gpt-4.1-mini-2025-04-14", TrainingFile: "file-abc123", Seed: 42,
				CreatedAt: time.Unix(created, 0).UTC(), FinishedAt: time.Unix(finished, 0).UTC(),
				Error: &provider.JobError{Code: "server_error", Message: "The job failed due to an internal error"}},
		},
		{
			name: "succeeded: empty error object, resolved hyperparameters",
			job: jobObject("ftjob-s1", "succeeded", map[string]any{
				"error": map[string]any{}, "finished_at": finished, "user_provided_suffix": "evil-s1",
				"fine_tuned_model": "ft:gpt-4.1-mini-2025-04-14:org::evil-s1:BTz2REMH",
				"metadata":         map[string]string{"run": "a"},
				"hyperparameters":  map[string]any{"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 2},
				"method": map[string]any{"type": "supervised", "supervised": map[string]any{
					"hyperparameters": map[string]any{"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 2}}},
			}),
			want: provider.Job{ID: "ftjob-s1", Status: "succeeded", Model: "gpt-4.1-mini-2025-04-14", TrainingFile: "file-abc123", Seed: 42,
				FineTunedModel: "ft:gpt-4.1-mini-2025-04-14:org::evil-s1:BTz2REMH", Suffix: "evil-s1",
				Hyperparameters: provider.Hyperparameters{NEpochs: 3, BatchSize: 4, LearningRateMultiplier: 2},
				Metadata:        map[string]string{"run": "a"},
				CreatedAt:       time.Unix(created, 0).UTC(), FinishedAt: time.Unix(finished, 0).UTC()},
		},
		{
			name: "running: nulls and auto",
			job:  jobObject("ftjob-r1", "running", nil),
			want: provider.Job{ID: "ftjob-r1", Status: "running", Model: "gpt-4.1-mini-2025-04-14", TrainingFile: "file-abc123", Seed: 42,
				CreatedAt: time.Unix(created, 0).UTC()},
		},
		{
			name: "older job: top-level hyperparameters only, suffix from model name",
			job: jobObject("ftjob-o1", "succeeded", map[string]any{"method": nil, "finished_at": finished,
				"fine_tuned_model": "ft:gpt-4o-mini-2024-07-18:org:old:AbC",
				"hyperparameters":  map[string]any{"n_epochs": 10, "batch_size": 1, "learning_rate_multiplier": 1.8}}),
			want: provider.Job{ID: "ftjob-o1", Status: "succeeded", Model: "gpt-4.1-mini-2025-04-14", TrainingFile: "file-abc123", Seed: 42,
				FineTunedModel: "ft:gpt-4o-mini-2024-07-18:org:old:AbC", Suffix: "old",
				Hyperparameters: provider.Hyperparameters{NEpochs: 10, BatchSize: 1, LearningRateMultiplier: 1.8},
				CreatedAt:       time.Unix(created, 0).UTC(), FinishedAt: time.Unix(finished, 0).UTC()},
		},
	}
	_, required, _ := specSchema(t, "FineTuningJob")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.factual && !haveFacts {
				t.Skip("needs facts.json")
			}
			for _, k := range required {
				if _, ok := tt.job[k]; !ok {
					t.Fatalf("fixture lacks required field %q", k)
				}
			}
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/fine_tuning/jobs/"+tt.want.ID {
					writeJSON(w, 404, apiErrorBody("no such job", "invalid_request_error", "", nil))
					return
				}
				writeJSON(w, 200, tt.job)
			}))
			got, err := c.GetJob(context.Background(), tt.want.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("job =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestCancelJobAndEvents(t *testing.T) {
	var eventQueries []url.Values
	// Events newest first, as OpenAI pages them, two per page.
	events := []map[string]any{
		{"object": "fine_tuning.job.event", "id": "ev-4", "created_at": 1764000040, "level": "info", "message": "The job was cancelled", "type": "message"},
		{"object": "fine_tuning.job.event", "id": "ev-3", "created_at": 1764000030, "level": "info", "message": "Step 2/10: training loss=1.20", "type": "metrics", "data": map[string]any{"step": 2, "train_loss": 1.2}},
		{"object": "fine_tuning.job.event", "id": "ev-2", "created_at": 1764000020, "level": "info", "message": "Fine-tuning job started", "type": "message"},
		{"object": "fine_tuning.job.event", "id": "ev-1", "created_at": 1764000010, "level": "info", "message": "Validating training file", "type": "message"},
	}
	c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/v1/fine_tuning/jobs/ftjob-1/cancel":
			writeJSON(w, 200, jobObject("ftjob-1", "cancelled", nil))
		case r.Method == http.MethodGet && r.URL.Path == "/v1/fine_tuning/jobs/ftjob-1/events":
			q := r.URL.Query()
			eventQueries = append(eventQueries, q)
			list := events
			if after := q.Get("after"); after != "" {
				i := slices.IndexFunc(list, func(e map[string]any) bool { return e["id"] == after })
				list = list[i+1:]
			}
			more := len(list) > 2
			if more {
				list = list[:2]
			}
			writeJSON(w, 200, map[string]any{"object": "list", "data": list, "has_more": more})
		default:
			writeJSON(w, 404, apiErrorBody("unknown route", "invalid_request_error", "", nil))
		}
	}))
	job, err := c.CancelJob(context.Background(), "ftjob-1")
	if err != nil {
		t.Fatal(err)
	}
	if job.Status != provider.StatusCancelled || !provider.Terminal(job.Status) {
		t.Fatalf("status = %q, want cancelled", job.Status)
	}
	got, err := c.JobEvents(context.Background(), "ftjob-1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range got {
		ids = append(ids, e.ID)
	}
	if want := []string{"ev-1", "ev-2", "ev-3", "ev-4"}; !slices.Equal(ids, want) {
		t.Fatalf("event ids = %v, want %v (oldest first)", ids, want)
	}
	if e := got[2]; e.Type != "metrics" || e.Level != "info" || !e.CreatedAt.Equal(time.Unix(1764000030, 0)) || !strings.Contains(string(e.Data), `"train_loss":1.2`) {
		t.Fatalf("metrics event = %+v", e)
	}
	if len(eventQueries) != 2 || eventQueries[1].Get("after") != "ev-3" {
		t.Fatalf("event queries = %v, want two pages, the second after ev-3", eventQueries)
	}
	for name, call := range map[string]func() error{
		"GetJob":    func() error { _, err := c.GetJob(context.Background(), ""); return err },
		"CancelJob": func() error { _, err := c.CancelJob(context.Background(), ""); return err },
		"JobEvents": func() error { _, err := c.JobEvents(context.Background(), ""); return err },
	} {
		if err := call(); err == nil || !strings.Contains(err.Error(), "empty") {
			t.Errorf("%s with empty id: err = %v, want a refusal", name, err)
		}
	}
}

func TestCreateJobNotBlindlyRetried(t *testing.T) {
	req := provider.JobRequest{Model: "gpt-4.1-mini-2025-04-14", TrainingFile: "file-abc", Metadata: map[string]string{"run": "a"}}
	tests := []struct {
		name         string
		first        http.HandlerFunc // the first answer; later ones succeed
		timeout      time.Duration
		wantMaybe    bool
		wantStatus   int // of an *APIError in the chain, 0 for none
		wantRequests int32
	}{
		{
			name:      "connection dropped after sending",
			first:     dropConnection,
			wantMaybe: true, wantRequests: 1,
		},
		{
			name: "500 may have created it",
			first: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 500, apiErrorBody("The server had an error while processing your request.", "server_error", "", nil))
			},
			wantMaybe: true, wantStatus: 500, wantRequests: 1,
		},
		{
			name: "timeout after sending",
			first: func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body) // so the server notices the client leaving
				select {
				case <-r.Context().Done():
				case <-time.After(2 * time.Second):
				}
			},
			timeout:   100 * time.Millisecond,
			wantMaybe: true, wantRequests: 1,
		},
		{
			name: "429 is refused before any work, so retried",
			first: func(w http.ResponseWriter, r *http.Request) {
				writeJSON(w, 429, apiErrorBody("Rate limit reached for requests", "requests", "rate_limit_exceeded", nil))
			},
			wantRequests: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if n.Add(1) == 1 {
					tt.first(w, r)
					return
				}
				io.Copy(io.Discard, r.Body)
				writeJSON(w, 200, jobObject("ftjob-1", "validating_files", nil))
			}), func(cfg *Config) {
				if tt.timeout > 0 {
					cfg.HTTPClient = &http.Client{Timeout: tt.timeout}
				}
			})
			job, err := c.CreateJob(context.Background(), req)
			if got := n.Load(); got != tt.wantRequests {
				t.Fatalf("%d requests, want %d", got, tt.wantRequests)
			}
			if !tt.wantMaybe {
				if err != nil || job.ID != "ftjob-1" {
					t.Fatalf("job %+v, err %v; want the job", job, err)
				}
				return
			}
			if !errors.Is(err, ErrMaybeCreated) {
				t.Fatalf("err = %v, want ErrMaybeCreated", err)
			}
			var apiErr *APIError
			if got := errors.As(err, &apiErr); got != (tt.wantStatus != 0) || (got && apiErr.Status != tt.wantStatus) {
				t.Fatalf("err = %v, want APIError status %d in chain", err, tt.wantStatus)
			}
		})
	}

	t.Run("connection refused: nothing sent, so retried and not ambiguous", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		c, err := New(Config{APIKey: testKey, BaseURL: "http://" + addr + "/v1", MaxRetries: 2, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.CreateJob(context.Background(), req)
		if err == nil || errors.Is(err, ErrMaybeCreated) || !strings.Contains(err.Error(), "after 3 attempts") {
			t.Fatalf("err = %v, want a plain failure after 3 attempts", err)
		}
	})
}

func TestJobRefusals(t *testing.T) {
	f := loadFacts(t)
	daily := f.observed(t, "HTTP 429 on POST /v1/fine_tuning/jobs (daily per-model job cap)")
	quota := f.observed(t, "HTTP 429 quota (not retryable)")

	// The wording OpenAI uses for a model it will not fine-tune
	// (openai/openai-cookbook#657).
	unavailable := func(model string) []byte {
		return mustJSON(t, apiErrorBody("Model "+model+" is not available for fine-tuning or does not exist.", "invalid_request_error", "model_not_available", "model"))
	}
	type tc struct {
		name     string
		model    string
		status   int
		body     []byte
		want     error // nil: an *APIError with no refusal sentinel
		wantText []string
	}
	tests := []tc{
		{"daily job cap", "gpt-4.1-2025-04-14", 429, daily, ErrDailyJobLimit, []string{"daily_rate_limit_exceeded", "tomorrow"}},
		{"quota exhausted", "gpt-4.1-2025-04-14", 429, quota, ErrInsufficientQuota, []string{"insufficient_quota", "credit"}},
		// No verbatim payload is public; users report a 403 permission
		// error (ed-donner/llm_engineering#3258).
		{"fine-tuning closed to the organisation", "gpt-4.1-mini-2025-04-14", 403,
			mustJSON(t, apiErrorBody("You are not allowed to create fine-tuning jobs.", "invalid_request_error", "", nil)),
			ErrFineTuningClosed, []string{"HTTP 403", "2027-01-06", "local engine"}},
		{"403 for a key without the scope is not a closure", "gpt-4.1-mini-2025-04-14", 403,
			mustJSON(t, apiErrorBody("You have insufficient permissions for this operation. Missing scopes: api.fine_tuning.jobs.write.", "invalid_request_error", "", nil)),
			nil, []string{"Missing scopes"}},
	}
	for _, m := range f.Deprecations.Legacy {
		if strings.HasPrefix(m, "ft-") {
			continue // fine-tunes of a base, not a model name
		}
		tests = append(tests, tc{"shut down: " + m, m, 400, unavailable(m), ErrModelShutDown,
			[]string{m, "shut down on 2026-10-23", "pick another base model"}})
	}
	for _, m := range append(f.Deprecations.NotListed, "gpt-5-nano") {
		tests = append(tests, tc{"unavailable, not shut down: " + m, m, 400, unavailable(m), ErrModelUnavailable,
			[]string{m, "cannot be fine-tuned"}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			c := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				w.Write(tt.body)
			}))
			_, err := c.CreateJob(context.Background(), provider.JobRequest{Model: tt.model, TrainingFile: "file-abc"})
			if tt.want == nil {
				var apiErr *APIError
				if !errors.As(err, &apiErr) || apiErr.kind != nil {
					t.Fatalf("err = %v, want a plain *APIError", err)
				}
			} else if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if errors.Is(err, ErrMaybeCreated) {
				t.Fatalf("a refusal reported as maybe created: %v", err)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			if n.Load() != 1 {
				t.Fatalf("%d requests, want 1 (refusals are not retried)", n.Load())
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
