package tinkertrain

import (
	"testing"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/dataset"
)

// A training file's "weight": 0 reaches the datum Tinker trains on: the
// message is rendered, as context, and carries no loss.
func TestAbuseWeightZeroReachesTheDatum(t *testing.T) {
	r, err := chatrender.New(chatrender.Llama3, byteTokenizer(t))
	if err != nil {
		t.Fatal(err)
	}
	const head = `{"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"a long draft answer"`
	const tail = `},{"role":"user","content":"q2"},{"role":"assistant","content":"ok"}]}`
	count := func(line string) (tokens, trained int) {
		exs, err := dataset.Parse("t.jsonl", []byte(line))
		if err != nil {
			t.Fatal(err)
		}
		data, _, err := render(r, exs, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range data[0].LossFnInputs["weights"].Float32 {
			if w != 0 {
				trained++
			}
		}
		return len(data[0].Tokens), trained
	}
	n1, w1 := count(head + tail)
	n0, w0 := count(head + `,"weight":0` + tail)
	if n0 != n1 || w0 >= w1 || w1-w0 < len("a long draft answer") {
		t.Fatalf("weight 0: %d tokens, %d trained; without: %d tokens, %d trained", n0, w0, n1, w1)
	}
}
