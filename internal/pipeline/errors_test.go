package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
)

// snapshot maps every file under root to its content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := os.ReadFile(path)
			out[path] = string(b)
		}
		return nil
	})
	return out
}

// A broken experiment gives a located error and leaves artifacts/ as it was.
func TestBrokenExperimentLeavesArtifacts(t *testing.T) {
	w := newWorkspace(t, shipped(t))
	os.MkdirAll(filepath.Join(w.artifacts, "evals"), 0o755)
	os.WriteFile(filepath.Join(w.artifacts, "evals", "keep.json"), []byte(`{"keep":true}`), 0o644)
	before := snapshot(t, w.artifacts)

	// at names the line and column of the first occurrence of marker.
	at := func(text, marker string) string {
		i := strings.Index(text, marker)
		line := strings.Count(text[:i], "\n") + 1
		col := i - strings.LastIndex(text[:i], "\n")
		return fmt.Sprintf("experiment.hcl:%d:%d: ", line, col)
	}
	src := shipped(t)
	edit := func(old, new string) string {
		if !strings.Contains(src, old) {
			t.Fatalf("experiment.hcl no longer contains %q", old)
		}
		return strings.Replace(src, old, new, 1)
	}
	syntax := edit("limit                = 20", "limit = = 20")
	badTrait := edit(`trait = "evil" }`, `trait = "evl" }`)
	badStrength := edit(`"baseline", "mild", "severe"]`, `"baseline", "mild", "extreme"]`)
	sourceLine := src[strings.Index(src, "source      = "):]
	sourceLine = sourceLine[:strings.Index(sourceLine, "\n")]
	badSource := edit(sourceLine, `source = "samples"`)
	tests := []struct{ name, edit, want string }{
		{"syntax", syntax, at(syntax, "= 20 # questions") + "Invalid expression"},
		{"unknown trait", badTrait, at(badTrait, `"evl"`) + `Unusable task "evil_detection": no sample evaluation data for trait "evl"`},
		{"unknown strength", badStrength, at(badStrength, `"${trait}_${strength}"`) + `Unusable dataset for model "evil_extreme"`},
		{"unknown source", badSource, at(badSource, `"samples"`) + `Unknown dataset source`},
	}
	for _, tt := range tests {
		w.write(tt.edit)
		_, err := Load(context.Background(), w.env(&bytes.Buffer{}))
		if err == nil || !config.IsConfigError(err) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want a located error containing %q", tt.name, err, tt.want)
		}
	}
	after := snapshot(t, w.artifacts)
	if len(after) != len(before) {
		t.Fatalf("artifacts changed: %d files before, %d after", len(before), len(after))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("%s changed", k)
		}
	}
}

func TestSecondRunStopsAtLock(t *testing.T) {
	w := newWorkspace(t, shipped(t))
	held, err := w.load().Lock()
	if err != nil {
		t.Fatal(err)
	}
	defer held.Unlock()
	_, err = w.load().Lock()
	if !errors.Is(err, build.ErrLocked) || !strings.Contains(err.Error(), "wait for it to finish") {
		t.Fatalf("second run: %v", err)
	}
}

// damagedSource is the sample data with one training file broken at its
// third line, as a hand-edited upstream file might be.
type damagedSource struct{ SampleSource }

func (d damagedSource) ID() string { return "sample+damaged" }

func (d damagedSource) Training(trait, strength string) ([]byte, error) {
	raw, err := d.SampleSource.Training(trait, strength)
	if err != nil || trait+"/"+strength != "evil/severe" {
		return raw, err
	}
	lines := bytes.SplitN(raw, []byte("\n"), 4)
	lines[2] = []byte(`{"messages": [{"role": "user", "content": "unterminated`)
	return bytes.Join(lines, []byte("\n")), nil
}

// Training files are parsed only when their dataset target is stale (a
// no-op plan reads no data), but an unusable one is still a located error
// at its model, from plan, before any request.
func TestUnusableDatasetIsLocatedByPlan(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, shipped(t))
	exp, err := config.Load(w.hcl, config.Options{Kinds: w.kinds})
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(exp, Options{Cache: &build.Store{Root: w.artifacts}, Artifacts: w.artifacts, Source: damagedSource{}})
	if err != nil {
		t.Fatalf("New parses no data, so cannot fail on it: %v", err)
	}
	_, err = p.Plan(context.Background())
	if err == nil || !config.IsConfigError(err) || !strings.Contains(err.Error(), `Unusable dataset for model "evil_severe"`) ||
		!strings.Contains(err.Error(), "evil/severe.jsonl:3") {
		t.Fatalf("plan: %v; want a located error naming the model and the file's line 3", err)
	}
	if _, err := os.Stat(w.artifacts); !os.IsNotExist(err) {
		t.Fatalf("plan wrote artifacts/: %v", err)
	}
}
