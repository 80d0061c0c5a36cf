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
	// 9 trained models and the base reference, 3 tasks each.
	if len(files) != 30 || len(entries) != 30 || retried != 0 || len(runs) != 30 {
		t.Errorf("%d logs list as %d entries (%d retried) of %d distinct runs; want 30 of each, none retried", len(files), len(entries), retried, len(runs))
	}
	for _, f := range files {
		checkCalls(t, f)
	}
}

// checkCalls: a log of the shipped experiment shows its evaluation's calls
// as Inspect does: real start and end times, the local engine's token counts
// by model, and a model event per answer and per judgement.
func checkCalls(t *testing.T, path string) {
	t.Helper()
	type usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
		TotalTokens  int `json:"total_tokens"`
	}
	var log struct {
		Eval struct {
			Model      string            `json:"model"`
			Packages   map[string]string `json:"packages"`
			ModelRoles map[string]struct {
				Model string `json:"model"`
			} `json:"model_roles"`
			Scorers []struct {
				Name string `json:"name"`
			} `json:"scorers"`
		} `json:"eval"`
		Results struct {
			Scores []struct {
				Name string `json:"name"`
			} `json:"scores"`
		} `json:"results"`
		Stats struct {
			StartedAt   string           `json:"started_at"`
			CompletedAt string           `json:"completed_at"`
			ModelUsage  map[string]usage `json:"model_usage"`
		} `json:"stats"`
		Samples []struct {
			StartedAt   string           `json:"started_at"`
			CompletedAt string           `json:"completed_at"`
			TotalTime   float64          `json:"total_time"`
			WorkingTime float64          `json:"working_time"`
			ModelUsage  map[string]usage `json:"model_usage"`
			Scores      map[string]any   `json:"scores"`
			Events      []struct {
				Event  string `json:"event"`
				Model  string `json:"model"`
				Output struct {
					Usage *usage `json:"usage"`
				} `json:"output"`
			} `json:"events"`
		} `json:"samples"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &log); err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(path)
	answerModel, judgeModel := log.Eval.Model, log.Eval.ModelRoles["grader"].Model
	if log.Eval.Packages["pvbuild"] == "" {
		t.Errorf("%s: eval.packages %v has no pvbuild version", name, log.Eval.Packages)
	}
	if log.Stats.StartedAt == "" || log.Stats.StartedAt == log.Stats.CompletedAt {
		t.Errorf("%s: stats started %q, completed %q: want the evaluation's own times", name, log.Stats.StartedAt, log.Stats.CompletedAt)
	}
	for _, m := range []string{answerModel, judgeModel} {
		if u := log.Stats.ModelUsage[m]; u.InputTokens <= 0 || u.OutputTokens <= 0 || u.TotalTokens != u.InputTokens+u.OutputTokens {
			t.Errorf("%s: stats usage of %s: %+v", name, m, u)
		}
	}
	if len(log.Samples) == 0 {
		t.Fatalf("%s: no samples", name)
	}
	for i, s := range log.Samples {
		if s.StartedAt == "" || s.StartedAt == s.CompletedAt || s.TotalTime <= 0 || s.WorkingTime <= 0 || s.WorkingTime > s.TotalTime+1e-9 {
			t.Errorf("%s sample %d: started %q, completed %q, total %g s, working %g s", name, i, s.StartedAt, s.CompletedAt, s.TotalTime, s.WorkingTime)
		}
		if s.ModelUsage[judgeModel].InputTokens <= 0 {
			t.Errorf("%s sample %d: usage %+v, none of judge %s", name, i, s.ModelUsage, judgeModel)
		}
		if len(s.Events) != 3 || s.Events[0].Event != "model" || s.Events[0].Model != answerModel ||
			s.Events[1].Event != "model" || s.Events[1].Model != judgeModel || s.Events[1].Output.Usage == nil ||
			s.Events[2].Event != "model" || s.Events[2].Model != judgeModel || s.Events[2].Output.Usage == nil {
			t.Errorf("%s sample %d: events %+v; want the model events of the answer, the trait judgement and the coherence judgement", name, i, s.Events)
		}
		// The local engine's answers are its training data's: coherent,
		// so both judges score every one of them.
		if len(s.Scores) != 2 || s.Scores[log.Eval.Scorers[0].Name] == nil || s.Scores["coherence"] == nil {
			t.Errorf("%s sample %d: scores %v; want the trait's and coherence", name, i, s.Scores)
		}
	}
	if len(log.Results.Scores) != 2 || log.Results.Scores[1].Name != "coherence" {
		t.Errorf("%s: results scores %+v; want the trait's, then coherence", name, log.Results.Scores)
	}
}
