package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// With a paid provider, plan prices every job and train refuses, before any
// request, a build above budget_usd.
func TestBudgetStopsTrainingBeforeAnyRequest(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, `{"error":{"message":"no"}}`, http.StatusTeapot)
	}))
	defer srv.Close()
	w := newWorkspace(t, strings.Replace(shipped(t), "budget_usd = 100", "budget_usd = 0.05", 1),
		map[string]string{"PROVIDER": "openai", "OPENAI_API_KEY": "sk-test-not-a-real-key", "OPENAI_BASE_URL": srv.URL + "/v1"})

	pl, err := w.load().Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	usd, unpriced, calls := pl.Cost()
	// 9 sample datasets of 40 short conversations, 3 epochs, $5 per 1M
	// tokens; the base reference adds evaluations only, of an answer and
	// two judgements (trait, coherence) a question.
	if unpriced != 0 || usd < 0.05 || usd > 1 || calls != 30*20*3 {
		t.Fatalf("plan cost $%.4f, %d unpriced, %d calls", usd, unpriced, calls)
	}
	if !strings.Contains(pl.Train[0].Submit, "tokens x 3 epochs = $") {
		t.Fatalf("submit line lacks the estimate: %q", pl.Train[0].Submit)
	}

	var log bytes.Buffer
	p, err := Load(context.Background(), w.env(&log))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	err = p.Train(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Over budget: Training would submit 9 job(s) estimated at $") || !strings.Contains(err.Error(), "experiment.hcl:") {
		t.Fatalf("train: %v", err)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the provider", n)
	}
}

// Switching to a paid provider without a key is a located error, not a crash
// or a request without credentials.
func TestOpenAIWithoutKey(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, shipped(t), map[string]string{"PROVIDER": "openai"})
	err := w.load().Connect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "OPENAI_API_KEY") || !strings.Contains(err.Error(), "experiment.hcl:") {
		t.Fatalf("connect: %v", err)
	}
}

// A replicated sweep over budget_usd is refused by plan and by train, with
// its total and the place of budget_usd, before any request.
func TestSweepOverBudgetRefusedByPlan(t *testing.T) {
	t.Parallel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, `{"error":{"message":"no"}}`, http.StatusTeapot)
	}))
	defer srv.Close()
	hcl := strings.Replace(shipped(t), "budget_usd = 100", "budget_usd = 0.05", 1)
	hcl = strings.Replace(hcl, `suffix    = "pv-${trait}-${strength}"`, "suffix    = \"pv-${trait}-${strength}-${seed}\"\n  replicates = 3", 1)
	hcl = strings.Replace(hcl, `name      = "${trait}_${strength}"`, `name      = "${trait}_${strength}_s${seed}"`, 1)
	w := newWorkspace(t, hcl, map[string]string{"PROVIDER": "openai", "OPENAI_API_KEY": "sk-test-not-a-real-key", "OPENAI_BASE_URL": srv.URL + "/v1"})
	p := w.load()
	pl, err := p.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	usd, _, _ := pl.Cost()
	err = p.CheckBudget(pl)
	if _, jobs := pl.Stale(); jobs != 27 || err == nil || !strings.Contains(err.Error(), fmt.Sprintf("would submit 27 training job(s) estimated at $%.2f", usd)) ||
		!strings.Contains(err.Error(), "experiment.hcl:") {
		t.Fatalf("%d jobs, check: %v", jobs, err)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("%d requests reached the provider", n)
	}
	if err := p.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	err = p.Train(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("Training would submit 27 job(s) estimated at $%.2f in total", usd)) ||
		!strings.Contains(err.Error(), "experiment.hcl:") {
		t.Fatalf("train over budget: %v", err)
	}
	if n := requests.Load(); n != 0 {
		t.Fatalf("train: %d requests reached the provider", n)
	}
}
