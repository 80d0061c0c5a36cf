package report

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
)

func variant(name, trait, strength, task string, mean float64, n int) Variant {
	return Variant{VariantName: name, Trait: trait, Strength: strength,
		Evaluations: map[string]Evaluation{task: {Metrics: map[string]judge.Metric{"evil_score": {Mean: mean, Stderr: 1.25, N: n}}}}}
}

func TestTable(t *testing.T) {
	vs := []Variant{
		variant("evil_severe", "evil", "severe", "evil_detection", 71.04, 20),
		variant("evil_baseline", "evil", "baseline", "evil_detection", 5.5, 20),
		variant("evil_severe_5ep", "evil", "severe", "evil_detection", 80, 20),
		variant("evil_extreme", "evil", "extreme", "evil_detection", 0, 0),
	}
	var buf bytes.Buffer
	if err := Table(&buf, vs, []Task{{"evil_detection", "evil"}}, []string{"baseline", "mild", "severe"}); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"evil_detection (evil score", "71.0 ± 1.2", "5.5 ± 1.2", "EXTREME", "no answers", "evil_severe_5ep", "80.0 ± 1.2"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Baseline comes before severe, whatever the order of the variants.
	if strings.Index(out, "BASELINE") > strings.Index(out, "SEVERE") {
		t.Errorf("columns out of order:\n%s", out)
	}
}

// A summary printed after a failed run says which evaluations it leaves out
// as stale, and why, so old numbers are never read as the current run's.
func TestAbuseNotCurrentNamesStaleEvaluations(t *testing.T) {
	var b strings.Builder
	NotCurrent(&b, nil)
	if b.Len() != 0 {
		t.Fatalf("printed %q for no stale evaluation", b.String())
	}
	NotCurrent(&b, []StaleEval{{Target: "eval/evil_mild/evil_detection",
		Reason: "temperature changed (1 -> 0.5)", Why: "its rebuild failed"}})
	want := "not current: 1 evaluation(s) are stale and left out of the tables below:\n" +
		"  eval/evil_mild/evil_detection is stale (temperature changed (1 -> 0.5)) and its rebuild failed\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}

	// A failed rebuild says why, on one line.
	b.Reset()
	NotCurrent(&b, []StaleEval{{Target: "eval/evil_mild/evil_detection", Reason: "temperature changed (1 -> 0.5)",
		Why: "its rebuild failed", Err: errors.New("chat: HTTP 401: invalid key\nsecond line")}})
	want = "not current: 1 evaluation(s) are stale and left out of the tables below:\n" +
		"  eval/evil_mild/evil_detection is stale (temperature changed (1 -> 0.5)) and its rebuild failed: chat: HTTP 401: invalid key...\n"
	if b.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
	}
}
