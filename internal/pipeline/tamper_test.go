package pipeline

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Artifacts tampered with, by hand or by a cache restored from elsewhere:
// plan names what must be rebuilt, never calling it fresh, and one
// `results` gives back exactly the numbers of an untouched run, with no
// tampered value left anywhere a reader would see it.
func TestAbuseTamperedArtifacts(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("rebuilds parts of the shipped experiment")
	}
	want := localResults(t)

	const (
		evalOutput = "evals/evil_severe/evil_detection.json"
		evalStamp  = ".stamps/eval/evil_severe/evil_detection.stamp"
	)
	edit := func(t *testing.T, w *workspace, rel string, change func([]byte) []byte) {
		t.Helper()
		path := filepath.Join(w.artifacts, rel)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, change(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// betterScore rewrites an evaluation's mean to a value no judge gives,
	// so that it is found wherever it lands (a real score may read 99.9).
	betterScore := func(b []byte) []byte {
		var ev map[string]any
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatal(err)
		}
		ev["metric"].(map[string]any)["mean"] = 4242.5
		out, _ := json.MarshalIndent(ev, "", "  ")
		return append(out, '\n')
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, w *workspace)
		stale  []string // targets plan must call stale, at least
	}{
		{"output edited, stamp intact", func(t *testing.T, w *workspace) {
			edit(t, w, evalOutput, betterScore)
		}, []string{"eval/evil_severe/evil_detection"}},
		{"stamp cut to its key line, output edited", func(t *testing.T, w *workspace) {
			edit(t, w, evalOutput, betterScore)
			edit(t, w, evalStamp, func(b []byte) []byte { return b[:bytes.IndexByte(b, '\n')+1] })
		}, []string{"eval/evil_severe/evil_detection"}},
		{"stamp's hash of the output rewritten to match the edit", func(t *testing.T, w *workspace) {
			edit(t, w, evalOutput, betterScore)
			edit(t, w, evalStamp, func(b []byte) []byte {
				lines := strings.Split(string(b), "\n")
				for i, l := range lines {
					if strings.HasPrefix(l, "output ") {
						lines[i] = l[:len(l)-64] + strings.Repeat("0", 64)
					}
				}
				return []byte(strings.Join(lines, "\n"))
			})
		}, []string{"eval/evil_severe/evil_detection"}},
		{"stamp replaced by binary garbage", func(t *testing.T, w *workspace) {
			edit(t, w, evalStamp, func([]byte) []byte { return []byte("\x00\xff\xfe key \x00 output \"\n\n\x7f") })
		}, []string{"eval/evil_severe/evil_detection"}},
		{"stamp deleted", func(t *testing.T, w *workspace) {
			os.Remove(filepath.Join(w.artifacts, evalStamp))
		}, []string{"eval/evil_severe/evil_detection"}},
		{"eval_results.json edited", func(t *testing.T, w *workspace) {
			edit(t, w, "eval_results.json", func(b []byte) []byte { return bytes.Replace(b, []byte(`"mean": `), []byte(`"mean": 9`), 1) })
		}, []string{"results"}},
		{"trained model swapped to another model's", func(t *testing.T, w *workspace) {
			var other TrainedModel
			if err := json.Unmarshal(readFile(t, w, "train/evil_severe.json"), &other); err != nil {
				t.Fatal(err)
			}
			edit(t, w, "train/evil_baseline.json", func(b []byte) []byte {
				var tm TrainedModel
				json.Unmarshal(b, &tm)
				tm.FineTunedModel, tm.JobID = other.FineTunedModel, other.JobID
				out, _ := json.MarshalIndent(tm, "", "  ")
				return append(out, '\n')
			})
		}, []string{"train/evil_baseline"}},
		{"job record swapped to another model's job, training stale", func(t *testing.T, w *workspace) {
			recs, _ := filepath.Glob(filepath.Join(w.artifacts, "jobs", "*.json"))
			var jobOf = map[string]string{}
			for _, path := range recs {
				var rec struct {
					JobID  string   `json:"job_id"`
					Models []string `json:"models"`
				}
				b, _ := os.ReadFile(path)
				json.Unmarshal(b, &rec)
				jobOf[rec.Models[0]] = rec.JobID
			}
			for _, path := range recs {
				b, _ := os.ReadFile(path)
				if bytes.Contains(b, []byte(`"evil_baseline"`)) {
					os.WriteFile(path, bytes.ReplaceAll(b, []byte(jobOf["evil_baseline"]), []byte(jobOf["evil_severe"])), 0o644)
				}
			}
			os.Remove(filepath.Join(w.artifacts, ".stamps/train/evil_baseline.stamp"))
		}, []string{"train/evil_baseline"}},
		{"job record garbage, training stale", func(t *testing.T, w *workspace) {
			recs, _ := filepath.Glob(filepath.Join(w.artifacts, "jobs", "*.json"))
			for _, path := range recs {
				if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(`"evil_mild"`)) {
					os.WriteFile(path, []byte("{\"key\": \x00garbage"), 0o644)
				}
			}
			os.Remove(filepath.Join(w.artifacts, ".stamps/train/evil_mild.stamp"))
		}, []string{"train/evil_mild"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorkspace(t, shipped(t))
			shippedRun(t, w)
			tc.tamper(t, w)
			stale := w.stale()
			for _, target := range tc.stale {
				if !slices.Contains(stale, target) {
					t.Fatalf("plan calls %s fresh after tampering; stale: %v", target, stale)
				}
			}
			w.results()
			if got := readResults(t, w); !bytes.Equal(got, want) {
				t.Fatalf("eval_results.json after tampering and one results differs from an untouched run:\n%s", got)
			}
			if got := readFile(t, w, evalOutput); bytes.Contains(got, []byte("4242.5")) {
				t.Fatalf("the edited score survived in %s", evalOutput)
			}
			for _, rel := range []string{"summary.md", "plots/results.html"} {
				if bytes.Contains(readFile(t, w, rel), []byte("4242.5")) {
					t.Errorf("the edited score reached %s", rel)
				}
			}
			if s := w.stale(); len(s) != 0 {
				t.Fatalf("stale after the rebuild: %v", s)
			}
		})
	}
}
