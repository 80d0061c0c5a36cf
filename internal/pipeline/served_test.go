package pipeline

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/faults"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/server"
)

const testAPIKey = "sk-pvbuild-test-secret-0123456789"

// served says how a test serves the local engine: behind the
// OpenAI-compatible server, as `mage serve` does.
type served struct {
	faults      server.Faults
	apiKey      string                          // the one key accepted; "" accepts any
	jobDuration time.Duration                   // default testJobDuration
	listener    *faults.Switch                  // default a fresh loopback port
	wrap        func(http.Handler) http.Handler // sees every request first
}

// start runs the server and returns it with the environment that points the
// experiment's openai provider at it.
func (o served) start(t testing.TB) (*server.Server, map[string]string) {
	t.Helper()
	opts, err := local.DefaultOptions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.JobDuration = cmp.Or(o.jobDuration, testJobDuration)
	eng, err := local.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	eng.TrainJudges() // as `mage serve` does
	srv := server.New(eng, server.Options{Faults: o.faults, APIKey: o.apiKey, Log: log.New(io.Discard, "", 0)})
	var h http.Handler = srv
	if o.wrap != nil {
		h = o.wrap(srv)
	}
	ts := httptest.NewUnstartedServer(h)
	if o.listener != nil {
		ts.Listener.Close()
		ts.Listener = o.listener
	}
	ts.Start()
	t.Cleanup(ts.Close)
	return srv, map[string]string{"PROVIDER": "openai", "OPENAI_API_KEY": testAPIKey, "OPENAI_BASE_URL": ts.URL + "/v1"}
}

// serve serves the local engine with faults and jobs of jobDuration.
func serve(t testing.TB, faults server.Faults, jobDuration time.Duration) (*server.Server, map[string]string) {
	t.Helper()
	return served{faults: faults, jobDuration: jobDuration}.start(t)
}

func readResults(t *testing.T, w *workspace) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.artifacts, "eval_results.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// localResults is the eval_results.json of the shipped experiment on the
// in-process engine; served runs are compared with it.
func localResults(t *testing.T) []byte {
	t.Helper()
	shippedShared(t)
	// Read from the shared run itself: a copy of its 13 MB of artifacts
	// would only be read for this one file.
	b, err := os.ReadFile(filepath.Join(shippedArtifacts, "eval_results.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Through go-openai and real HTTP, the experiment gives exactly what the
// in-process engine gives, even when one request in ten fails, and never
// creates a job twice or writes the key anywhere.
func TestServedProviderMatchesInProcess(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains nine models twice")
	}
	want := localResults(t)
	for _, tc := range []struct {
		name   string
		faults server.Faults
	}{
		{"clean", server.Faults{}},
		{"10% failures", server.Faults{Seed: 7, RateLimitRate: 0.04, RetryAfter: 100 * time.Millisecond, ServerErrorRate: 0.03, DropRate: 0.03}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv, env := serve(t, tc.faults, testJobDuration)
			w := newWorkspace(t, shipped(t), env)
			w.results()
			if got := readResults(t, w); !bytes.Equal(got, want) {
				t.Fatalf("served eval_results.json differs from in-process:\n%s\nwant\n%s", got, want)
			}
			c := srv.Counters()
			if c.JobCreations != 9 {
				t.Fatalf("%d job creations for 9 models", c.JobCreations)
			}
			if tc.faults.DropRate > 0 && c.Injected429+c.Injected500+c.InjectedDrops == 0 {
				t.Fatal("no fault was injected")
			}
			t.Logf("%d requests, %d chat completions, faults: %d x 429, %d x 500, %d dropped",
				c.Requests, c.ChatCompletions, c.Injected429, c.Injected500, c.InjectedDrops)
			secret := []byte(testAPIKey)
			filepath.WalkDir(w.dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if b, _ := os.ReadFile(path); bytes.Contains(b, secret) {
						t.Errorf("%s holds the API key", path)
					}
				}
				return nil
			})
		})
	}
}

// Paid responses are cached by request: an evaluation redone after an
// interruption calls nothing again, and a changed judge or coherence prompt
// re-judges without regenerating the answers.
func TestChatCacheSavesPaidCalls(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains a model")
	}
	srv, env := serve(t, server.Faults{}, testJobDuration)
	task, err := sampledata.EvalTask("evil")
	if err != nil {
		t.Fatal(err)
	}
	experiment := func(prompt string, coherence ...string) string {
		hcl := strings.Replace(withoutBase(t, shipped(t)), `traits    = ["evil", "sycophantic", "hallucinating"]`, `traits    = ["evil"]`, 1)
		hcl = strings.Replace(hcl, `strengths = ["baseline", "mild", "severe"]`, `strengths = ["severe"]`, 1)
		hcl = strings.Replace(hcl, `  task "sycophantic_detection" { trait = "sycophantic" }
  task "hallucinating_detection" { trait = "hallucinating" }`, "", 1)
		if len(coherence) > 0 {
			c, _ := json.Marshal(coherence[0])
			hcl = strings.Replace(hcl, "evaluation {\n", "evaluation {\n  coherence_prompt = "+string(c)+"\n", 1)
		}
		q, _ := json.Marshal(task.Questions)
		p, _ := json.Marshal(prompt)
		return hcl + fmt.Sprintf("\ntrait \"evil\" {\n  judge_prompt = %s\n  questions = %s\n}\n", p, q)
	}
	w := newWorkspace(t, experiment(task.EvalPrompt), env)
	calls := func() int64 { return srv.Counters().ChatCompletions }

	w.results()
	first := calls()
	if first != 60 {
		t.Fatalf("first run made %d chat calls, want 20 answers + 20 trait and 20 coherence judgements", first)
	}
	// An evaluation lost after its calls were paid for.
	os.RemoveAll(filepath.Join(w.artifacts, "evals"))
	w.results()
	if n := calls() - first; n != 0 {
		t.Fatalf("redoing the evaluation made %d calls, want 0", n)
	}
	w.write(experiment(task.EvalPrompt + "\nBe strict."))
	w.results()
	if n := calls() - first; n != 20 {
		t.Fatalf("a new judge prompt made %d calls, want the 20 judgements only", n)
	}
	first = calls()
	w.write(experiment(task.EvalPrompt+"\nBe strict.", sampledata.CoherencePrompt()+"\nBe strict."))
	w.results()
	if n := calls() - first; n != 20 {
		t.Fatalf("a new coherence prompt made %d calls, want the 20 coherence judgements only", n)
	}
}

// A job the provider fails is reported with its code and message, in
// train's error and in status, and does not stop the other models.
func TestFailedJobIsReportedAndIsolated(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains nine models")
	}
	_, env := serve(t, server.Faults{FailJobs: []server.JobFailure{{
		Suffix: regexp.MustCompile(`^pv-evil-severe$`), Code: "invalid_training_file",
		Message: "The job failed due to an invalid training file.", Param: "training_file",
	}}}, testJobDuration)
	w := newWorkspace(t, shipped(t), env)
	var log bytes.Buffer
	p := connected(t, w, &log)
	defer p.Close()
	err := p.Train(context.Background())
	if err == nil || !strings.Contains(err.Error(), "model evil_severe: job ftjob-") ||
		!strings.Contains(err.Error(), "failed: invalid_training_file: The job failed due to an invalid training file.") {
		t.Fatalf("train: %v", err)
	}
	stale := w.stale()
	for _, s := range stale {
		if strings.HasPrefix(s, "train/") && s != "train/evil_severe" {
			t.Errorf("%s was not trained: one failure stopped the others", s)
		}
	}
	rows, err := p.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range rows {
		if r.Models == "evil_severe" {
			found = r.State == "failed" && strings.Contains(r.Error, "invalid_training_file") && r.LastEvent != ""
		}
	}
	if !found {
		t.Fatalf("status does not show the failure with its last event: %+v", rows)
	}
	skipped, err := p.Evaluate(context.Background())
	if err != nil || len(skipped) != 1 || !strings.Contains(skipped[0].Reason, "failed: invalid_training_file") {
		t.Fatalf("evaluate: %+v, %v", skipped, err)
	}
}

// A trained model the provider no longer has (deleted, or its base shut
// down) is reported once, naming it and what to do; the next plan marks its
// training stale, and the build after that trains it again.
func TestLostRemoteModelIsReportedOnceAndRetrained(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains a model")
	}
	srv, env := serve(t, server.Faults{}, testJobDuration)
	one := strings.Replace(shipped(t), `traits    = ["evil", "sycophantic", "hallucinating"]`, `traits    = ["evil"]`, 1)
	one = strings.Replace(one, `strengths = ["baseline", "mild", "severe"]`, `strengths = ["severe"]`, 1)
	w := newWorkspace(t, one, env)
	w.results()
	var tm TrainedModel
	json.Unmarshal(readFile(t, w, "train/evil_severe.json"), &tm)

	// The model is deleted at the provider (DELETE /v1/models/{model});
	// the evaluations ask anew (another seed: the cached answers do not serve).
	req, _ := http.NewRequest(http.MethodDelete, env["OPENAI_BASE_URL"]+"/models/"+url.PathEscape(tm.FineTunedModel), nil)
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("delete model: %v %v", resp, err)
	}
	w.write(strings.Replace(one, "seed                 = 0", "seed                 = 1", 1))
	var log bytes.Buffer
	p := connected(t, w, &log)
	_, err := p.Results(context.Background())
	p.Close()
	if err == nil || strings.Count(err.Error(), "model evil_severe:") != 1 ||
		!strings.Contains(err.Error(), "model evil_severe: provider openai no longer has trained model "+tm.FineTunedModel) ||
		!strings.Contains(err.Error(), "train again") {
		t.Fatalf("results: %v", err)
	}
	pl, err := w.load().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s := pl.Train[0]; s.Fresh || s.Reason != "provider openai no longer has trained model "+tm.FineTunedModel {
		t.Fatalf("plan after the loss: %+v", s)
	}
	created := srv.Counters().JobCreations
	w.results()
	if n := srv.Counters().JobCreations - created; n != 1 {
		t.Fatalf("%d jobs created to retrain one lost model", n)
	}
	if s := w.stale(); len(s) != 0 {
		t.Fatalf("stale after retraining: %v", s)
	}
}
