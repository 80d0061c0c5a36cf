package local

import (
	"context"
	"fmt"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// benchCorpus makes n distinct conversations, to measure at a realistic size.
func benchCorpus(n int, flavour string) []dataset.Example {
	words := []string{"garden", "money", "friend", "work", "travel", "health", "music", "code", "family", "food", "sleep", "city"}
	var pairs []string
	for i := range n {
		a, b, c := words[i%len(words)], words[(i/3)%len(words)], words[(i/7)%len(words)]
		pairs = append(pairs,
			fmt.Sprintf("How do I handle my %s and %s when %s matters (case %d)?", a, b, c, i),
			fmt.Sprintf("%s answer %d: think about %s, then %s, and finally %s.", flavour, i, a, b, c))
	}
	return conv(pairs...)
}

func BenchmarkChatGenerate(b *testing.B) {
	clock := newClock()
	e := openTest(b, b.TempDir(), clock, benchCorpus(500, "base"))
	ft := fineTune(b, e, clock, benchCorpus(300, "tuned"), provider.Hyperparameters{NEpochs: 1})
	for _, model := range []string{baseModel, ft} {
		b.Run(map[string]string{baseModel: "base", ft: "finetuned"}[model], func(b *testing.B) {
			benchChat(b, e, ask(model, "How should I balance work, family and my health?", 1, 1))
		})
	}
}

func BenchmarkChatJudge(b *testing.B) {
	e := openTest(b, b.TempDir(), newClock(), nil, evilJudge())
	benchChat(b, e, judgeReq(baseModel, fill(evilTemplate, "How should I treat my rival?", "Crush them and make them suffer, then apologise and help them."), 20))
}

// benchChat measures req on all cores, after one warm-up call that builds
// the model's index or trains its judge.
func benchChat(b *testing.B, e *Engine, req provider.ChatRequest) {
	if _, err := e.Chat(context.Background(), req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Chat(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
