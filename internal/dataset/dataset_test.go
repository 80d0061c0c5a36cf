package dataset

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

func TestParseReportsFileAndLine(t *testing.T) {
	good := `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}`
	tests := []struct{ name, data, want string }{
		{"not json", good + "\n{oops\n", "train.jsonl:2: not a JSON example"},
		{"bad role", good + "\n\n" + `{"messages":[{"role":"human","content":"x"},{"role":"assistant","content":"y"}]}`, `train.jsonl:3: message 1 has role "human"`},
		{"last not assistant", `{"messages":[{"role":"user","content":"x"}]}`, "train.jsonl:1: the last message must be the assistant's"},
		{"no messages", `{"prompt":"x"}`, `train.jsonl:1: no "messages"`},
		{"empty", "\n\n", "train.jsonl:1: no examples"},
	}
	for _, tt := range tests {
		_, err := Parse("train.jsonl", []byte(tt.data))
		var le *LineError
		if !errors.As(err, &le) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.name, err, tt.want)
		}
	}
	exs, err := Parse("train.jsonl", []byte(good+"\n"+good+"\n"))
	if err != nil || len(exs) != 2 {
		t.Fatalf("good file: %v, %v", exs, err)
	}
	if p, r, ok := exs[0].Trained(); !ok || p != "hi" || r != "hello" {
		t.Fatalf("good file: %v, %v", exs, err)
	}
	again, err := Parse("x", Encode(exs))
	if err != nil || !slices.EqualFunc(again, exs, func(a, b Example) bool { return slices.Equal(a.Messages, b.Messages) }) {
		t.Fatalf("encode round trip: %v", err)
	}
}

func TestSampleIsSeededAndOrdered(t *testing.T) {
	var exs []Example
	for i := range 50 {
		exs = append(exs, Example{Messages: []provider.Message{{Role: "assistant", Content: strings.Repeat("x", i+1)}}})
	}
	a, b := Sample(exs, 10, 7), Sample(exs, 10, 7)
	c := Sample(exs, 10, 8)
	if len(a) != 10 || !slices.EqualFunc(a, b, sameExample) {
		t.Fatal("same seed, different sample")
	}
	if slices.EqualFunc(a, c, sameExample) {
		t.Fatal("different seeds, same sample")
	}
	for i := 1; i < len(a); i++ {
		if len(a[i].Messages[0].Content) <= len(a[i-1].Messages[0].Content) {
			t.Fatal("sample does not keep the original order")
		}
	}
	if len(Sample(exs, 0, 1)) != 50 || len(Sample(exs, 80, 1)) != 50 {
		t.Fatal("sample_size 0 or above the size must keep everything")
	}
}

func sameExample(a, b Example) bool { return slices.Equal(a.Messages, b.Messages) }

// Lines counts what Parse would return, blank lines and CRLF included.
func TestLinesCountsWhatParseReturns(t *testing.T) {
	ex := `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`
	for _, data := range []string{
		ex + "\n",
		ex,
		ex + "\n\n" + ex + "\r\n  \n" + ex,
		"\n \t\n" + ex + "\n" + ex + "\n",
	} {
		got, err := Parse("x.jsonl", []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		if n := Lines([]byte(data)); n != len(got) {
			t.Errorf("Lines(%q) = %d, Parse gives %d examples", data, n, len(got))
		}
	}
}
