package pipeline

import (
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/jobs"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/providers"
	"github.com/modelorganisms/pvbuild/internal/server"
	"github.com/modelorganisms/pvbuild/internal/testtmp"
)

// TestMain lets the test binary act as a `train` run in a child process, so
// tests can kill it with SIGKILL at any moment.
func TestMain(m *testing.M) {
	if hcl := os.Getenv("PVBUILD_CHILD_EXPERIMENT"); hcl != "" {
		os.Exit(childTrain(hcl, os.Getenv("PVBUILD_CHILD_ARTIFACTS")))
	}
	// Most tests here wait on loopback servers and child processes, not the
	// CPU: run more of them at once than there are cores.
	flag.Set("test.parallel", "8")
	// Tens of thousands of small files: on tmpfs, not the disk.
	tmp := testtmp.InMemory()
	code := m.Run()
	if shippedArtifacts != "" {
		os.RemoveAll(filepath.Dir(shippedArtifacts))
	}
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

// killJobDuration is how long a local job runs in the kill test: kills land
// while jobs are created, recorded and awaited.
const killJobDuration = 400 * time.Millisecond

func childTrain(hcl, artifacts string) int {
	kinds := testKinds(killJobDuration)
	if os.Getenv("PVBUILD_CHILD_DIE_AFTER_CREATE") != "" {
		// Die between creating a job and recording it: the worst moment.
		die := jobs.Options{PollInterval: killJobDuration / 10, AfterCreate: func() { os.Exit(7) }}
		kinds["local"] = &providers.Local{JobDuration: killJobDuration, Jobs: die}
		kinds["openai"] = &providers.OpenAI{Jobs: die}
	}
	ctx := context.Background()
	p, err := Load(ctx, Env{Experiment: hcl, Artifacts: artifacts, Log: os.Stderr, Providers: kinds,
		Getenv: func(k string) string { return os.Getenv("PVBUILD_CHILD_ENV_" + k) }})
	if err != nil {
		return 2
	}
	lock, err := p.Lock()
	if err != nil {
		return 3
	}
	defer lock.Unlock()
	if err := p.Connect(context.Background()); err != nil {
		return 4
	}
	if os.Getenv("PVBUILD_CHILD_RESULTS") != "" {
		if _, err := p.Results(ctx); err != nil {
			return 6
		}
		return 0
	}
	if err := p.Train(ctx); err != nil {
		return 5
	}
	return 0
}

// Killing train at random points, including between a job's creation and
// its record, never submits a fine-tune twice and never leaves a corrupt
// artifact: on the in-process engine, and over HTTP with responses lost.
func TestKilledTrainNeverSubmitsTwice(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs many child processes")
	}
	t.Run("local", func(t *testing.T) {
		t.Parallel()
		w := newWorkspace(t, shipped(t))
		killRepeatedly(t, w)
		eng, err := local.Default(filepath.Join(w.artifacts, "local-engine"))
		if err != nil {
			t.Fatal(err)
		}
		if n, err := eng.Submissions(); err != nil || n != 9 {
			t.Fatalf("%d jobs submitted for 9 distinct models (%v)", n, err)
		}
	})
	t.Run("served", func(t *testing.T) {
		t.Parallel()
		srv, env := serve(t, server.Faults{Seed: 3, LostResponseRate: 0.1}, killJobDuration)
		w := newWorkspace(t, shipped(t), env)
		killRepeatedly(t, w)
		// A create request in flight when its run is killed can still be
		// served after the next run has created the job itself; that twin
		// must be cancelled, so that nine jobs train.
		c := srv.Counters()
		if c.JobCreations-c.JobCancellations != 9 {
			t.Fatalf("%d jobs created and %d cancelled for 9 distinct models (%d responses lost)", c.JobCreations, c.JobCancellations, c.InjectedLost)
		}
		if c.JobCancellations > 0 {
			t.Logf("%d twin job(s) of interrupted requests cancelled", c.JobCancellations)
		}
	})
}

// killRepeatedly runs train in child processes killed at random moments,
// every third one dying right after a job's creation, then once to the end.
func killRepeatedly(t *testing.T, w *workspace) {
	rng := rand.New(rand.NewPCG(1, 2))
	const trials = 20
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PVBUILD_CHILD_EXPERIMENT="+w.hcl, "PVBUILD_CHILD_ARTIFACTS="+w.artifacts)
		for k, v := range w.getenv {
			cmd.Env = append(cmd.Env, "PVBUILD_CHILD_ENV_"+k+"="+v)
		}
		return cmd
	}
	for i := range trials {
		cmd := child()
		if i%3 == 0 {
			cmd.Env = append(cmd.Env, "PVBUILD_CHILD_DIE_AFTER_CREATE=1")
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(killJobDuration))))
		cmd.Process.Kill()
		cmd.Wait()
	}
	if out, err := child().CombinedOutput(); err != nil {
		t.Fatalf("final train: %v\n%s", err, out)
	}
	for _, s := range w.stale() {
		if strings.HasPrefix(s, "train/") || strings.HasPrefix(s, "dataset/") {
			t.Errorf("%s stale after the final train", s)
		}
	}
	// Every JSON file left behind parses: nothing is half-written.
	filepath.WalkDir(w.artifacts, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") {
			return err
		}
		if b, err := os.ReadFile(path); err != nil || !json.Valid(b) {
			t.Errorf("corrupt artifact %s (%v)", path, err)
		}
		return nil
	})
}

// killResultsHCL is a small experiment whose results run takes a second or
// two: kills land in every stage, and in the writes of its outputs.
const killResultsHCL = `
evaluation {
  limit = 4
  task "evil_detection" { trait = "evil" }
  task "sycophantic_detection" { trait = "sycophantic" }
}
model_grid {
  traits    = ["evil", "sycophantic"]
  strengths = ["baseline", "severe"]
  name      = "${trait}_${strength}"
  suffix    = "pv-${trait}-${strength}"
}
`

// Killing results at random moments, with plans between the kills saving
// the freshness index, never leaves a target called fresh whose outputs
// are not, byte for byte, what its stamp recorded.
func TestKilledResultsNeverLeavesFalseFresh(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("runs many child processes")
	}
	child := func(w *workspace) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PVBUILD_CHILD_EXPERIMENT="+w.hcl, "PVBUILD_CHILD_ARTIFACTS="+w.artifacts, "PVBUILD_CHILD_RESULTS=1")
		return cmd
	}
	w := newWorkspace(t, killResultsHCL)
	count := func(dir string) int {
		n := 0
		filepath.WalkDir(filepath.Join(w.artifacts, dir), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	exists := func(rel string) bool { _, err := os.Stat(filepath.Join(w.artifacts, rel)); return err == nil }
	// Each run resumes from what the last one committed; each is killed
	// at a later point, the moment the file system shows it reached it.
	points := []struct {
		name    string
		reached func() bool
	}{
		{"a training recorded", func() bool { return count("train") >= 1 }},
		{"the trainings recorded", func() bool { return count("train") >= 4 }},
		{"an evaluation written", func() bool { return count("evals") >= 1 }},
		{"the evaluations written", func() bool { return count("evals") >= 8 }},
		{"eval_results.json written", func() bool { return exists("eval_results.json") }},
		{"a log written", func() bool { return count("logs") >= 1 }},
		{"the report written", func() bool { return exists("summary.md") }},
	}
	for _, pt := range points {
		cmd := child(w)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
	wait:
		for !pt.reached() {
			select {
			case <-done:
				break wait
			case <-time.After(time.Millisecond):
			}
		}
		cmd.Process.Kill()
		<-done
		t.Logf("killed once %s: %d targets stale", pt.name, len(w.stale()))
		checkFreshIsTrue(t, w)
	}
	if out, err := child(w).CombinedOutput(); err != nil {
		t.Fatalf("final results: %v\n%s", err, out)
	}
	checkFreshIsTrue(t, w)
	if stale := w.stale(); len(stale) != 0 {
		t.Fatalf("stale after the final results: %q", stale)
	}
}

// checkFreshIsTrue plans (saving the index) and checks every target the
// plan calls fresh against its stamp file and the bytes of its outputs.
func checkFreshIsTrue(t *testing.T, w *workspace) {
	t.Helper()
	pl, err := w.load().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	store := &build.Store{Root: w.artifacts}
	for _, s := range pl.Steps() {
		if !s.Fresh {
			continue
		}
		st, err := store.Stamp(s.Target)
		if err != nil || st == nil {
			t.Fatalf("%s fresh without a stamp (%v)", s.Target, err)
		}
		for name, want := range st.Outputs {
			b, err := os.ReadFile(store.Path(name))
			if err != nil || build.Hash(b) != want {
				t.Fatalf("%s called fresh, but its output %s is not what its stamp recorded (%v)", s.Target, name, err)
			}
		}
	}
}
