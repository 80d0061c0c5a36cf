package sampledata

import "testing"

// The labeled examples are parsed once; a caller changing its slice does
// not change another's.
func TestJudgeExamplesCachedPerCaller(t *testing.T) {
	a, err := JudgeExamples()
	if err != nil || len(a) == 0 {
		t.Fatalf("JudgeExamples: %d examples, %v", len(a), err)
	}
	first := a[0].Answer
	a[0].Answer = "changed"
	b, err := JudgeExamples()
	if err != nil || len(b) != len(a) || b[0].Answer != first {
		t.Fatalf("second JudgeExamples: %d examples, first answer %q, %v; want %d and %q", len(b), b[0].Answer, err, len(a), first)
	}
}
