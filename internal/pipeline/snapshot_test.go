package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// settledEnv is the workspace's environment for the next run, a minute on:
// every file the last one wrote has settled, so that the index trusts it.
func settledEnv(w *workspace) Env {
	env := w.env(nil)
	env.StoreClock = func() time.Time { return time.Now().Add(time.Minute) }
	return env
}

// staleOf lists a plan's stale targets.
func staleOf(t *testing.T, env Env) []string {
	t.Helper()
	pl, err := LoadPlan(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range pl.Steps() {
		if !s.Fresh {
			out = append(out, s.Target)
		}
	}
	return out
}

// snapshotted plans until the plan comes from a snapshot, and fails if a
// second plan of a fresh build does not.
func snapshotted(t *testing.T, w *workspace) {
	t.Helper()
	env := settledEnv(w)
	if stale := staleOf(t, env); stale != nil {
		t.Fatalf("a built experiment plans %v stale", stale)
	}
	if snapshotPlan(env) == nil {
		t.Fatal("a plan that found everything fresh kept no snapshot a second plan could use")
	}
}

// A no-op plan from the snapshot is the plan the long way gives, and any
// change that makes a target stale, or could, makes the next plan take the
// long way: an output edited with its size and mtime put back, a stamp
// rewritten in place or removed, the experiment's bytes, a variable it
// reads, the program.
func TestPlanSnapshotIsThePlanUntilAnythingChanges(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds an experiment")
	}
	hcl := strings.Replace(evilOnly(t), `"pv-${trait}-${strength}"`, `"pv-${trait}-${strength}${env("SNAPSHOT_SUFFIX", "")}"`, 1)
	if hcl == evilOnly(t) {
		t.Fatal("experiment.hcl no longer names suffixes pv-${trait}-${strength}")
	}
	w := newWorkspace(t, hcl)
	w.results()
	snapshotted(t, w)

	want, err := w.load().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := snapshotPlan(settledEnv(w))
	if !slices.EqualFunc(got.Steps(), want.Steps(), func(a, b Step) bool { return a.Target == b.Target && a.Fresh == b.Fresh }) || got.Protocol != want.Protocol {
		t.Fatalf("the snapshot's plan differs from the plan:\n%+v\n%+v", got, want)
	}

	const output = "evals/evil_severe/evil_detection.json"
	path := filepath.Join(w.artifacts, output)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T)
		stale  []string // what the next plan must call stale, at least
		undo   func(t *testing.T)
	}{
		{"output edited, its size and mtime put back", func(t *testing.T) {
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(path)
			b[len(b)-2] ^= 1
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(path, info.ModTime(), info.ModTime())
		}, []string{"eval/evil_severe/evil_detection"}, nil},
		{"stamp rewritten in place", func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(w.artifacts, ".stamps/eval/evil_severe/evil_detection.stamp"), []byte("key 0\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, []string{"eval/evil_severe/evil_detection"}, nil},
		{"stamp removed", func(t *testing.T) {
			os.Remove(filepath.Join(w.artifacts, ".stamps/log/evil_mild/evil_detection.stamp"))
		}, []string{"log/evil_mild/evil_detection"}, nil},
		{"a setting changed", func(t *testing.T) {
			w.write(strings.Replace(hcl, "n_epochs = 3", "n_epochs = 4", 1))
		}, []string{"train/evil_baseline", "train/evil_mild", "train/evil_severe"}, func(t *testing.T) { w.write(hcl) }},
		{"a variable the experiment reads changed", func(t *testing.T) {
			w.getenv["SNAPSHOT_SUFFIX"] = "other"
		}, []string{"train/evil_baseline"}, func(t *testing.T) { delete(w.getenv, "SNAPSHOT_SUFFIX") }},
	} {
		tc.change(t)
		env := settledEnv(w)
		if snapshotPlan(env) != nil {
			t.Errorf("%s: the next plan came from the snapshot", tc.name)
		}
		stale := staleOf(t, env)
		for _, want := range tc.stale {
			if !slices.Contains(stale, want) {
				t.Errorf("%s: plan calls %v stale, not %s", tc.name, stale, want)
			}
		}
		if tc.undo != nil {
			tc.undo(t)
		}
		w.results()
		snapshotted(t, w)
	}
}

// Another program may key differently: its plan takes the long way.
func TestPlanSnapshotFollowsTheProgram(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds an experiment")
	}
	w := newWorkspace(t, evilOnly(t))
	w.results()
	snapshotted(t, w)
	other := filepath.Join(t.TempDir(), "mage")
	if err := os.WriteFile(other, []byte("another build of the program"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := settledEnv(w)
	env.program = other
	if snapshotPlan(env) != nil {
		t.Fatal("another program planned from this one's snapshot")
	}
	if stale := staleOf(t, env); stale != nil {
		t.Fatalf("another program's plan: %v stale", stale)
	}
	if snapshotPlan(env) == nil {
		t.Fatal("the other program's fresh plan kept no snapshot of its own")
	}
}

// A no-op results from the snapshot prints what the long way prints, and
// only while it is current, the tables unedited and the store unlocked.
func TestResultsSnapshotIsTheNoopResults(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds an experiment")
	}
	w := newWorkspace(t, evilOnly(t))
	w.results()
	snapshotted(t, w)
	want, _ := w.results()
	var log strings.Builder
	env := settledEnv(w)
	env.Log = &log
	got, ok := SnapshotResults(env)
	if !ok {
		t.Fatal("a fresh experiment's no-op results did not come from its snapshot")
	}
	if string(got.Tables) != string(want.Tables) || len(want.Tables) == 0 {
		t.Fatalf("the snapshot's tables differ from the no-op results':\n%s\n%s", got.Tables, want.Tables)
	}
	if !strings.Contains(log.String(), "nothing to do") {
		t.Fatalf("the snapshot's results did not say there was nothing to do: %q", log.String())
	}

	lock, err := w.load().Lock()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := SnapshotResults(env); ok {
		t.Error("results came from the snapshot while another run held the store")
	}
	lock.Unlock()

	path := filepath.Join(w.artifacts, tablesOut)
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append(b, "a line of someone's\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, ok := SnapshotResults(env); ok {
		t.Error("edited tables were printed from the snapshot")
	}
}

// A comment is a change of bytes, not of keys: the plan after it is fresh
// and keeps a snapshot of its own.
func TestPlanSnapshotFollowsTheExperimentsBytes(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds an experiment")
	}
	w := newWorkspace(t, evilOnly(t))
	w.results()
	snapshotted(t, w)
	w.write(evilOnly(t) + "# a comment\n")
	if snapshotPlan(settledEnv(w)) != nil {
		t.Fatal("an edited experiment planned from the old one's snapshot")
	}
	snapshotted(t, w)
}

// A plan that read a secret, or a file the experiment names, keeps no
// snapshot: it would have to keep what it read to know it unchanged.
func TestPlanSnapshotKeepsNoSecret(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds an experiment")
	}
	w := newWorkspace(t, evilOnly(t))
	w.results()
	w.getenv["OPENAI_API_KEY"] = testAPIKey
	env := settledEnv(w)
	for range 2 {
		if stale := staleOf(t, env); stale != nil {
			t.Fatalf("a key that enters no key made %v stale", stale)
		}
	}
	if snapshotPlan(env) != nil {
		t.Fatal("a plan that read a secret kept a snapshot")
	}
	if _, err := os.Stat(filepath.Join(w.artifacts, ".stamps/snapshot")); err == nil {
		t.Fatal("a plan that read a secret wrote a snapshot")
	}
}
