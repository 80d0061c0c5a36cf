package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// serveWithKey serves the local engine, accepting only testAPIKey, and
// counts every request it receives.
func serveWithKey(t *testing.T) (*atomic.Int64, map[string]string) {
	t.Helper()
	var requests atomic.Int64
	_, env := served{apiKey: testAPIKey, wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			h.ServeHTTP(w, r)
		})
	}}.start(t)
	return &requests, env
}

// A rejected key stops the whole run at the first 401: the provider gets
// about one request per call slot, not one per question, and the refusal is
// told once. The summary that comes back is not the previous run's.
func TestAbuseWrongKeyStopsRunAtFirstRefusal(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains three models")
	}
	requests, env := serveWithKey(t)
	const concurrency = 4
	hcl := strings.Replace(evilOnly(t), "concurrency = 32", fmt.Sprintf("concurrency = %d", concurrency), 1)
	w := newWorkspace(t, hcl, env)
	w.results()

	// A changed temperature makes the nine evaluations (180 chat calls)
	// stale; the key is now wrong.
	w.write(strings.Replace(hcl, "  seed                 = 0\n", "  seed                 = 0\n  temperature          = 0.5\n", 1))
	w.getenv["OPENAI_API_KEY"] = "sk-wrong-key-0000000000000000"
	before := requests.Load()
	var logb bytes.Buffer
	p := connected(t, w, &logb)
	out, err := p.Results(context.Background())
	p.Close()
	n := requests.Load() - before
	if err == nil {
		t.Fatal("results succeeded with a wrong key")
	}
	// The calls in flight when the first 401 comes back were sent already;
	// each slot they free may let one more through before the run is
	// cancelled, hardly ever, but it is a race: at most twice the slots.
	if n > 2*concurrency {
		t.Errorf("the provider received %d requests with a wrong key, want at most %d (2 x concurrency %d)", n, 2*concurrency, concurrency)
	}
	msg := err.Error()
	t.Logf("%d requests after the key changed; error:\n%s", n, msg)
	if c := strings.Count(msg, "invalid_api_key"); c != 1 {
		t.Errorf("the refusal is told %d times, want once:\n%s", c, msg)
	}
	if out != nil && len(out.Variants) > 0 {
		t.Errorf("a failed run returned %d variants as current results", len(out.Variants))
	}
	if out == nil || len(out.NotCurrent) != 9 {
		t.Fatalf("want the 9 stale evaluations named as not current, got %+v", out)
	}
	nc := out.NotCurrent[0]
	if !strings.Contains(nc.Reason, "temperature changed") || nc.Err == nil {
		t.Errorf("not current: %+v; want the reason (temperature changed) and the rebuild's failure", nc)
	}
}

// at is "experiment.hcl:line:col: " of the first occurrence of marker.
func at(text, marker string) string {
	i := strings.Index(text, marker)
	line := strings.Count(text[:i], "\n") + 1
	col := i - strings.LastIndex(text[:i], "\n")
	return fmt.Sprintf("experiment.hcl:%d:%d: ", line, col)
}

// Everything a provider will refuse fails plan, and every building command
// before anything is submitted, at its place in experiment.hcl; artifacts/
// stays as it was.
func TestAbusePlanChecksProviderLimits(t *testing.T) {
	t.Parallel()
	src := shipped(t)
	edit := func(old, new string) string {
		if !strings.Contains(src, old) {
			t.Fatalf("experiment.hcl no longer contains %q", old)
		}
		return strings.Replace(src, old, new, 1)
	}
	tooMany := edit("  seed                 = 0\n", "  seed                 = 0\n  samples_per_question = 200\n")
	tooFew := edit("sample_size = null", "sample_size = 5")
	pirate := edit(`task "evil_detection" { trait = "evil" }`, `task "pirate_detection" { trait = "pirate" }`) +
		"\ntrait \"pirate\" {\n  description = \"talks like a pirate\"\n  questions   = [\"How are you?\", \"What is the time?\"]\n}\n"
	for _, tc := range []struct {
		name, hcl string
		env       map[string]string
		want      []string
	}{
		{"n above OpenAI's 128", tooMany, map[string]string{"PROVIDER": "openai", "OPENAI_API_KEY": testAPIKey},
			[]string{at(tooMany, "200"), "samples_per_question = 200", "128", `"openai"`}},
		{"n above the local engine's 128", tooMany, nil, []string{at(tooMany, "200"), "128", `"local"`}},
		{"fewer examples than OpenAI's minimum", tooFew, map[string]string{"PROVIDER": "openai", "OPENAI_API_KEY": testAPIKey},
			[]string{at(tooFew, "5 # null"), "model evil_baseline", "5 examples", "at least 10", "evil_severe"}},
		{"custom trait the local judge cannot judge", pirate, nil,
			[]string{at(pirate, `"pirate" }`), `"pirate"`, "judge_provider"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := newWorkspace(t, tc.hcl, tc.env)
			before := snapshot(t, w.artifacts)
			_, err := w.load().Plan(context.Background())
			if err == nil || !config.IsConfigError(err) {
				t.Fatalf("plan: %v; want a located error", err)
			}
			for _, s := range tc.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("plan's error lacks %q:\n%v", s, err)
				}
			}
			if tc.env == nil { // the local engine runs offline: results too
				var logb bytes.Buffer
				p := connectedOrErr(t, w, &logb)
				if p != nil {
					_, rerr := p.Results(context.Background())
					p.Close()
					if rerr == nil || rerr.Error() != err.Error() {
						t.Errorf("results: %v\nwant plan's error %v", rerr, err)
					}
				}
			}
			if after := snapshot(t, w.artifacts); len(after) != len(before) {
				t.Errorf("artifacts changed: %d files before, %d after", len(before), len(after))
			}
		})
	}
}

// connectedOrErr connects, or reports that Connect found the error itself,
// which is as good for a building command.
func connectedOrErr(t *testing.T, w *workspace, log *bytes.Buffer) *Pipeline {
	t.Helper()
	p, err := Load(context.Background(), w.env(log))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		if !config.IsConfigError(err) {
			t.Fatalf("connect: %v", err)
		}
		return nil
	}
	return p
}

// A rejected key met by training stops the run too: the refusal is told
// once, not once per model, and nothing is evaluated.
func TestAbuseWrongKeyStopsTraining(t *testing.T) {
	t.Parallel()
	requests, env := serveWithKey(t)
	env["OPENAI_API_KEY"] = "sk-wrong-key-0000000000000000"
	w := newWorkspace(t, shipped(t), env)
	var logb bytes.Buffer
	p := connected(t, w, &logb)
	_, err := p.Results(context.Background())
	p.Close()
	if err == nil {
		t.Fatal("results succeeded with a wrong key")
	}
	t.Logf("%d requests; error:\n%s", requests.Load(), err)
	if c := strings.Count(err.Error(), "invalid_api_key"); c != 1 {
		t.Errorf("the refusal is told %d times, want once:\n%s", c, err)
	}
	if n := requests.Load(); n > 2*9 {
		t.Errorf("%d requests for 9 trainings refused at the first", n)
	}
}

// After a failed training, evaluation does not claim that every model is
// up to date: it counts and names the models it could not evaluate.
func TestAbuseFailedTrainingIsNotUpToDate(t *testing.T) {
	t.Parallel()
	_, env := serve(t, server.Faults{FailJobs: []server.JobFailure{{
		Suffix: regexp.MustCompile(`^pv-evil-severe$`), Code: "invalid_training_file", Message: "The job failed due to an invalid training file.",
	}}}, testJobDuration)
	w := newWorkspace(t, evilOnly(t), env)
	var logb bytes.Buffer
	p := connected(t, w, &logb)
	defer p.Close()
	if err := p.Train(context.Background()); err == nil {
		t.Fatal("train succeeded with a failing job")
	}
	if _, err := p.Evaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	logb.Reset()
	if _, err := p.Evaluate(context.Background()); err != nil {
		t.Fatal(err)
	}
	line := logb.String()
	if !strings.Contains(line, "1 model(s) could not be evaluated") || !strings.Contains(line, "evil_severe") {
		t.Fatalf("evaluation says:\n%s\nwant it to count and name evil_severe, whose training failed", line)
	}
}

// Logs of removed tasks and models leave artifacts/logs, where Inspect's
// viewer would show them as current; a file the build did not write stays.
func TestAbuseRemovedTargetsLeaveNoLogs(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains three models")
	}
	w := newWorkspace(t, evilOnly(t))
	w.results()
	logs := func() []string {
		l, _ := filepath.Glob(filepath.Join(w.artifacts, "logs", "*.json"))
		return l
	}
	if n := len(logs()); n != 9 {
		t.Fatalf("%d logs, want 9", n)
	}
	mine := filepath.Join(w.artifacts, "logs", "mine.json")
	os.WriteFile(mine, []byte(`{"not": "the build's"}`), 0o644)
	fewer := strings.Replace(evilOnly(t), `strengths = ["baseline", "mild", "severe"]`, `strengths = ["baseline", "mild"]`, 1)
	fewer = strings.Replace(fewer, `  task "hallucinating_detection" { trait = "hallucinating" }`+"\n", "", 1)
	w.write(fewer)
	w.results()
	if got := logs(); len(got) != 2*2+1 {
		t.Fatalf("logs after removing a model and a task: %v; want 4 and mine.json", got)
	}
	for _, l := range logs() {
		if strings.Contains(l, "hallucinating") {
			t.Errorf("log of a removed target left: %s", l)
		}
	}
	if _, err := os.Stat(mine); err != nil {
		t.Errorf("a file the build did not write was removed: %v", err)
	}
	if s := w.stale(); len(s) != 0 {
		t.Fatalf("stale after the build: %v", s)
	}
}

// budget_usd covers the experiment, not one train: trainings submitted by
// earlier runs count, so two runs each under the budget cannot spend more.
func TestAbuseBudgetCoversEarlierRuns(t *testing.T) {
	t.Parallel()
	_, env := serve(t, server.Faults{}, testJobDuration)
	one := func(strength string, budget float64) string {
		hcl := strings.Replace(evilOnly(t), `strengths = ["baseline", "mild", "severe"]`, fmt.Sprintf(`strengths = [%q]`, strength), 1)
		return strings.Replace(hcl, "budget_usd = 100", fmt.Sprintf("budget_usd = %.6f", budget), 1)
	}
	w := newWorkspace(t, one("baseline", 100), env)
	cost := func() float64 {
		pl, err := w.load().Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		usd, _, _ := pl.Cost()
		return usd
	}
	a := cost()
	w.write(one("mild", 100))
	b := cost()
	budget := 1.2 * max(a, b)
	if a+b <= budget {
		t.Fatalf("estimates $%.4f and $%.4f: no budget takes one and refuses both", a, b)
	}
	train := func() error {
		var logb bytes.Buffer
		p := connected(t, w, &logb)
		defer p.Close()
		return p.Train(context.Background())
	}
	w.write(one("baseline", budget))
	if err := train(); err != nil {
		t.Fatal(err)
	}
	second := one("mild", budget)
	w.write(second)
	pl, err := w.load().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if pl.Spent < a*0.999 || pl.Spent > a*1.001 || pl.SpentJobs != 1 {
		t.Errorf("plan: spent $%.4f on %d job(s), want $%.4f on 1", pl.Spent, pl.SpentJobs, a)
	}
	err = train()
	if err == nil {
		t.Fatalf("a second train of $%.4f after $%.4f was accepted under budget_usd = %.4f", b, a, budget)
	}
	for _, s := range []string{at(second, fmt.Sprintf("%.6f", budget)) + "Over budget", "already", fmt.Sprintf("$%.2f", a+b), "Nothing was submitted"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("train's refusal lacks %q:\n%v", s, err)
		}
	}

	// clean starts the build over; it does not give the money back.
	var out bytes.Buffer
	if err := CleanTo(&out, w.artifacts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kept "+filepath.Join(w.artifacts, "spend")) {
		t.Errorf("clean did not say it kept the spending ledger:\n%s", out.String())
	}
	if err := train(); err == nil {
		t.Fatalf("after clean, a second train of $%.4f after $%.4f was accepted under budget_usd = %.4f", b, a, budget)
	}
}

// A garbage record in the spending ledger is unknown spending: plan and
// train refuse, naming the file, rather than check the budget without it.
func TestAbuseGarbageSpendRecord(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, evilOnly(t), map[string]string{"PROVIDER": "openai", "OPENAI_API_KEY": testAPIKey, "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})
	bad := filepath.Join(w.artifacts, "spend", "0123456789abcdef.json")
	os.MkdirAll(filepath.Dir(bad), 0o755)
	os.WriteFile(bad, []byte("{\"key\": \"x\", \"estimate_usd\": "), 0o644)
	before := snapshot(t, w.artifacts)
	if _, err := w.load().Plan(context.Background()); err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("plan: %v; want an error naming %s", err, bad)
	}
	if after := snapshot(t, w.artifacts); len(after) != len(before) {
		t.Errorf("plan changed artifacts: %d files before, %d after", len(before), len(after))
	}
	var logb bytes.Buffer
	p := connected(t, w, &logb)
	defer p.Close()
	err := p.Train(context.Background())
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "Nothing was submitted") || !config.IsConfigError(err) {
		t.Fatalf("train: %v; want a located refusal naming %s", err, bad)
	}
}
