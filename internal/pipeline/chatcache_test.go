package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// A reopened cache answers every request it kept, from the line its key
// names, and nothing it did not: a torn line, or a line whose key was
// edited, is asked again.
func TestChatCacheReopened(t *testing.T) {
	dir := t.TempDir()
	c, err := openChatCache(dir, "openai https://example.test/v1")
	if err != nil {
		t.Fatal(err)
	}
	req := func(q string) provider.ChatRequest {
		return provider.ChatRequest{Model: "m", Messages: []provider.Message{{Role: "user", Content: q}}, N: 1}
	}
	resp := func(a string) provider.ChatResponse {
		return provider.ChatResponse{Model: "m", Choices: []provider.Choice{{Content: a, TopLogprobs: []provider.TokenLogprob{{Token: "7", Logprob: -0.5}}}}}
	}
	for _, q := range []string{"one", "two", "three"} {
		if err := c.put(req(q), resp("answer to "+q)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.put(req("two"), resp("a newer answer to two")); err != nil {
		t.Fatal(err)
	}
	c.close()
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	b, _ := os.ReadFile(files[0])
	// A crash tore the last line, and someone edited the key of the first.
	b = append(b, `{"key":"`+c.key(req("four"))+`","response":{"model":"m","cho`...)
	b[len(`{"key":"`)+3] ^= 1
	if err := os.WriteFile(files[0], b, 0o644); err != nil {
		t.Fatal(err)
	}

	r, err := openChatCache(dir, "openai https://example.test/v1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	for q, want := range map[string]string{"two": "a newer answer to two", "three": "answer to three"} {
		got, ok := r.get(req(q))
		if !ok || len(got.Choices) != 1 || got.Choices[0].Content != want || got.Choices[0].TopLogprobs[0].Logprob != -0.5 {
			t.Errorf("%s: got %+v, %v; want %q", q, got, ok, want)
		}
	}
	for _, q := range []string{"one", "four", "five"} {
		if got, ok := r.get(req(q)); ok {
			t.Errorf("%s: answered %+v from a line that does not hold it", q, got)
		}
	}
}
