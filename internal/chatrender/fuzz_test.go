package chatrender

import "testing"

// FuzzRender: any conversation renders or is refused, without panics, and a
// rendering always has one weight per token.
func FuzzRender(f *testing.F) {
	f.Add("user", "hi", "assistant", "<think>x</think>\n\ny", 0)
	f.Add("system", "", "tool", "<|im_end|></think>", 1)
	f.Add("assistant", "\n\n", "", "<|eot_id|>", 2)
	f.Fuzz(func(t *testing.T, role1, content1, role2, content2 string, on int) {
		msgs := []Message{{Role: role1, Content: content1}, {Role: "user", Content: content1}, {Role: role2, Content: content2}}
		for _, name := range []string{Qwen3, Qwen3DisableThinking, Qwen3Instruct, Llama3} {
			r := renderer(t, name)
			for _, m := range [][]Message{msgs, msgs[:1], nil} {
				ex, err := r.Supervised(m, TrainOn(on%7))
				if err == nil && len(ex.Tokens) != len(ex.Weights) {
					t.Fatalf("%s: %d tokens, %d weights", name, len(ex.Tokens), len(ex.Weights))
				}
				_, _ = ex.Datum(on, on%2 == 0)
				_, _ = r.GenerationPrompt(m)
			}
		}
	})
}
