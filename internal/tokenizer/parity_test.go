package tokenizer

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/tokenizer/nodeparity"
)

var (
	loaded   = map[string]*Tokenizer{}
	loadedMu sync.Mutex
)

// load parses a reference tokenizer once per test binary: they are 9-11 MB.
func load(t testing.TB, m nodeparity.Model) *Tokenizer {
	t.Helper()
	path := m.TokenizerJSON(t)
	loadedMu.Lock()
	defer loadedMu.Unlock()
	if tk, ok := loaded[path]; ok {
		return tk
	}
	tk, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	loaded[path] = tk
	return tk
}

func parityTexts(t *testing.T) []string {
	// The edge cases also as one document: pieces meet across the joins.
	return append(append(nodeparity.Texts(t), nodeparity.EdgeTexts...), strings.Join(nodeparity.EdgeTexts, "\n"))
}

func TestParityWithHuggingFaceJS(t *testing.T) {
	nodeparity.Modules(t)
	texts := parityTexts(t)
	for _, m := range []nodeparity.Model{nodeparity.Qwen3, nodeparity.Llama31} {
		t.Run(m.Name, func(t *testing.T) {
			t.Parallel()
			tk := load(t, m)
			ids := make([][]int, len(texts))
			for i, s := range texts {
				ids[i] = tk.Encode(s)
			}
			// Splitting special tokens changes only texts that hold one.
			var special []string
			for _, s := range texts {
				if strings.Contains(s, "<") {
					special = append(special, s)
				}
			}
			resp := nodeparity.Run(t, m, nodeparity.Request{Encode: texts, EncodeSplitSpecial: special, Decode: ids})
			bad := 0
			check := func(ok bool, format string, args ...any) {
				if !ok {
					t.Errorf(format, args...)
					if bad++; bad > 10 {
						t.Fatal("too many differences")
					}
				}
			}
			for i, s := range texts {
				check(slices.Equal(ids[i], orEmpty(resp.Encode[i])), "Encode(%q)\n go: %v\n js: %v", clip(s), ids[i], resp.Encode[i])
				got := tk.Decode(ids[i])
				check(got == resp.Decode[i], "Decode(Encode(%q))\n go: %q\n js: %q", clip(s), got, resp.Decode[i])
			}
			for i, s := range special {
				got := tk.EncodeSplitSpecial(s)
				check(slices.Equal(got, orEmpty(resp.EncodeSplitSpecial[i])), "EncodeSplitSpecial(%q)\n go: %v\n js: %v", clip(s), got, resp.EncodeSplitSpecial[i])
			}
			t.Logf("%d texts encoded and decoded, %d split-special encoded, as the reference does", len(texts), len(special))
		})
	}
}

func orEmpty(ids []int) []int {
	if ids == nil {
		return []int{}
	}
	return ids
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + fmt.Sprintf("…(%d bytes)", len(s))
	}
	return s
}
