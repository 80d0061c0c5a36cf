package tinkerserver

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/tinker"
)

// TestFaults injects each kind of fault and checks that the client rides
// it out and that the server still trains exactly once per datum.
func TestFaults(t *testing.T) {
	cases := []struct {
		name     string
		faults   Faults
		injected func(Counters) int64
	}{
		{"pending 408", Faults{Pending408: 2}, func(c Counters) int64 { return c.Injected408 }},
		{"try_again", Faults{Seed: 1, TryAgainRate: 0.4}, func(c Counters) int64 { return c.InjectedTryAgain }},
		{"metadata first", Faults{MetadataFirst: true}, func(c Counters) int64 { return c.InjectedMetadata }},
		{"410 resubmit", Faults{Seed: 2, GoneRate: 0.25}, func(c Counters) int64 { return c.Injected410 }},
		{"429 retry-after", Faults{Seed: 3, RateLimitRate: 0.25, RetryAfter: 2 * time.Second}, func(c Counters) int64 { return c.Injected429 }},
		{"500", Faults{Seed: 4, ServerErrorRate: 0.25}, func(c Counters) int64 { return c.Injected500 }},
		{"dropped connections", Faults{Seed: 5, DropRate: 0.2}, func(c Counters) int64 { return c.InjectedDrops }},
		{"lost responses", Faults{Seed: 6, LostResponseRate: 0.2}, func(c Counters) int64 { return c.InjectedLost }},
	}
	r, tok := testRenderer(t)
	exs := trainingSet(t, "hallucinating", "severe")[:12]
	ds := datums(t, r, exs, chatrender.LastAssistantMessage)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := start(t, Options{Faults: tc.faults, FwdbwdMaxChunkLen: 4})
			ctx := context.Background()
			var slept []time.Duration
			c := h.client(t, func(ctx context.Context, d time.Duration) error {
				slept = append(slept, d)
				return ctx.Err()
			})
			sess, err := c.Start(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m, err := sess.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: DefaultBaseModel})
			if err != nil {
				t.Fatal(err)
			}
			trainEpochs(t, ctx, m, ds, 12, 0, 2)
			if _, err := m.SaveState(ctx, "mid", 0); err != nil {
				t.Fatal(err)
			}
			path, err := m.SaveWeightsForSampler(ctx, "final", 0)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := sess.CreateSamplingSession(ctx, path, "")
			if err != nil {
				t.Fatal(err)
			}
			prompt, err := r.GenerationPrompt(chatMsgs(exs[0])[:1])
			if err != nil {
				t.Fatal(err)
			}
			p := tinker.DefaultSamplingParams()
			p.Temperature = 0
			res, err := sc.Sample(ctx, int32s(prompt), p)
			if err != nil {
				t.Fatal(err)
			}
			// Trained twice on exactly these examples, the model answers
			// the first question with its own training answer.
			got := tok.Decode(ints(res.Sequences[0].Tokens))
			if want := exs[0].Messages[1].Content + "<|im_end|>"; got != want {
				t.Errorf("answer %q, want %q", got, want)
			}

			cnt := h.srv.Counters()
			if tc.injected(cnt) == 0 {
				t.Fatalf("no fault injected: %+v", cnt)
			}
			// Requests by route and outcome add up to the counters.
			var total, dropped, lost, r429, r500 int64
			for _, outcomes := range h.srv.Requests() {
				for o, n := range outcomes {
					total += n
					switch {
					case o == "dropped":
						dropped += n
					case strings.HasPrefix(o, "lost "):
						lost += n
					case o == "429":
						r429 += n
					case o == "500":
						r500 += n
					}
				}
			}
			if total != cnt.Requests || dropped != cnt.InjectedDrops || lost != cnt.InjectedLost || r429 != cnt.Injected429 || r500 != cnt.Injected500 {
				t.Errorf("requests by route %v: %d requests, %d dropped, %d lost, %d 429, %d 500; counters %+v",
					h.srv.Requests(), total, dropped, lost, r429, r500, cnt)
			}
			// Resubmissions after lost answers and 410s do not train twice.
			if cnt.ForwardBackward != 6 || cnt.Datums != 24 || cnt.Examples != 24 || cnt.OptimSteps != 2 || cnt.LocalJobs != 1 || cnt.Samples != 1 {
				t.Errorf("counters %+v: want 6 forward_backward chunks, 24 datums, 2 steps, 1 job, 1 sample", cnt)
			}
			jobs, err := h.eng.ListJobs(ctx, map[string]string{"tinker_path": path})
			if err != nil || len(jobs) != 1 || jobs[0].Hyperparameters.NEpochs != 2 {
				t.Fatalf("jobs %+v %v", jobs, err)
			}
			if tc.faults.RateLimitRate > 0 {
				honoured := false
				for _, d := range slept {
					honoured = honoured || d == tc.faults.RetryAfter
				}
				if !honoured {
					t.Errorf("Retry-After %s never honoured (slept %v)", tc.faults.RetryAfter, slept)
				}
			}
		})
	}
}

func TestFaultsValidate(t *testing.T) {
	for _, f := range []Faults{{DropRate: 1.5}, {RateLimitRate: 0.6, ServerErrorRate: 0.6}, {GoneRate: -0.1}, {Pending408: -1}} {
		if f.Validate() == nil {
			t.Errorf("%+v accepted", f)
		}
	}
	if _, err := Open(newEngine(t), Options{Faults: Faults{DropRate: 2}}); err == nil {
		t.Error("Open accepted invalid faults")
	}
}
