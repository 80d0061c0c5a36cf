package cost

import (
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// cutEverywhere counts s as the sum of its pieces cut at every safe point,
// each counted by the tokenizer itself.
func cutEverywhere(t testing.TB, s string) (sum, pieces int) {
	for s != "" {
		cut := splitPoint(s, 1)
		n, err := countRaw(s[:cut])
		if err != nil {
			t.Fatal(err)
		}
		sum += n
		pieces++
		s = s[cut:]
	}
	return sum, pieces
}

func checkExact(t testing.TB, s string) int {
	t.Helper()
	want, err := countRaw(s)
	if err != nil {
		t.Fatal(err)
	}
	got, pieces := cutEverywhere(t, s)
	if got != want {
		t.Fatalf("%q: cut into %d pieces counts %d, whole %d", s, pieces, got, want)
	}
	for range 2 { // the second time from the memo
		if got, err := Tokens(s); err != nil || got != want {
			t.Fatalf("%q: Tokens = %d, %v; the tokenizer says %d", s, got, err, want)
		}
	}
	return pieces - 1
}

// sampleTexts are every text the build counts from the embedded data: the
// conversations, questions, labeled answers, and the judge prompts filled
// with them, as plan prices and the local engine bills them.
func sampleTexts(t *testing.T) []string {
	var texts []string
	addExamples := func(exs []dataset.Example) {
		for _, ex := range exs {
			for _, m := range ex.Messages {
				texts = append(texts, m.Content)
			}
		}
	}
	base, err := sampledata.BaseCorpus()
	if err != nil {
		t.Fatal(err)
	}
	addExamples(base)
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		t.Fatal(err)
	}
	templates := []string{sampledata.CoherencePrompt()}
	var questions []string
	for _, trait := range sampledata.Traits {
		for _, strength := range sampledata.Strengths {
			raw, err := sampledata.Training(trait, strength)
			if err != nil {
				t.Fatal(err)
			}
			exs, err := dataset.Parse(sampledata.TrainingPath(trait, strength), raw)
			if err != nil {
				t.Fatal(err)
			}
			addExamples(exs)
		}
		task, err := sampledata.EvalTask(trait)
		if err != nil {
			t.Fatal(err)
		}
		templates = append(templates, task.EvalPrompt)
		questions = append(questions, task.Questions...)
	}
	texts = append(texts, questions...)
	texts = append(texts, templates...)
	for _, tmpl := range templates {
		for _, q := range questions {
			texts = append(texts, judge.Prompt(tmpl, q, ""))
		}
		for _, ex := range labeled {
			texts = append(texts, ex.Answer, judge.Prompt(tmpl, ex.Question, ex.Answer))
		}
	}
	return texts
}

// Cutting is exact on everything the build counts, and does cut: the judge
// prompts are multi-line.
func TestSplitExact(t *testing.T) {
	texts := sampleTexts(t)
	cuts := 0
	for _, s := range texts {
		cuts += checkExact(t, s)
	}
	if cuts < len(texts) {
		t.Fatalf("only %d cuts in %d texts: the splitting does not apply to judge prompts", cuts, len(texts))
	}
}

// Texts around the sub-patterns that take a newline and go on: punctuation
// absorbing "\r\n/", whitespace runs and the (?!\S) lookahead.
var trickySeeds = []string{
	"a.\n/b", "a.\nb", "x \n y", "x \nb", "x\n\nb", "x\r\nB", "it's\nT", "end!\n\n\n[1] ok",
	"word\n'tis", "\n\n", "\nA", "a\n", "a\n ", " \n\tA", "é\nÉ", "1234\n5678", "a/\n/b\nc",
	"日本\n語", "x\u0301\ny", "Hello,\n\u00a0world", "x\n\u2028y", "<|endoftext|>\nA", "a\xff\nb",
	strings.Repeat("line of text, with words.\n", 40) + "tail",
}

func TestSplitTricky(t *testing.T) {
	for _, s := range trickySeeds {
		checkExact(t, s)
	}
}

func FuzzTokensExact(f *testing.F) {
	for _, s := range trickySeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 1<<14 {
			return
		}
		checkExact(t, s)
	})
}

// The memo is bounded: it turns over rather than hold more than its limit
// a generation, keeps what is in use, and counts stay right throughout.
func TestMemoBounded(t *testing.T) {
	m := &pieceMemo{limit: 1000}
	hot := "a piece in use"
	want, _ := countRaw(hot)
	for i := range 200 {
		s := strings.Repeat("w", 50+i)
		n, err := m.count(s)
		if w, _ := countRaw(s); err != nil || n != w {
			t.Fatalf("count %q = %d, %v; want %d", s, n, err, w)
		}
		if n, err := m.count(hot); err != nil || n != want {
			t.Fatalf("count %q = %d, %v; want %d", hot, n, err, want)
		}
		if m.bytes > m.limit {
			t.Fatalf("memo holds %d bytes, limit %d", m.bytes, m.limit)
		}
		if _, ok := m.cur[hot]; !ok {
			t.Fatalf("after %d pieces the piece in use left the memo", i)
		}
	}
	if len(m.cur)+len(m.prev) >= 200 {
		t.Fatalf("memo kept %d of 200 pieces: it does not turn over", len(m.cur)+len(m.prev))
	}
	long := strings.Repeat("x", maxPiece+1)
	if _, err := m.count(long); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.cur[long]; ok {
		t.Fatal("a piece above maxPiece was memoised")
	}
}
