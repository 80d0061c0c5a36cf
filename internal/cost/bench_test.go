package cost

import (
	"testing"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// judgePrompts are the filled judge prompts of the first trait: what plan
// prices and the local engine bills most often.
func judgePrompts(b *testing.B) []string {
	task, err := sampledata.EvalTask(sampledata.Traits[0])
	if err != nil {
		b.Fatal(err)
	}
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		b.Fatal(err)
	}
	var ps []string
	for _, ex := range labeled {
		ps = append(ps, judge.Prompt(task.EvalPrompt, ex.Question, ex.Answer))
	}
	if len(ps) == 0 {
		b.Fatal("no judge examples")
	}
	return ps
}

// plain is the tokenizer alone (what Tokens did before it cut and
// memoised); fast is Tokens.
func BenchmarkTokensJudgePrompt(b *testing.B) {
	ps := judgePrompts(b)
	for _, bc := range []struct {
		name  string
		count func(string) (int, error)
	}{{"plain", countRaw}, {"fast", Tokens}} {
		b.Run(bc.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				if _, err := bc.count(ps[i%len(ps)]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
