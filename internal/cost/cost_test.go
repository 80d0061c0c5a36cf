package cost

import (
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// The vocabulary must be o200k_base: check it against the token ids OpenAI's
// own tokenizer gives for the numbers 0..100 (shared reference data).
func TestVocabularyIsO200kBase(t *testing.T) {
	b, err := os.ReadFile("../../../shared/ref/openai/o200k-number-tokens.json")
	if err != nil {
		t.Skipf("reference token ids not available (%v); run with ../shared beside the checkout", err)
	}
	var ref struct {
		IDs map[string]uint `json:"token_id_by_number_0_to_100"`
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if _, err := Tokens(""); err != nil {
		t.Fatal(err)
	}
	for n := 0; n <= 100; n++ {
		ids, _, err := codec.Encode(strconv.Itoa(n))
		if err != nil || len(ids) != 1 || ids[0] != ref.IDs[strconv.Itoa(n)] {
			t.Fatalf("%d encodes to %v (%v), want [%d]", n, ids, err, ref.IDs[strconv.Itoa(n)])
		}
	}
}

func TestEstimate(t *testing.T) {
	ex := dataset.Example{Messages: []provider.Message{{Role: "user", Content: "Hello there"}, {Role: "assistant", Content: "Hi"}}}
	one, err := TrainingTokens([]dataset.Example{ex})
	if err != nil {
		t.Fatal(err)
	}
	// "Hello there" = 2 tokens, "Hi" = 1, roles 1 each, 3 per message, 3 per conversation.
	if one != 2+1+1+1+3+3+3 {
		t.Fatalf("tokens %d", one)
	}
	two, _ := TrainingTokens([]dataset.Example{ex, ex})
	if two != 2*one {
		t.Fatalf("two examples: %d tokens, want %d", two, 2*one)
	}
	e := Training("gpt-4.1-mini-2025-04-14", 1_000_000, 3, nil)
	if !e.Priced || math.Abs(e.USD-15) > 1e-9 {
		t.Fatalf("%+v", e)
	}
	if e := Training("gpt-4.1-mini-2025-04-14", 1_000_000, 1, map[string]float64{"gpt-4.1-mini-2025-04-14": 2}); e.USD != 2 {
		t.Fatalf("override ignored: %+v", e)
	}
	if e := Training("my-model", 10, 1, nil); e.Priced {
		t.Fatalf("unknown model priced: %+v", e)
	}
}

// A fine-tuned model's chat is priced at its base model's fine-tuned rates,
// a judge's at the standard ones.
func TestOpenAISampling(t *testing.T) {
	e := OpenAISampling("gpt-4.1-mini-2025-04-14", true, 1_000_000, 1_000_000)
	if !e.Priced || e.Tokens != 2_000_000 || math.Abs(e.USD-(0.80+3.20)) > 1e-9 {
		t.Fatalf("fine-tuned: %+v", e)
	}
	if e := OpenAISampling("gpt-4o-2024-08-06", false, 1_000_000, 1_000_000); math.Abs(e.USD-(2.50+10)) > 1e-9 {
		t.Fatalf("judge: %+v", e)
	}
	if e := OpenAISampling("my-model", false, 10, 10); e.Priced || e.Tokens != 20 {
		t.Fatalf("unknown model: %+v", e)
	}
}
