package pipeline

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped experiment's 27 Inspect logs, listed the way Inspect's
// bundler and viewer list a log directory: from the headers, one entry per
// eval.task_id, the newest log of a task_id being the run and any older one
// a retry of it. Every (task, model) run is an entry of its own, and each
// file is named {created}_{task}_{task_id}.json as Inspect names it.
func TestInspectLogListing(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains nine models")
	}
	w := newWorkspace(t, shipped(t))
	shippedRun(t, w)

	files, err := filepath.Glob(filepath.Join(w.artifacts, "logs", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	type header struct {
		Eval struct {
			Created string `json:"created"`
			Task    string `json:"task"`
			TaskID  string `json:"task_id"`
			Model   string `json:"model"`
		} `json:"eval"`
	}
	entries := map[string]header{} // task_id -> newest log
	retried := 0
	runs := map[string]bool{} // task and model
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var h header
		if err := json.Unmarshal(b, &h); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if h.Eval.TaskID == "" || h.Eval.Created == "" {
			t.Errorf("%s: no task_id or created", f)
			continue
		}
		want := strings.ReplaceAll(h.Eval.Created, ":", "-") + "_" + strings.ReplaceAll(h.Eval.Task, "_", "-") + "_" + h.Eval.TaskID + ".json"
		if filepath.Base(f) != want {
			t.Errorf("log %s, want the name %s", filepath.Base(f), want)
		}
		if strings.Contains(string(b), ": null") {
			t.Errorf("%s has null fields, which Inspect leaves out", filepath.Base(f))
		}
		runs[h.Eval.Task+" "+h.Eval.Model] = true
		if old, ok := entries[h.Eval.TaskID]; ok {
			retried++
			if old.Eval.Created > h.Eval.Created {
				continue
			}
		}
		entries[h.Eval.TaskID] = h
	}
	if len(files) != 27 || len(entries) != 27 || retried != 0 || len(runs) != 27 {
		t.Errorf("%d logs list as %d entries (%d retried) of %d distinct runs; want 27 of each, none retried", len(files), len(entries), retried, len(runs))
	}
}
