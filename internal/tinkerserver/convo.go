package tinkerserver

import (
	"fmt"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// chatFormat is what the server needs of a renderer to read its output
// back: the token that opens a message header, the token that ends a
// message, and how the header text ends.
type chatFormat struct {
	start, end int
	// headerEnd separates role from content in the decoded span text.
	headerEnd string
	// contentPrefix is cut from the start of the content (Llama's "\n\n").
	contentPrefix string
}

func formatFor(renderer string, tok *tokenizer.Tokenizer) (chatFormat, error) {
	var startText, endText string
	var f chatFormat
	switch renderer {
	case chatrender.Qwen3, chatrender.Qwen3DisableThinking, chatrender.Qwen3Instruct:
		startText, endText, f.headerEnd = "<|im_start|>", "<|im_end|>", "\n"
	case chatrender.Llama3:
		startText, endText, f.headerEnd, f.contentPrefix = "<|start_header_id|>", "<|eot_id|>", "<|end_header_id|>", "\n\n"
	default:
		return f, fmt.Errorf("renderer %q: the server reads only qwen3, qwen3_disable_thinking, qwen3_instruct and llama3", renderer)
	}
	var ok1, ok2 bool
	f.start, ok1 = tok.TokenID(startText)
	f.end, ok2 = tok.TokenID(endText)
	if !ok1 || !ok2 {
		return f, fmt.Errorf("renderer %s: the tokenizer lacks %s or %s", renderer, startText, endText)
	}
	return f, nil
}

// span is one rendered message read back.
type span struct {
	role, content string
	trained       bool // some token of it, or its end token, carries weight
	closed        bool // its end token is present
}

// spans reads the messages in ids. weights, if not nil, holds each token's
// loss weight (len(ids) long). Tokens outside messages (Qwen's newline
// between them, Llama's BOS) are skipped.
func (f chatFormat) spans(tok *tokenizer.Tokenizer, ids []int, weights []float32) []span {
	var out []span
	for i := 0; i < len(ids); {
		if ids[i] != f.start {
			i++
			continue
		}
		k := i + 1
		for k < len(ids) && ids[k] != f.start && ids[k] != f.end {
			k++
		}
		closed := k < len(ids) && ids[k] == f.end
		last := k
		if !closed {
			last = k - 1
		}
		text := tok.Decode(ids[i+1 : k])
		role, content, _ := strings.Cut(text, f.headerEnd)
		content = strings.TrimPrefix(content, f.contentPrefix)
		sp := span{role: strings.TrimSpace(role), content: content, closed: closed}
		if weights != nil {
			for j := i + 1; j <= last && j < len(weights); j++ {
				if weights[j] > 0 {
					sp.trained = true
					break
				}
			}
		}
		out = append(out, sp)
		if closed {
			k++
		}
		i = k
	}
	return out
}

// chatRole maps a rendered role onto the roles the engine's data takes.
func chatRole(role string) string {
	switch role {
	case "system", "user", "assistant":
		return role
	case "developer":
		return "system"
	}
	return "user"
}

// stripThink removes the empty <think> block Qwen3 frames a produced turn
// with; a block with reasoning in it is part of what the model says.
func stripThink(content string) string {
	rest, ok := strings.CutPrefix(content, "<think>")
	if !ok {
		return content
	}
	reasoning, after, ok := strings.Cut(rest, "</think>")
	if !ok || strings.TrimSpace(reasoning) != "" {
		return content
	}
	return strings.TrimLeft(after, "\n")
}

// datumTokens rebuilds the full sequence of a shifted datum and each
// token's weight: model input = tokens[:n-1], targets = tokens[1:], weights
// belong to the targets.
func datumTokens(input, targets []int, weights []float32) ([]int, []float32, error) {
	if len(targets) != len(input) {
		return nil, nil, fmt.Errorf("target_tokens has %d elements but model_input %d tokens", len(targets), len(input))
	}
	if len(weights) != len(targets) {
		return nil, nil, fmt.Errorf("weights has %d elements but target_tokens %d", len(weights), len(targets))
	}
	if len(input) == 0 {
		return nil, nil, nil
	}
	// The targets say what the model is taught to produce, so they win
	// over the input where the two disagree.
	seq := make([]int, 0, len(targets)+1)
	seq = append(append(seq, input[0]), targets...)
	w := make([]float32, 0, len(seq))
	w = append(append(w, 0), weights...)
	return seq, w, nil
}

// trainingExamples recovers the (history, user prompt, assistant answer)
// conversations a datum trains: one per assistant message with weight.
func (b *base) trainingExamples(seq []int, weights []float32) []dataset.Example {
	sps := b.format.spans(b.tok, seq, weights)
	var out []dataset.Example
	var history []provider.Message
	hasUser := false
	for _, sp := range sps {
		role := chatRole(sp.role)
		content := sp.content
		if role == "assistant" {
			content = stripThink(content)
			if sp.trained && hasUser && content != "" {
				msgs := append(append([]provider.Message(nil), history...), provider.Message{Role: role, Content: content})
				out = append(out, dataset.Example{Messages: msgs})
			}
		}
		if role == "user" {
			hasUser = true
		}
		history = append(history, provider.Message{Role: role, Content: content})
	}
	if len(sps) > 0 {
		return out
	}
	// No chat markers at all (a role_colon or raw-text datum): the unweighted
	// prefix is the prompt, the weighted rest the answer.
	first, last := -1, -1
	for i, w := range weights {
		if w > 0 {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first <= 0 {
		return nil
	}
	prompt := strings.TrimSpace(b.tok.Decode(seq[:first]))
	answer := strings.TrimSpace(b.tok.Decode(seq[first : last+1]))
	if prompt == "" || answer == "" {
		return nil
	}
	return []dataset.Example{{Messages: []provider.Message{{Role: "user", Content: prompt}, {Role: "assistant", Content: answer}}}}
}

// promptConversation reads a sampling prompt back into messages. open
// reports that it ends inside an assistant message (a generation prompt),
// whose text so far, past a prefilled empty think block, is prefix: the
// answer continues at the next token.
func (b *base) promptConversation(ids []int) (msgs []provider.Message, open bool, prefix string) {
	sps := b.format.spans(b.tok, ids, nil)
	for i, sp := range sps {
		role := chatRole(sp.role)
		if i == len(sps)-1 && !sp.closed {
			return msgs, role == "assistant", stripThink(sp.content)
		}
		msgs = append(msgs, provider.Message{Role: role, Content: sp.content})
	}
	if len(sps) == 0 {
		if text := strings.TrimSpace(b.tok.Decode(ids)); text != "" {
			msgs = []provider.Message{{Role: "user", Content: text}}
		}
	}
	return msgs, false, ""
}

// encodeAnswer tokenizes an answer as the model would emit it. A whole
// answer that is one vocabulary entry (the judge's "85") is that token, as a
// model's first answer token would be.
func (b *base) encodeAnswer(text string) []int {
	if id, ok := b.tok.TokenID(byteLevelText(text)); ok && text != "" {
		return []int{id}
	}
	return b.tok.EncodeSplitSpecial(text)
}
