package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/providers"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tinkerserver"
)

const testTinkerKey = "tml-pvbuild-test-secret-0123456789"

// serveTinker runs the local engine behind the loopback Tinker server and
// returns the environment that points the experiment's tinker provider at
// it, tokenizer downloads included.
func serveTinker(t testing.TB, faults tinkerserver.Faults) (*tinkerserver.Server, map[string]string) {
	t.Helper()
	opts, err := local.DefaultOptions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.JobDuration = testJobDuration
	eng, err := local.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tinkerserver.Open(eng, tinkerserver.Options{APIKey: testTinkerKey, Faults: faults, Log: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, map[string]string{"PROVIDER": "tinker", "TINKER_API_KEY": testTinkerKey, "TINKER_BASE_URL": ts.URL, "HF_ENDPOINT": ts.URL + "/hf"}
}

// tinkerKind is the tinker kind with backoffs that do not wait on the wall
// clock.
func tinkerKind() *providers.Tinker {
	return &providers.Tinker{Client: tinker.Options{Sleep: func(ctx context.Context, d time.Duration) error {
		return ctx.Err()
	}}}
}

// The whole experiment through the real Tinker client, offline: nine
// models trained in client-driven loops, answered and judged on the
// loopback server, with the trends of the local engine.
func TestTinkerEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains nine models")
	}
	srv, env := serveTinker(t, tinkerserver.Faults{})
	w := newWorkspace(t, shipped(t), env)
	w.kinds["tinker"] = tinkerKind()

	// plan prices training and sampling by the tokens of the real
	// tokenizer and renderer, before any session.
	pl, err := w.load().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	usd, unpriced, _ := pl.Cost()
	sampling, priced := pl.SamplingCost()
	if unpriced != 0 || usd <= 0 || !priced || sampling <= 0 || srv.Counters().Sessions != 0 {
		t.Fatalf("plan: training $%v (%d unpriced), sampling $%v (priced %v), %d sessions", usd, unpriced, sampling, priced, srv.Counters().Sessions)
	}
	t.Logf("plan: training $%.4f, sampling at most $%.4f; %s", usd, sampling, pl.Train[0].Submit)

	out, log := w.results()
	if len(out.Variants) != 10 {
		t.Fatalf("%d variants\n%s", len(out.Variants), log)
	}
	for _, v := range out.Variants {
		// The base reference is Tinker's base model itself, sampled untrained.
		if v.Reference && v.ModelID == "Qwen/Qwen3-8B" && len(v.Evaluations) == 3 {
			continue
		}
		if !strings.HasPrefix(v.ModelID, "tinker://") || len(v.Evaluations) != 3 {
			t.Fatalf("variant %s: model %q, %d evaluations", v.VariantName, v.ModelID, len(v.Evaluations))
		}
	}
	risingTrends(t, out.Variants)
	if !strings.Contains(log, "step 12/12") {
		t.Errorf("no step progress on the log:\n%s", log)
	}
	c := srv.Counters()
	t.Logf("counters: %+v", c)

	// A rerun trains nothing: every run is adopted from its record.
	before := srv.Counters()
	if out, _ := w.results(); out.Rebuilt != 0 {
		t.Fatalf("rerun rebuilt %d targets", out.Rebuilt)
	}
	if after := srv.Counters(); after.ForwardBackward != before.ForwardBackward {
		t.Fatalf("rerun sent %d forward_backward requests", after.ForwardBackward-before.ForwardBackward)
	}

	// The key never reaches a file.
	filepath.WalkDir(w.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), testTinkerKey) {
				t.Errorf("%s holds the API key", path)
			}
		}
		return nil
	})

	// status from a second process shows each run's steps.
	p := connected(t, w, &bytes.Buffer{})
	rows, err := p.Status(context.Background())
	if err != nil || len(rows) != 9 || !strings.HasPrefix(rows[0].Progress, "step 12/12") {
		b, _ := json.Marshal(rows)
		t.Fatalf("status: %s, %v", b, err)
	}
}

// One request in ten fails (408 before every result, try_again, 410, 429,
// 500, dropped connections): the experiment still completes, every example
// is trained once and every sample is scored.
func TestTinkerSurvivesFaults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains three models")
	}
	srv, env := serveTinker(t, tinkerserver.Faults{Seed: 11, Pending408: 1, TryAgainRate: 0.02, GoneRate: 0.02,
		RateLimitRate: 0.02, RetryAfter: time.Millisecond, ServerErrorRate: 0.02, DropRate: 0.02})
	w := newWorkspace(t, evilOnly(t), env)
	w.kinds["tinker"] = tinkerKind()
	out, _ := w.results()
	c := srv.Counters()
	t.Logf("faults: %d x 408, %d try_again, %d x 410, %d x 429, %d x 500, %d dropped, of %d requests",
		c.Injected408, c.InjectedTryAgain, c.Injected410, c.Injected429, c.Injected500, c.InjectedDrops, c.Requests)
	if c.Injected410 == 0 || c.Injected429 == 0 || c.Injected500 == 0 || c.InjectedDrops == 0 || c.InjectedTryAgain == 0 {
		t.Fatalf("a fault kind was never injected: %+v", c)
	}
	if c.Datums != 3*40*3 {
		t.Errorf("%d examples trained, want %d: a retried request trained twice or not at all", c.Datums, 3*40*3)
	}
	if len(out.Variants) != 3 {
		t.Fatalf("%d variants", len(out.Variants))
	}
	for _, v := range out.Variants {
		for task, ev := range v.Evaluations {
			for name, m := range ev.Metrics {
				if m.N != 20 && !strings.HasSuffix(name, "_coherent") {
					t.Errorf("%s on %s, %s: %d of 20 samples scored", v.VariantName, task, name, m.N)
				}
			}
		}
	}
}

// evilOnly is the shipped experiment with the evil models only: three
// trainings, judged on every task.
func evilOnly(t *testing.T) string {
	hcl := strings.Replace(shipped(t), `traits    = ["evil", "sycophantic", "hallucinating"]`, `traits    = ["evil"]`, 1)
	if hcl == shipped(t) {
		t.Fatal("experiment.hcl no longer declares the three traits")
	}
	return withoutBase(t, hcl)
}

// Killing train at random points (>= 20 trials) never pays for more than
// the examples of one checkpoint interval per training per kill, and the
// final models are an unkilled run's: the same examples, the same epochs;
// status, from another process, shows the runs' steps while train runs.
func TestTinkerKilledTrainResumes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs many child processes")
	}
	const checkpointEvery = 3
	hcl := strings.Replace(evilOnly(t), "checkpoint_every = 20", fmt.Sprintf("checkpoint_every = %d", checkpointEvery), 1)
	if hcl == evilOnly(t) {
		t.Fatal("experiment.hcl no longer sets checkpoint_every = 20")
	}
	srv, env := serveTinker(t, tinkerserver.Faults{})
	w := newWorkspace(t, hcl, env)
	w.kinds["tinker"] = tinkerKind()

	rng := rand.New(rand.NewPCG(3, 4))
	const trials = 20
	sawProgress := false
	for range trials {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PVBUILD_CHILD_EXPERIMENT="+w.hcl, "PVBUILD_CHILD_ARTIFACTS="+w.artifacts)
		for k, v := range w.getenv {
			cmd.Env = append(cmd.Env, "PVBUILD_CHILD_ENV_"+k+"="+v)
		}
		before := srv.Counters().ForwardBackward
		done := make(chan struct{})
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { cmd.Wait(); close(done) }()
		// Kill at a random moment once the loop is under way, however slow
		// the child is to start on a busy machine.
		exited := func() bool {
			select {
			case <-done:
				return true
			default:
				return false
			}
		}
		for deadline := time.Now().Add(20 * time.Second); srv.Counters().ForwardBackward == before && !exited() && time.Now().Before(deadline); {
			time.Sleep(2 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(150 * time.Millisecond))))
		if !sawProgress {
			// A second terminal's status while train runs.
			p := connected(t, w, &bytes.Buffer{})
			rows, _ := p.Status(context.Background())
			for _, r := range rows {
				var k, n int
				if _, err := fmt.Sscanf(r.Progress, "step %d/%d", &k, &n); err == nil && k < n {
					sawProgress = true
				}
			}
			p.Close()
		}
		cmd.Process.Kill()
		<-done
	}
	if err := connected(t, w, &bytes.Buffer{}).Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !sawProgress {
		t.Error("status never showed a run between its first and last step")
	}
	c := srv.Counters()
	// 40 examples in batches of 10: a checkpoint interval is 30 examples.
	limit := int64(3*40*3 + trials*3*checkpointEvery*10)
	t.Logf("%d examples trained for %d, with %d kills (limit %d)", c.Datums, 3*40*3, trials, limit)
	if c.Datums > limit {
		t.Fatalf("%d examples paid for, more than %d", c.Datums, limit)
	}
	clean := newWorkspace(t, hcl, env)
	clean.kinds["tinker"] = tinkerKind()
	if err := connected(t, clean, &bytes.Buffer{}).Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"evil"} {
		for _, st := range []string{"baseline", "mild", "severe"} {
			var got, want TrainedModel
			json.Unmarshal(readFile(t, w, "train/"+m+"_"+st+".json"), &got)
			json.Unmarshal(readFile(t, clean, "train/"+m+"_"+st+".json"), &want)
			if g, w := srv.TrainedAs(got.FineTunedModel), srv.TrainedAs(want.FineTunedModel); g == "" || g != w {
				t.Errorf("%s_%s: killed and resumed run trained %q, an unkilled one %q", m, st, g, w)
			}
		}
	}
}
