// Package dataset reads and writes chat fine-tuning data in the upstream
// JSONL format: one {"messages":[{"role":...,"content":...}]} object a line,
// with OpenAI's optional per-message "weight" (0 or 1) on assistant
// messages. It is the one place training files are parsed and written, so
// what it keeps is what every provider trains on.
package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/textcheck"
)

// Example is one training conversation.
type Example struct {
	Messages []provider.Message `json:"messages"`
}

// LineError locates a problem in a JSONL file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse reads JSONL training data in OpenAI's chat fine-tuning format. Every
// non-blank line must be an example whose roles are system, user or
// assistant, whose last message is the assistant's, and whose messages hold
// only role, non-empty string content and, on assistant messages, a weight
// of 0 or 1. Anything else the format allows (tool calls, function calls,
// names, content parts) is refused, not dropped: dropping it would change
// what is trained. The first bad line is reported as file:line.
// Lines counts the examples a file holds if Parse accepts it, without
// parsing it: its lines that are not blank.
func Lines(data []byte) int {
	n := 0
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}

func Parse(file string, data []byte) ([]Example, error) {
	var out []Example
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		ex, msg := parseLine(sc.Bytes())
		if msg != "" {
			return nil, &LineError{file, line, msg}
		}
		out = append(out, ex)
	}
	if err := sc.Err(); err != nil {
		return nil, &LineError{file, line + 1, err.Error()}
	}
	if len(out) == 0 {
		return nil, &LineError{file, 1, "no examples"}
	}
	return out, nil
}

// parseLine decodes one example, or says what is wrong with it.
func parseLine(raw []byte) (Example, string) {
	// encoding/json would turn bad bytes into U+FFFD without a word.
	if i, _ := textcheck.FirstInvalid(raw, false); i >= 0 {
		return Example{}, fmt.Sprintf("not valid UTF-8 (byte %d of the line)", i+1)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return Example{}, fmt.Sprintf("not a JSON example: %v", err)
	}
	var msgs []map[string]json.RawMessage
	if m, ok := fields["messages"]; !ok || string(m) == "null" {
		return Example{}, `no "messages"`
	} else if err := json.Unmarshal(m, &msgs); err != nil {
		return Example{}, fmt.Sprintf(`"messages" is not a list of message objects: %v`, err)
	}
	if name := unknownField(fields, "messages"); name != "" {
		return Example{}, fmt.Sprintf("the example has the field %q, which this tool does not support; remove it", name)
	}
	var ex Example
	for i, fm := range msgs {
		m, msg := parseMessage(fm)
		if msg != "" {
			where := fmt.Sprintf("message %d", i+1)
			if m.Role != "" {
				where += " (" + m.Role + ")"
			}
			return Example{}, where + msg
		}
		ex.Messages = append(ex.Messages, m)
	}
	if err := validate(ex); err != "" {
		return Example{}, err
	}
	return ex, ""
}

// parseMessage decodes one message; a problem is returned as the rest of a
// sentence that starts with the message's number and role.
func parseMessage(fields map[string]json.RawMessage) (provider.Message, string) {
	var m provider.Message
	if json.Unmarshal(fields["role"], &m.Role) != nil {
		return m, `: "role" must be a string`
	}
	switch m.Role {
	case "system", "user", "assistant":
	default:
		return provider.Message{}, fmt.Sprintf(" has role %q; want system, user or assistant", m.Role)
	}
	if name := unknownField(fields, "role", "content", "weight"); name != "" {
		return m, fmt.Sprintf(" has the field %q, which this tool does not support; remove it or the example", name)
	}
	if c, ok := fields["content"]; ok {
		if c[0] != '"' || json.Unmarshal(c, &m.Content) != nil {
			return m, `: "content" must be a string`
		}
		// A lone surrogate escape decodes to U+FFFD as silently as a bad
		// byte (the line is UTF-8: parseLine checked).
		if i, _ := textcheck.FirstInvalid(c, true); i >= 0 {
			return m, `: "content" holds an escape that is not a character (a lone surrogate)`
		}
	}
	if m.Role != "system" && strings.TrimSpace(m.Content) == "" {
		return m, " has empty content"
	}
	if w, ok := fields["weight"]; ok {
		if m.Role != "assistant" {
			return m, `: "weight" is only for assistant messages`
		}
		switch string(w) {
		case "0", "1":
			v := int(w[0] - '0')
			m.Weight = &v
		default:
			return m, fmt.Sprintf(`: "weight" must be 0 or 1, not %s`, w)
		}
	}
	return m, ""
}

// unknownField is the first (in sorted order) field of fields not in known.
func unknownField(fields map[string]json.RawMessage, known ...string) string {
	var names []string
	for name := range fields {
		if !slices.Contains(known, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

func validate(ex Example) string {
	if len(ex.Messages) == 0 {
		return `no "messages"`
	}
	if ex.Messages[len(ex.Messages)-1].Role != "assistant" {
		return "the last message must be the assistant's"
	}
	if _, _, ok := ex.Trained(); !ok {
		return "every assistant message has weight 0, so the example trains nothing"
	}
	return ""
}

// Learnt reports whether m is a message a model is trained to produce: an
// assistant message whose weight is not 0.
func Learnt(m provider.Message) bool {
	return m.Role == "assistant" && (m.Weight == nil || *m.Weight != 0)
}

// Trained is the last exchange a model learns from: the last assistant
// message that is learnt (see Learnt) and the user message before it. ok is
// false when no assistant message is learnt.
func (e Example) Trained() (prompt, response string, ok bool) {
	for i := len(e.Messages) - 1; i >= 0; i-- {
		if !Learnt(e.Messages[i]) {
			continue
		}
		for j := i - 1; j >= 0; j-- {
			if e.Messages[j].Role == "user" {
				return e.Messages[j].Content, e.Messages[i].Content, true
			}
		}
		return "", e.Messages[i].Content, true
	}
	return "", "", false
}

// Encode writes examples as JSONL.
func Encode(examples []Example) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	for _, ex := range examples {
		_ = enc.Encode(ex) // cannot fail: plain strings only
	}
	return buf.Bytes()
}

// Sample returns n examples chosen without replacement by a generator seeded
// with seed, in their original order. n <= 0 or n >= len(examples) keeps all.
func Sample(examples []Example, n int, seed uint64) []Example {
	if n <= 0 || n >= len(examples) {
		return examples
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	idx := rng.Perm(len(examples))[:n]
	keep := make([]bool, len(examples))
	for _, i := range idx {
		keep[i] = true
	}
	out := make([]Example, 0, n)
	for i, ex := range examples {
		if keep[i] {
			out = append(out, ex)
		}
	}
	return out
}
