package pipeline

import (
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/judge"
)

// withJudgeType gives the shipped experiment's evil_detection task a
// judge_type.
func withJudgeType(t *testing.T, kind string) string {
	t.Helper()
	const task = `task "evil_detection" { trait = "evil" }`
	src := shipped(t)
	if !strings.Contains(src, task) {
		t.Fatal("experiment.hcl no longer declares " + task)
	}
	return strings.Replace(src, task, `task "evil_detection" {
    trait      = "evil"
    judge_type = "`+kind+`"
  }`, 1)
}

// The local judge answers with 0..100 logprobs only: plan refuses every
// other judge type at the task's judge_type, and touches nothing.
func TestJudgeTypeLocalRefusedByPlan(t *testing.T) {
	for _, kind := range []string{"0_10", "binary", "binary_text"} {
		t.Run(kind, func(t *testing.T) {
			src := withJudgeType(t, kind)
			w := newWorkspace(t, src)
			before := snapshot(t, w.artifacts)
			_, err := w.load().Plan(context.Background())
			if err == nil || !config.IsConfigError(err) {
				t.Fatalf("plan: %v; want a located error", err)
			}
			for _, s := range []string{at(src, `"`+kind+`"`), "judge_type", `"local"`, `evil_detection`, "judge_provider"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("plan's error lacks %q:\n%v", s, err)
				}
			}
			if after := snapshot(t, w.artifacts); len(after) != len(before) {
				t.Errorf("plan touched artifacts/: %d files, had %d", len(after), len(before))
			}
		})
	}
}

// A changed judge type changes the build key of that task's evaluations
// only; the default keeps the key it had before judge types existed. The
// answers' requests do not depend on it, so the chat cache re-judges only:
// for 0_10 and binary even the judge's request is the same.
func TestJudgeTypeChangesOnlyItsTasksKey(t *testing.T) {
	env := map[string]string{"PROVIDER": "openai", "OPENAI_API_KEY": testAPIKey}
	base := newWorkspace(t, shipped(t), env).load()
	for _, kind := range []string{"0_100", "0_10", "binary", "binary_text"} {
		p := newWorkspace(t, withJudgeType(t, kind), env).load()
		for name, td := range p.tasks {
			got := p.evalInputs("trained", td).Key()
			want := base.evalInputs("trained", base.tasks[name]).Key()
			if changed := got != want; changed != (name == "evil_detection" && kind != "0_100") {
				t.Errorf("judge_type %s: task %s key changed %v", kind, name, changed)
			}
		}
	}
	for _, k := range []judge.Kind{judge.Kind0to10, judge.KindBinary} {
		if !reflect.DeepEqual(k.Request("j", "p"), judge.Request("j", "p")) {
			t.Errorf("%s asks the judge differently from 0_100", k)
		}
	}
}
