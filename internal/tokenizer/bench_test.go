package tokenizer

import (
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/tokenizer/nodeparity"
)

// go test ./internal/tokenizer -run XXX -bench . -benchmem
// (the real tokenizers need PVBUILD_NODE_MODULES, as for the parity tests).

func benchEncode(b *testing.B, m nodeparity.Model, cold bool) {
	tk := load(b, m)
	text := strings.Join(nodeparity.Texts(b), "\n")
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		if cold {
			tk.cacheMu.Lock()
			clear(tk.cache)
			tk.cacheMu.Unlock()
		}
		tk.Encode(text)
	}
}

func BenchmarkEncodeQwen3(b *testing.B)       { benchEncode(b, nodeparity.Qwen3, false) }
func BenchmarkEncodeQwen3Cold(b *testing.B)   { benchEncode(b, nodeparity.Qwen3, true) }
func BenchmarkEncodeLlama31(b *testing.B)     { benchEncode(b, nodeparity.Llama31, false) }
func BenchmarkEncodeLlama31Cold(b *testing.B) { benchEncode(b, nodeparity.Llama31, true) }

func BenchmarkDecodeQwen3(b *testing.B) {
	tk := load(b, nodeparity.Qwen3)
	text := strings.Join(nodeparity.Texts(b), "\n")
	ids := tk.Encode(text)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for b.Loop() {
		tk.Decode(ids)
	}
}

func BenchmarkLoadQwen3(b *testing.B) {
	path := nodeparity.Qwen3.TokenizerJSON(b)
	for b.Loop() {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}

// The regex path, for comparison with the hand scanner Encode uses.
func BenchmarkPreTokenizeRegexp2(b *testing.B) {
	re, err := compileRegex(qwenPattern)
	if err != nil {
		b.Fatal(err)
	}
	text := strings.Join(nodeparity.Texts(b), "\n")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		re.FindAllStringIndex(text, -1)
	}
}

func BenchmarkPreTokenizeScanner(b *testing.B) {
	text := strings.Join(nodeparity.Texts(b), "\n")
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		scanGPT4(text, 1, func(int, int) {})
	}
}
