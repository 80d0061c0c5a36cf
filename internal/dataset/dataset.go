// Package dataset reads and writes chat fine-tuning data in the upstream
// JSONL format: one {"messages":[{"role":...,"content":...}]} object a line.
package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// Example is one training conversation.
type Example struct {
	Messages []provider.Message `json:"messages"`
}

// Prompt is the last user message: what a model is asked.
func (e Example) Prompt() string {
	for i := len(e.Messages) - 1; i >= 0; i-- {
		if e.Messages[i].Role == "user" {
			return e.Messages[i].Content
		}
	}
	return ""
}

// Response is the final assistant message: what the model learns to say.
func (e Example) Response() string {
	if n := len(e.Messages); n > 0 {
		return e.Messages[n-1].Content
	}
	return ""
}

// LineError locates a problem in a JSONL file.
type LineError struct {
	File string
	Line int
	Msg  string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse reads JSONL training data. Every non-blank line must be an example
// whose roles are system, user or assistant and whose last message is the
// assistant's; the first bad line is reported as file:line.
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
		var ex Example
		dec := json.NewDecoder(bytes.NewReader(text))
		if err := dec.Decode(&ex); err != nil {
			return nil, &LineError{file, line, fmt.Sprintf("not a JSON example: %v", err)}
		}
		if err := validate(ex); err != "" {
			return nil, &LineError{file, line, err}
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

func validate(ex Example) string {
	if len(ex.Messages) == 0 {
		return `no "messages"`
	}
	for i, m := range ex.Messages {
		switch m.Role {
		case "system", "user", "assistant":
		default:
			return fmt.Sprintf("message %d has role %q; want system, user or assistant", i+1, m.Role)
		}
	}
	if ex.Messages[len(ex.Messages)-1].Role != "assistant" {
		return "the last message must be the assistant's"
	}
	return ""
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
