package report

import "testing"

func TestPlanLinesAlignAndSayWhatWouldBeSubmitted(t *testing.T) {
	var b []byte
	for _, l := range []PlanLine{
		{Target: "dataset/evil/mild", Fresh: true},
		{Target: "train/m1", Reason: "no stamp", Submit: "1 training job (gpt-4.1-mini)"},
		{Target: "results", Reason: "input eval/m1/t1 changed"},
	} {
		b = AppendPlanLine(b, l, len("dataset/evil/mild"))
	}
	want := "" +
		"  dataset/evil/mild  fresh\n" +
		"  train/m1           STALE: no stamp\n" +
		"                     would submit 1 training job (gpt-4.1-mini)\n" +
		"  results            STALE: input eval/m1/t1 changed\n"
	if string(b) != want {
		t.Errorf("listing:\n%s\nwant:\n%s", b, want)
	}
}
