package jobs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/jobs"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/openai"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/server"
	"github.com/modelorganisms/pvbuild/internal/testlog"
	"github.com/modelorganisms/pvbuild/internal/vclock"
)

// rule makes the next n requests of method on path fail as how says:
// "500" (answered before any work), "429long" (a rate limit asking for a
// 20-minute wait, longer than the transport waits itself), "drop" (connection closed before any
// work), "lost" (served in full, then the answer lost). A rule with after
// set waits until that rule has fired n times.
type rule struct {
	method, path, how string
	n                 int
	after             *rule
}

// scripted puts rules in front of the real server.
type scripted struct {
	h     http.Handler
	mu    sync.Mutex
	rules []*rule
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	var hit *rule
	for _, ru := range s.rules {
		if ru.n > 0 && (ru.after == nil || ru.after.n == 0) && r.Method == ru.method && r.URL.Path == ru.path {
			ru.n--
			hit = ru
			break
		}
	}
	s.mu.Unlock()
	switch {
	case hit == nil:
		s.h.ServeHTTP(w, r)
	case hit.how == "500":
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(500)
		io.WriteString(w, `{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`)
	case hit.how == "429long":
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "1200")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"message":"Rate limit reached.","type":"requests","param":null,"code":"rate_limit_exceeded"}}`)
	default:
		if hit.how == "lost" {
			s.h.ServeHTTP(httptest.NewRecorder(), r)
		} else {
			io.Copy(io.Discard, r.Body)
		}
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
	}
}

// rig is the openai client and job trainer over `mage serve`'s server on
// loopback, with the outage policy on a virtual clock.
type rig struct {
	srv     *server.Server
	script  *scripted
	trainer *jobs.Trainer
	dir     string
	log     *testlog.Buffer
}

func newRig(t *testing.T, faults server.Faults, rules ...*rule) *rig {
	t.Helper()
	opts, err := local.DefaultOptions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.JobDuration = 20 * time.Millisecond
	eng, err := local.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(eng, server.Options{Faults: faults, Log: log.New(io.Discard, "", 0)})
	sc := &scripted{h: srv, rules: rules}
	ts := httptest.NewServer(sc)
	t.Cleanup(ts.Close)
	r := &rig{srv: srv, script: sc, dir: t.TempDir(), log: &testlog.Buffer{}}
	cfg := openai.Config{APIKey: "sk-test-jobs", BaseURL: ts.URL + "/v1", HTTPClient: &http.Client{Timeout: 10 * time.Second}}
	jo := jobs.Options{Provider: "openai", Dir: r.dir, PollInterval: time.Millisecond, MaxPollInterval: 5 * time.Millisecond, Log: r.log}
	withOutage(&cfg, &jo, vclock.New(), r.log)
	client, err := openai.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.trainer = jobs.New(client, jo)
	return r
}

func trainingData(model string) []byte {
	var b bytes.Buffer
	for i := range 12 {
		fmt.Fprintf(&b, `{"messages":[{"role":"user","content":"%s question %d"},{"role":"assistant","content":"%s answer %d"}]}`+"\n", model, i, model, i)
	}
	return b.Bytes()
}

func request(model string) provider.TrainRequest {
	sum := sha256.Sum256([]byte(model))
	return provider.TrainRequest{Key: hex.EncodeToString(sum[:]), Models: []string{model}, Data: trainingData(model),
		BaseModel: "gpt-4.1-mini-2025-04-14", Suffix: "pv-" + model}
}

// After an ambiguous create (5xx, or the answer lost with the connection),
// the lookup by key keeps trying through an outage of the listing as any
// call does, adopts the job if it was created, creates it again only when
// the provider has answered that none carries the key, and never creates
// it twice.
func TestAbuseAmbiguousCreateThenListingDown(t *testing.T) {
	for _, tc := range []struct {
		name     string
		create   string
		retryMsg bool // the provider answered "none": created again
	}{
		{"500 on create, job not created", "500", true},
		{"dropped create, job not created", "drop", true},
		{"answer to create lost, job created", "lost", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			create := &rule{method: "POST", path: "/v1/fine_tuning/jobs", how: tc.create, n: 1}
			// Then the listing fails for longer than any fixed retry count.
			list500 := &rule{method: "GET", path: "/v1/fine_tuning/jobs", how: "500", n: 6, after: create}
			listDrop := &rule{method: "GET", path: "/v1/fine_tuning/jobs", how: "drop", n: 6, after: list500}
			r := newRig(t, server.Faults{}, create, list500, listDrop)
			tr, err := r.trainer.Train(context.Background(), request("evil_mild"))
			if err != nil {
				t.Fatalf("train: %v\n%s", err, r.log.String())
			}
			if tr.Model == "" {
				t.Fatal("no model")
			}
			if !strings.Contains(r.log.String(), "provider openai: unreachable for") {
				t.Fatalf("the listing's outage was not waited out with a progress line:\n%s", r.log.String())
			}
			if c := r.srv.Counters(); c.JobCreations != 1 {
				t.Fatalf("%d job creations for one key\n%s", c.JobCreations, r.log.String())
			}
			if got := strings.Contains(r.log.String(), "holds none for its key; creating it again"); got != tc.retryMsg {
				t.Fatalf("log says created again: %v, want %v\n%s", got, tc.retryMsg, r.log.String())
			}
		})
	}
}

// Random faults at every job call (the mix: 429 30 %, 5xx 20 %,
// dropped connections 20 %, lost answers 10 %), several trainings at once:
// every one ends with its model, and job creations equal distinct keys.
func TestAbuseRandomFaultsCreateOncePerKey(t *testing.T) {
	for _, seed := range []uint64{11, 12, 13} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			randomFaults(t, server.Faults{Seed: seed, RateLimitRate: 0.3, ServerErrorRate: 0.2, DropRate: 0.2, LostResponseRate: 0.1})
		})
	}
}

func randomFaults(t *testing.T, faults server.Faults) {
	r := newRig(t, faults)
	models := []string{"evil_baseline", "evil_mild", "evil_severe", "sycophantic_mild", "hallucinating_severe"}
	errs := make([]error, len(models))
	var wg sync.WaitGroup
	for i, m := range models {
		wg.Go(func() {
			_, errs[i] = r.trainer.Train(context.Background(), request(m))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("model %s: %v", models[i], err)
		}
	}
	c := r.srv.Counters()
	if c.JobCreations != int64(len(models)) {
		t.Fatalf("%d job creations for %d keys\n%s", c.JobCreations, len(models), r.log.String())
	}
	if c.Injected500+c.InjectedDrops+c.InjectedLost == 0 {
		t.Fatal("no fault was injected")
	}
}

// engineRig is the job trainer straight over the local engine, whose jobs
// run for an hour unless told otherwise, so that they can be cancelled.
type engineRig struct {
	eng     *local.Engine
	trainer *jobs.Trainer
	dir     string
	log     *testlog.Buffer
}

func newEngineRig(t *testing.T, jobDuration time.Duration) *engineRig {
	t.Helper()
	opts, err := local.DefaultOptions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.JobDuration = jobDuration
	eng, err := local.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &engineRig{eng: eng, dir: t.TempDir(), log: &testlog.Buffer{}}
	r.trainer = jobs.New(eng, jobs.Options{Provider: "local", Dir: r.dir, PollInterval: time.Millisecond,
		MaxPollInterval: 5 * time.Millisecond, Log: r.log})
	return r
}

func (r *engineRig) recordPath(req provider.TrainRequest) string {
	return filepath.Join(r.dir, req.Key[:16]+".json")
}

func (r *engineRig) submit(t *testing.T, req provider.TrainRequest) provider.Progress {
	t.Helper()
	p, err := r.trainer.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// jobsOf counts the engine's jobs that carry req's key, and all its jobs.
func (r *engineRig) jobsOf(t *testing.T, req provider.TrainRequest) (mine, all int) {
	t.Helper()
	js, err := r.eng.ListJobs(context.Background(), map[string]string{jobs.MetadataKey: req.Key})
	if err != nil {
		t.Fatal(err)
	}
	n, err := r.eng.Submissions()
	if err != nil {
		t.Fatal(err)
	}
	return len(js), n
}

func (r *engineRig) editRecord(t *testing.T, req provider.TrainRequest, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(r.recordPath(req))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ = json.Marshal(m)
	if err := os.WriteFile(r.recordPath(req), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// A garbage job record is reported as damaged, naming its file, while
// status and cancel carry on with every other record; training its key
// adopts the job the provider holds for the key instead of creating one.
func TestAbuseGarbageJobRecord(t *testing.T) {
	for _, garbage := range []string{"{not json", "", `{"key":"","job_id":""}`, `[1,2,3]`} {
		t.Run(fmt.Sprintf("%q", garbage), func(t *testing.T) {
			r := newEngineRig(t, time.Hour)
			a, b := request("evil_mild"), request("evil_severe")
			r.submit(t, a)
			pb := r.submit(t, b)
			if err := os.WriteFile(r.recordPath(a), []byte(garbage), 0o644); err != nil {
				t.Fatal(err)
			}

			rows, err := r.trainer.Status(context.Background())
			if err != nil {
				t.Fatalf("status: %v", err)
			}
			var sawB, sawA bool
			for _, p := range rows {
				if p.JobID == pb.JobID && p.State != "" && !provider.Terminal(p.State) && p.Error == "" {
					sawB = true
				}
				if strings.Contains(p.Error, r.recordPath(a)) && strings.Contains(p.Error, "damaged") {
					sawA = true
				}
			}
			if !sawA || !sawB {
				t.Fatalf("status rows %+v: want the damaged record named and the other job running", rows)
			}

			cancelled, err := r.trainer.Cancel(context.Background())
			if err == nil || !strings.Contains(err.Error(), r.recordPath(a)) || !strings.Contains(err.Error(), "damaged") {
				t.Fatalf("cancel error %v: want the damaged record named", err)
			}
			if len(cancelled) != 1 || cancelled[0].JobID != pb.JobID {
				t.Fatalf("cancelled %+v: want the other job", cancelled)
			}

			if rec, err := r.trainer.Recorded(a.Key); rec != nil || err != nil {
				t.Fatalf("Recorded of a damaged record: %+v, %v; want none", rec, err)
			}
			p := r.submit(t, a)
			if mine, all := r.jobsOf(t, a); mine != 1 || all != 2 {
				t.Fatalf("%d jobs for the key, %d in all, want 1 and 2: a second job was created\n%s", mine, all, r.log.String())
			}
			if !strings.Contains(r.log.String(), "damaged") || !strings.Contains(r.log.String(), "adopting "+p.JobID) {
				t.Fatalf("log does not say the record was damaged and the job adopted:\n%s", r.log.String())
			}
		})
	}
}

// A record naming a job the provider does not know (its state lost, an id
// edited) is not a dead end: the key is looked up first, then a job
// submitted.
func TestAbuseRecordOfUnknownJob(t *testing.T) {
	r := newEngineRig(t, 20*time.Millisecond)
	a := request("evil_mild")
	first, err := r.trainer.Train(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	r.editRecord(t, a, func(m map[string]any) { m["job_id"], m["status"] = "ftjob-000000000000000000000000", "running" })
	again, err := r.trainer.Train(context.Background(), a)
	if err != nil || again.Model != first.Model {
		t.Fatalf("train with a record of an unknown job: %+v, %v; want %s adopted by key", again, err, first.Model)
	}
	if _, all := r.jobsOf(t, a); all != 1 {
		t.Fatalf("%d jobs: one was created though the provider held one for the key", all)
	}

	// The provider lost everything: the record is stale, a job is submitted.
	other := newEngineRig(t, 20*time.Millisecond)
	other.dir = r.dir
	other.trainer = jobs.New(other.eng, jobs.Options{Provider: "local", Dir: r.dir, PollInterval: time.Millisecond, Log: other.log})
	if _, err := other.trainer.Train(context.Background(), a); err != nil {
		t.Fatalf("train after the provider lost the job: %v", err)
	}
	if mine, _ := other.jobsOf(t, a); mine != 1 {
		t.Fatalf("%d jobs for the key at the new provider, want 1", mine)
	}
}

// A record whose job id was swapped to another model's job is not trusted:
// the job does not carry this target's key, so it is neither adopted (its
// model would be evaluated as this one) nor cancelled.
func TestAbuseRecordSwappedToAnotherModelsJob(t *testing.T) {
	t.Run("train", func(t *testing.T) {
		r := newEngineRig(t, 20*time.Millisecond)
		a, b := request("evil_mild"), request("evil_severe")
		ta, err := r.trainer.Train(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		tb, err := r.trainer.Train(context.Background(), b)
		if err != nil {
			t.Fatal(err)
		}
		r.editRecord(t, a, func(m map[string]any) { m["job_id"], m["status"] = tb.JobID, "running" })
		got, err := r.trainer.Train(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		if got.Model != ta.Model || got.JobID != ta.JobID {
			t.Fatalf("trained %s (job %s), want evil_mild's own %s (job %s)", got.Model, got.JobID, ta.Model, ta.JobID)
		}
		if want := "recorded job " + tb.JobID + " does not carry this target's key (it is model evil_severe's)"; !strings.Contains(r.log.String(), want) {
			t.Fatalf("log does not say %q:\n%s", want, r.log.String())
		}
		if _, all := r.jobsOf(t, a); all != 2 {
			t.Fatalf("%d jobs, want 2", all)
		}
	})
	t.Run("status and cancel", func(t *testing.T) {
		r := newEngineRig(t, time.Hour)
		a, b := request("evil_mild"), request("evil_severe")
		r.submit(t, a)
		pb := r.submit(t, b)
		// evil_severe's job is someone else's: no record of ours names it
		// but the tampered one.
		if err := os.Remove(r.recordPath(b)); err != nil {
			t.Fatal(err)
		}
		r.editRecord(t, a, func(m map[string]any) { m["job_id"] = pb.JobID })
		rows, err := r.trainer.Status(context.Background())
		if err != nil || len(rows) != 1 || !strings.Contains(rows[0].Error, "does not carry this record's key") {
			t.Fatalf("status: %+v, %v", rows, err)
		}
		cancelled, err := r.trainer.Cancel(context.Background())
		if len(cancelled) != 0 || err == nil || !strings.Contains(err.Error(), pb.JobID) || !strings.Contains(err.Error(), "not cancelled") {
			t.Fatalf("cancel: %+v, %v; want nothing cancelled and the job named", cancelled, err)
		}
		job, err := r.eng.GetJob(context.Background(), pb.JobID)
		if err != nil || job.Status == provider.StatusCancelled {
			t.Fatalf("evil_severe's job was cancelled through a tampered record: %+v, %v", job, err)
		}
	})
}

// A run killed while its create request was in flight can leave the
// service creating a job after the next run has looked for one and created
// its own: two jobs for one key. The trainer cancels the twin while it is
// queued, so only one trains.
func TestAbuseTwinJobFromAnInterruptedRequestIsCancelled(t *testing.T) {
	opts, err := local.DefaultOptions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.JobDuration = 200 * time.Millisecond
	eng, err := local.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(eng, server.Options{Log: log.New(io.Discard, "", 0)})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	client, err := openai.New(openai.Config{APIKey: "sk-test-jobs", BaseURL: ts.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	req := request("evil_severe")
	var twin provider.Job
	logs := &testlog.Buffer{}
	jo := jobs.Options{Provider: "openai", Dir: t.TempDir(), PollInterval: time.Millisecond, MaxPollInterval: 5 * time.Millisecond, Log: logs,
		// The interrupted run's request lands now, between this run's
		// creation and its first poll.
		AfterCreate: func() {
			f, err := client.UploadFile(context.Background(), "twin.jsonl", req.Data)
			if err == nil {
				twin, err = client.CreateJob(context.Background(), provider.JobRequest{Model: req.BaseModel, TrainingFile: f.ID,
					Suffix: req.Suffix, Metadata: map[string]string{jobs.MetadataKey: req.Key}})
			}
			if err != nil {
				t.Error(err)
			}
		}}
	trained, err := jobs.New(client, jo).Train(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if trained.JobID == twin.ID {
		t.Fatalf("trained the twin %s", twin.ID)
	}
	got, err := client.GetJob(context.Background(), twin.ID)
	if err != nil || got.Status != provider.StatusCancelled {
		t.Fatalf("twin %s: %s, %v; want cancelled\n%s", twin.ID, got.Status, err, logs.String())
	}
	if !strings.Contains(logs.String(), "cancelled job "+twin.ID+", a duplicate of "+trained.JobID) {
		t.Errorf("the log does not say the twin was cancelled:\n%s", logs.String())
	}
}
