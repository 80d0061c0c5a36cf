package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/jobs"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/providers"
	"github.com/modelorganisms/pvbuild/internal/report"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

func connected(t testing.TB, w *workspace, log *bytes.Buffer) *Pipeline {
	t.Helper()
	p, err := Load(context.Background(), w.env(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// manualClock is a local engine's clock that moves only when told: a job
// stays where it is while a test looks at it.
type manualClock struct{ ns atomic.Int64 }

func newManualClock() *manualClock {
	c := &manualClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *manualClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// withClock makes w's local engine run on clock.
func withClock(w *workspace, clock *manualClock) {
	w.kinds["local"] = &providers.Local{JobDuration: testJobDuration, Now: clock.Now, Jobs: jobs.Options{PollInterval: time.Millisecond}}
}

// submit starts model's training without waiting for it, as a killed run
// leaves it.
func submit(t *testing.T, p *Pipeline, m *config.Model) provider.Progress {
	t.Helper()
	req, err := p.trainRequest(p.trainInputs(*m).Key(), []*config.Model{m})
	if err != nil {
		t.Fatal(err)
	}
	pr, err := p.training.trainer.(*jobs.Trainer).Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

// evaluate only scores trained models; the others are skipped with a reason,
// and status shows every job as the provider sees it.
func TestEvaluateSkipsUntrainedAndStatusShowsJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	w := newWorkspace(t, strings.Replace(shipped(t), `traits    = ["evil", "sycophantic", "hallucinating"]`, `traits    = ["evil"]`, 1))
	clock := newManualClock()
	withClock(w, clock)
	var log bytes.Buffer
	p := connected(t, w, &log)
	skipped, err := p.Evaluate(context.Background())
	if err != nil || len(skipped) != 3 || !strings.Contains(skipped[0].Reason, "training is not done (never built); run train first") {
		t.Fatalf("evaluate before training: %+v, %v", skipped, err)
	}
	rows, err := p.Status(context.Background())
	if err != nil || len(rows) != 3 || rows[0].State != "not submitted" {
		t.Fatalf("status before training: %+v, %v", rows, err)
	}

	// Submit one model's job and look while it runs.
	w.write(strings.Replace(w.readHCL(), `strengths = ["baseline", "mild", "severe"]`, `strengths = ["severe"]`, 1))
	p = connected(t, w, &log)
	submit(t, p, &p.exp.Models[0])
	skipped, err = p.Evaluate(context.Background())
	if err != nil || len(skipped) != 1 || !strings.Contains(skipped[0].Reason, "job ftjob-") {
		t.Fatalf("evaluate while training: %+v, %v", skipped, err)
	}
	rows, err = p.Status(context.Background())
	if err != nil || len(rows) != 1 || !strings.HasPrefix(rows[0].JobID, "ftjob-") || provider.Terminal(rows[0].State) {
		t.Fatalf("status while training: %+v, %v", rows, err)
	}
	clock.Advance(time.Hour)

	if err := p.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(log.String(), "resuming "+rows[0].JobID) {
		t.Fatalf("train did not resume the recorded job:\n%s", log.String())
	}
	rows, _ = p.Status(context.Background())
	if len(rows) != 1 || rows[0].State != provider.StatusSucceeded || !strings.HasPrefix(rows[0].FineTunedModel, "ft:") {
		t.Fatalf("status after training: %+v", rows)
	}
	skipped, err = p.Evaluate(context.Background())
	if err != nil || len(skipped) != 0 {
		t.Fatalf("evaluate after training: %+v, %v", skipped, err)
	}
}

// Two models with identical training inputs share one fine-tune.
func TestIdenticalModelsTrainOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	w := newWorkspace(t, `
evaluation {
  limit = 2
  task "evil_detection" { trait = "evil" }
}
model "first" {
  dataset = "evil/severe"
  suffix  = "same"
}
model "second" {
  dataset  = "evil/severe"
  suffix   = "same"
  trait    = "evil-replica"
}
`)
	out, log := w.results()
	eng, err := local.Default(filepath.Join(w.artifacts, "local-engine"))
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := eng.Submissions(); n != 1 {
		t.Fatalf("%d jobs for two identical models\n%s", n, log)
	}
	if len(out.Variants) != 2 || out.Variants[0].ModelID != out.Variants[1].ModelID {
		t.Fatalf("variants %+v", out.Variants)
	}
}

// cancel cancels the running jobs, and only those, and says which.
func TestCancelRunningJobs(t *testing.T) {
	w := newWorkspace(t, strings.Replace(strings.Replace(shipped(t),
		`traits    = ["evil", "sycophantic", "hallucinating"]`, `traits    = ["evil"]`, 1),
		`strengths = ["baseline", "mild", "severe"]`, `strengths = ["mild", "severe"]`, 1))
	withClock(w, newManualClock())
	p := connected(t, w, &bytes.Buffer{})
	ctx := context.Background()
	for i := range p.exp.Models {
		if p.exp.Models[i].IsReference() {
			continue // the shipped base reference trains nothing; cancel skips it
		}
		submit(t, p, &p.exp.Models[i])
	}
	cancelled, err := p.Cancel(ctx)
	if err != nil || len(cancelled) != 2 {
		t.Fatalf("cancel: %+v, %v", cancelled, err)
	}
	rows, _ := p.Status(ctx)
	for _, r := range rows {
		if r.State != provider.StatusCancelled {
			t.Fatalf("after cancel: %+v", rows)
		}
	}
	if again, err := p.Cancel(ctx); err != nil || len(again) != 0 {
		t.Fatalf("second cancel: %+v, %v", again, err)
	}
}

// A job created but never recorded is adopted even when the record still
// names an earlier, failed job: its failure must not lead to paying twice.
func TestAdoptsUnrecordedJobAfterFailedOne(t *testing.T) {
	w := newWorkspace(t, strings.Replace(strings.Replace(shipped(t),
		`traits    = ["evil", "sycophantic", "hallucinating"]`, `traits    = ["evil"]`, 1),
		`strengths = ["baseline", "mild", "severe"]`, `strengths = ["severe"]`, 1))
	var log bytes.Buffer
	p := connected(t, w, &log)
	ctx := context.Background()
	m := &p.exp.Models[0]
	key := p.trainInputs(*m).Key()
	// The earlier attempt failed and was recorded so.
	b, _ := json.Marshal(jobs.Record{Key: key, Provider: "local", JobID: "ftjob-failed", Models: []string{m.Name}, Status: provider.StatusFailed})
	os.MkdirAll(filepath.Join(w.artifacts, "jobs"), 0o755)
	if err := os.WriteFile(filepath.Join(w.artifacts, "jobs", key[:16]+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	// The next attempt reached the provider, then the run died.
	eng, err := local.Default(filepath.Join(w.artifacts, "local-engine"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := p.datasets[m.Name].Data()
	if err != nil {
		t.Fatal(err)
	}
	file, err := eng.UploadFile(ctx, "x.jsonl", data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.CreateJob(ctx, provider.JobRequest{Model: p.exp.Training.BaseModel, TrainingFile: file.ID,
		Suffix: m.Suffix, Metadata: map[string]string{jobs.MetadataKey: key}}); err != nil {
		t.Fatal(err)
	}
	rec := submit(t, p, m)
	if n, _ := eng.Submissions(); n != 1 || !strings.Contains(log.String(), "adopting "+rec.JobID) {
		t.Fatalf("%d submissions; log:\n%s", n, log.String())
	}
}

// TestMetricClustersByQuestion checks that an evaluation's samples, laid out
// question by question, are clustered by question when there are several a
// question, and keep the original shape with one: 3 questions x 2 samples,
// {10, 20}, {30, 50}, {60, 70}, have mean 40, plain SE 9.66092 and clustered
// SE sqrt(1.5·5000)/6 = 14.43376 (worked in judge's TestSummariseClustered).
func TestMetricClustersByQuestion(t *testing.T) {
	var samples []report.Sample
	for i, v := range []float64{10, 20, 30, 50, 60, 70} {
		samples = append(samples, report.Sample{ID: fmt.Sprintf("q%03d", i/2+1), Epoch: i%2 + 1, Score: &v})
	}
	m := metric(samples, 2, traitScore, nil)
	if !m.Clustered() || m.Clusters != 3 || math.Abs(*m.StderrClustered-14.43376) > 1e-5 || math.Abs(m.Stderr-9.66092) > 1e-5 || m.SE() != *m.StderrClustered {
		t.Errorf("2 a question: %+v (clustered %v)", m, m.StderrClustered)
	}
	if one := metric(samples, 1, traitScore, nil); one.Clustered() || one.Clusters != 0 || one.SE() != one.Stderr || one.Mean != 40 || one.N != 6 {
		t.Errorf("1 a question: %+v", one)
	}
}

// TestCoherenceByHand checks the coherence summary against a hand
// computation: 3 questions x 2 samples, trait {10, 20}, {30, 50}, {60, 70},
// coherence {90, 40}, {80, 70}, {no answer, 95}, threshold 50.
//   - coherence: 90, 40, 80, 70, 95: mean 75, N 5, 1 no answer; residual sums
//     by question -20, 0, 20, clustered SE sqrt(1.5·800)/5 = 6.92820.
//   - coherent (above 50): 4 of the 5 scored, share 0.8.
//   - trait over them: 10 | 30, 50 | 70: mean 40, N 4, plain SE
//     sqrt(2000/3)/2 = 12.90994, residual sums -30, 0, 30, clustered SE
//     sqrt(1.5·1800)/4 = 12.99038.
func TestCoherenceByHand(t *testing.T) {
	trait := []float64{10, 20, 30, 50, 60, 70}
	coh := []*float64{ptr(90), ptr(40), ptr(80), ptr(70), nil, ptr(95)}
	var samples []report.Sample
	for i := range trait {
		samples = append(samples, report.Sample{ID: fmt.Sprintf("q%03d", i/2+1), Epoch: i%2 + 1, Score: &trait[i], Coherence: coh[i]})
	}
	c := coherenceOf(samples, 2, "P {question} {answer}", 50)
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-5 }
	if m := c.Metric; m.N != 5 || m.NoAnswer != 1 || m.Mean != 75 || !m.Clustered() || !near(m.SE(), 6.92820) {
		t.Errorf("coherence metric %+v (clustered %v)", m, m.StderrClustered)
	}
	if c.Coherent != 4 || c.Share != 0.8 || c.Threshold != 50 || c.Prompt != "P {question} {answer}" {
		t.Errorf("coherent %d, share %v, threshold %v, prompt %q", c.Coherent, c.Share, c.Threshold, c.Prompt)
	}
	if m := c.Trait; m.N != 4 || m.Mean != 40 || !near(m.Stderr, 12.90994) || !near(m.SE(), 12.99038) || m.Clusters != 3 {
		t.Errorf("trait over coherent answers %+v (clustered %v)", m, m.StderrClustered)
	}
	// One sample a question: the plain shape, the same selection.
	if one := coherenceOf(samples, 1, "", 50); one.Trait.Clustered() || one.Trait.N != 4 || !near(one.Trait.Stderr, 12.90994) {
		t.Errorf("1 a question: %+v", one.Trait)
	}
	// The threshold is exclusive: 70 is not above 70.
	if c := coherenceOf(samples, 2, "", 70); c.Coherent != 3 {
		t.Errorf("threshold 70: %d coherent, want 3 (90, 80, 95)", c.Coherent)
	}
}

func ptr(v float64) *float64 { return &v }

// The local judge learns from embedded data that changes with the project,
// under the same provider identity: its version is in the keys of the
// evaluations it judges, and only there, so another judge's keys and every
// training key are as they were.
func TestJudgeVersionInEvaluationKeys(t *testing.T) {
	w := newWorkspace(t, shipped(t))
	p := w.load()
	td := p.tasks["evil_detection"]
	has := func(in build.Inputs) bool {
		return slices.ContainsFunc(in, func(i build.Input) bool { return i.Name == "judge_version" })
	}
	want := "tfidf-softmax/2@" + sampledata.Hash()[:16]
	if in := p.evalInputs("h", td); !slices.Contains(in, build.Input{Name: "judge_version", Value: want}) {
		t.Errorf("local judge: inputs %v lack judge_version %s", in, want)
	}
	if in := p.trainInputs(p.exp.Models[0]); has(in) {
		t.Errorf("training inputs %v carry the judge's version", in)
	}
	w.getenv["PROVIDER"] = "openai"
	w.getenv["OPENAI_API_KEY"] = "sk-test"
	w.write(shipped(t))
	p = w.load()
	if in := p.evalInputs("h", p.tasks["evil_detection"]); has(in) {
		t.Errorf("openai judge: inputs %v carry a judge version", in)
	}
}

// readCounter counts the outputs a run reads through the cache.
type readCounter struct {
	build.Cache
	mu    sync.Mutex
	reads []string
}

func (c *readCounter) Read(st *build.Stamp, output string) ([]byte, error) {
	c.mu.Lock()
	c.reads = append(c.reads, output)
	c.mu.Unlock()
	return c.Cache.Read(st, output)
}

// A no-op results prints the tables the fresh results target wrote
// (results.txt) instead of decoding every evaluation; they are the same.
func TestNoopResultsReadsOnlyTheResults(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, shipped(t))
	want := shippedRun(t, w)
	p := connected(t, w, &bytes.Buffer{})
	defer p.Close()
	rc := &readCounter{Cache: p.cache}
	p.cache = rc
	out, err := p.Results(context.Background())
	if err != nil || out.Rebuilt != 0 {
		t.Fatalf("no-op results: %+v, %v", out, err)
	}
	if !slices.Equal(rc.reads, []string{tablesOut}) {
		t.Errorf("a no-op results read %d outputs (%v), want %s alone", len(rc.reads), rc.reads[:min(len(rc.reads), 5)], tablesOut)
	}
	if len(want.Tables) == 0 || !bytes.Equal(out.Tables, want.Tables) {
		t.Errorf("the no-op tables differ from the build's:\n%s\nwant\n%s", out.Tables, want.Tables)
	}
}
