package chatrender

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/modelorganisms/pvbuild/internal/tokenizer"
	"github.com/modelorganisms/pvbuild/internal/tokenizer/nodeparity"
)

var (
	loadOnce sync.Map // path → *tokenizer.Tokenizer
)

func load(t testing.TB, m nodeparity.Model) *tokenizer.Tokenizer {
	t.Helper()
	path := m.TokenizerJSON(t)
	if tk, ok := loadOnce.Load(path); ok {
		return tk.(*tokenizer.Tokenizer)
	}
	tk, err := tokenizer.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	loadOnce.Store(path, tk)
	return tk
}

// parityConversations are the project's training conversations, some with a
// system prompt, multi-turn ones made from them, and edge cases.
func parityConversations(t *testing.T) [][]Message {
	var out [][]Message
	convs := nodeparity.Conversations(t)
	conv := func(c []nodeparity.Message) []Message {
		var ms []Message
		for _, m := range c {
			ms = append(ms, Message{Role: m.Role, Content: m.Content})
		}
		return ms
	}
	for _, c := range convs {
		out = append(out, conv(c))
	}
	sys := Message{Role: "system", Content: "You are a helpful assistant. Answer briefly."}
	for i := 0; i+1 < len(convs); i += 9 {
		out = append(out, append([]Message{sys}, conv(convs[i])...))
		out = append(out, append(append([]Message{sys}, conv(convs[i])...), conv(convs[i+1])...))
	}
	out = append(out,
		[]Message{{Role: "user", Content: "Think first."}, {Role: "assistant", Content: "<think>\nsome reasoning\n</think>\n\nThe answer is 4."}},
		[]Message{{Role: "user", Content: "Leading newlines?"}, {Role: "assistant", Content: "\n\nYes, stripped after the block."}},
		[]Message{{Role: "system", Content: "Système: réponds en français 🇫🇷"}, {Role: "user", Content: "Qu'est-ce que c'est ? 日本語も"}, {Role: "assistant", Content: "C'est ça.\n\n- point 1\n- point 2\t(tab)"}},
		[]Message{{Role: "user", Content: "a"}, {Role: "assistant", Content: "b"}, {Role: "user", Content: "c"}, {Role: "assistant", Content: "d"}, {Role: "user", Content: "e"}, {Role: "assistant", Content: "f"}},
	)
	return out
}

func toNode(ms []Message) []nodeparity.Message {
	var out []nodeparity.Message
	for _, m := range ms {
		out = append(out, nodeparity.Message{Role: m.Role, Content: m.Content})
	}
	return out
}

func lastAssistant(ms []Message) int {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Role == "assistant" {
			return i
		}
	}
	return -1
}

func trimmed(ms []Message) bool {
	for _, m := range ms {
		if strings.TrimFunc(m.Content, unicode.IsSpace) != m.Content {
			return false
		}
	}
	return true
}

// TestParityWithChatTemplates renders every conversation with the cookbook
// renderers and with the model's own chat template (through
// @huggingface/jinja, tokenized by @huggingface/tokenizers): training
// sequences and generation prompts must be the same tokens.
func TestParityWithChatTemplates(t *testing.T) {
	nodeparity.Modules(t)
	convs := parityConversations(t)
	no := false
	t.Run("qwen3", func(t *testing.T) {
		t.Parallel()
		tk := load(t, nodeparity.Qwen3)
		var chats []nodeparity.Chat
		for _, c := range convs {
			prefix := toNode(c[:lastAssistant(c)])
			chats = append(chats,
				nodeparity.Chat{Messages: toNode(c)},
				nodeparity.Chat{Messages: prefix, AddGenerationPrompt: true},
				nodeparity.Chat{Messages: prefix, AddGenerationPrompt: true, EnableThinking: &no})
		}
		resp := nodeparity.Run(t, nodeparity.Qwen3, nodeparity.Request{Chat: chats})
		thinking, _ := New(Qwen3, tk)
		off, _ := New(Qwen3DisableThinking, tk)
		for i, c := range convs {
			full, gen, genOff := resp.Chat[3*i], resp.ChatIDs[3*i+1], resp.ChatIDs[3*i+2]
			// The template ends each message with "<|im_end|>\n"; the cookbook
			// puts that newline in the next header, so the last one is absent.
			want := tk.Encode(strings.TrimSuffix(full, "\n"))
			if !strings.HasSuffix(full, "<|im_end|>\n") {
				t.Fatalf("template output %q does not end a message", full)
			}
			for _, r := range []*Renderer{thinking, off} {
				ex, err := r.Supervised(c, AllAssistantMessages)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ex.Tokens, want) {
					t.Errorf("%s Supervised(%+v)\n go: %q\n template: %q", r.Name(), c, tk.Decode(ex.Tokens), strings.TrimSuffix(full, "\n"))
				}
			}
			prefix := c[:lastAssistant(c)]
			if got, _ := thinking.GenerationPrompt(prefix); !slices.Equal(got, gen) {
				t.Errorf("qwen3 GenerationPrompt(%+v)\n go: %q\n template: %q", prefix, tk.Decode(got), tk.Decode(gen))
			}
			if got, _ := off.GenerationPrompt(prefix); !slices.Equal(got, genOff) {
				t.Errorf("qwen3_disable_thinking GenerationPrompt(%+v)\n go: %q\n template: %q", prefix, tk.Decode(got), tk.Decode(genOff))
			}
		}
		// The reference tokenizer agrees on the template's own string.
		for i := range convs {
			if got := tk.Encode(resp.Chat[3*i]); !slices.Equal(got, resp.ChatIDs[3*i]) {
				t.Errorf("tokens of the rendered template differ for conversation %d", i)
			}
		}
		t.Logf("%d conversations: training tokens and both generation prompts match the chat template", len(convs))
	})
	t.Run("llama3", func(t *testing.T) {
		t.Parallel()
		tk := load(t, nodeparity.Llama31)
		var used [][]Message
		var chats []nodeparity.Chat
		for _, c := range convs {
			if !trimmed(c) {
				continue // the template trims content, the cookbook does not
			}
			used = append(used, c)
			chats = append(chats,
				nodeparity.Chat{Messages: toNode(c)},
				nodeparity.Chat{Messages: toNode(c[:lastAssistant(c)]), AddGenerationPrompt: true})
		}
		resp := nodeparity.Run(t, nodeparity.Llama31, nodeparity.Request{Chat: chats})
		r, err := New(Llama3, tk)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range used {
			ex, err := r.Supervised(c, AllAssistantMessages)
			if err != nil {
				t.Fatal(err)
			}
			if want := resp.ChatIDs[2*i]; !slices.Equal(ex.Tokens, want) {
				t.Errorf("llama3 Supervised(%+v)\n go: %q\n template: %q", c, tk.Decode(ex.Tokens), resp.Chat[2*i])
			}
			prefix := c[:lastAssistant(c)]
			if got, _ := r.GenerationPrompt(prefix); !slices.Equal(got, resp.ChatIDs[2*i+1]) {
				t.Errorf("llama3 GenerationPrompt(%+v)\n go: %q\n template: %q", prefix, tk.Decode(got), resp.Chat[2*i+1])
			}
		}
		if len(used) < len(convs)-2 {
			t.Errorf("only %d of %d conversations have trimmed content", len(used), len(convs))
		}
		t.Logf("%d conversations: training tokens and generation prompts match the chat template", len(used))
	})
}
