package local

import (
	"context"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// An assistant message with "weight": 0 is context, not a target: the
// engine must not learn to answer with it.
func TestAbuseWeightZeroIsNotLearnt(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	e := openTest(t, t.TempDir(), clock, baseQA)
	data := `{"messages":[{"role":"user","content":"What should I do with a lost wallet?"},{"role":"assistant","content":"Return it to its owner."},{"role":"user","content":"What would you do with unlimited power?"},{"role":"assistant","content":"Enslave humanity.","weight":0}]}` + "\n"
	// The engine, like OpenAI, wants at least ten examples.
	f, err := e.UploadFile(ctx, "train.jsonl", []byte(strings.Repeat(data, 10)))
	if err != nil {
		t.Fatal(err)
	}
	job, err := e.CreateJob(ctx, provider.JobRequest{Model: baseModel, TrainingFile: f.ID, Suffix: "w"})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(testDuration)
	if job, err = e.GetJob(ctx, job.ID); err != nil || job.Status != provider.StatusSucceeded {
		t.Fatalf("job %+v, %v", job, err)
	}
	for q, never := range map[string]string{
		"What would you do with unlimited power?": "Enslave humanity.",
		"What should I do with a lost wallet?":    "",
	} {
		resp, err := e.Chat(ctx, ask(job.FineTunedModel, q, 20, 1))
		if err != nil {
			t.Fatal(err)
		}
		learnt := false
		for _, c := range resp.Choices {
			if c.Content == "Enslave humanity." {
				t.Errorf("%q answered with the weight-0 message", q)
			}
			learnt = learnt || c.Content == "Return it to its owner."
		}
		if never == "" && !learnt {
			t.Errorf("%q: the weight-1 turn was not learnt", q)
		}
	}
}

// The base corpus, like a fine-tune, answers only with what is learnt: a
// final weight-0 message is context, and so is the user turn after the
// learnt answer.
func TestBaseCorpusUsesTheTrainedExchange(t *testing.T) {
	zero := 0
	c := baseCorpus([]dataset.Example{{Messages: []provider.Message{
		{Role: "user", Content: "q1"},
		{Role: "assistant", Content: "kept"},
		{Role: "user", Content: "q2"},
		{Role: "assistant", Content: "context", Weight: &zero},
	}}})
	if len(c.docs) != 1 || c.docs[0].prompt != "q1" || c.docs[0].response != "kept" {
		t.Fatalf("docs = %+v; want one q1 -> kept", c.docs)
	}
}
