package pipeline

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// noBudget is hcl without budget_usd.
func noBudget(t *testing.T, hcl string) string {
	out := strings.Replace(hcl, "budget_usd = 100", "", 1)
	if out == hcl {
		t.Fatal("experiment.hcl no longer sets budget_usd = 100")
	}
	return out
}

// Without budget_usd and with nothing to submit, plan does not read the
// spending ledger: a damaged entry does not stop it.
func TestPlanWithoutBudgetOrSubmissionIgnoresLedger(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, noBudget(t, evilOnly(t)))
	var logb bytes.Buffer
	p := connected(t, w, &logb)
	if err := p.Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	p.Close()
	bad := filepath.Join(w.artifacts, "spend", "0123456789abcdef.json")
	os.MkdirAll(filepath.Dir(bad), 0o755)
	os.WriteFile(bad, []byte("{\"key\": \"x\", \"estimate_usd\": "), 0o644)
	pl, err := w.load().Plan(context.Background())
	if err != nil {
		t.Fatalf("plan with nothing to submit and no budget_usd: %v", err)
	}
	if _, jobs := pl.Stale(); jobs != 0 {
		t.Fatalf("plan would submit %d job(s) after train", jobs)
	}
}

// A damaged ledger entry in a training's own place is refused, naming the
// file, as spent refuses it; it is not overwritten, and nothing is
// submitted.
func TestRecordSpendRefusesDamagedEntry(t *testing.T) {
	t.Parallel()
	w := newWorkspace(t, noBudget(t, evilOnly(t)), map[string]string{"PROVIDER": "openai", "OPENAI_API_KEY": testAPIKey, "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"})
	p := w.load()
	pl, err := p.Plan(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pl.Train) == 0 {
		t.Fatal("plan has no training to submit")
	}
	// Every training's entry is damaged, so that none is submitted.
	var bads []string
	garbage := []byte("{\"key\": \"x\", \"estimate_usd\": ")
	for _, s := range pl.Train {
		if s.Fresh {
			t.Fatalf("%s is fresh before any training", s.Target)
		}
		bad := p.spendPath(s.key)
		bads = append(bads, bad)
		os.MkdirAll(filepath.Dir(bad), 0o755)
		os.WriteFile(bad, garbage, 0o644)
	}
	var logb bytes.Buffer
	c := connected(t, w, &logb)
	defer c.Close()
	// A submission would retry the unreachable server; the refusal comes first.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = c.Train(ctx)
	for _, bad := range bads {
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("train: %v; want a refusal naming %s", err, bad)
		}
		if b, _ := os.ReadFile(bad); !bytes.Equal(b, garbage) {
			t.Errorf("the damaged entry %s was overwritten:\n%s", bad, b)
		}
	}
}
