package dataset

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// OpenAI's fine-tuning format lets an assistant message carry "weight": 0
// (do not learn it) or 1. Dropping the field trains on what the file said
// not to; it must reach the provider in the file uploaded.
func TestAbuseWeightIsKeptThroughEncode(t *testing.T) {
	line := `{"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"draft","weight":0},{"role":"user","content":"q2"},{"role":"assistant","content":"final","weight":1}]}`
	exs, err := Parse("train.jsonl", []byte(line+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	m := exs[0].Messages
	if m[1].Weight == nil || *m[1].Weight != 0 || m[3].Weight == nil || *m[3].Weight != 1 || m[0].Weight != nil {
		t.Fatalf("weights not kept: %+v", m)
	}
	out := Encode(exs)
	if !bytes.Contains(out, []byte(`"content":"draft","weight":0}`)) || !bytes.Contains(out, []byte(`"content":"final","weight":1}`)) || bytes.Count(out, []byte("weight")) != 2 {
		t.Fatalf("encoded file lost or invented weights:\n%s", out)
	}
	if p, r, ok := exs[0].Trained(); !ok || p != "q2" || r != "final" {
		t.Fatalf("Trained() = %q, %q, %v", p, r, ok)
	}
	// The last assistant message not learnt: the learnt one is the draft's turn.
	exs, err = Parse("t", []byte(`{"messages":[{"role":"user","content":"q1"},{"role":"assistant","content":"kept"},{"role":"user","content":"q2"},{"role":"assistant","content":"skipped","weight":0}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if p, r, ok := exs[0].Trained(); !ok || p != "q1" || r != "kept" {
		t.Fatalf("Trained() = %q, %q, %v; want q1, kept", p, r, ok)
	}
}

// What the format holds but no provider here honours, or what is simply
// wrong, is refused at its line, naming the message and the field, rather
// than dropped or repaired.
func TestAbuseTrainingFileRefusals(t *testing.T) {
	const u = `{"role":"user","content":"q"}`
	ex := func(msgs ...string) string { return `{"messages":[` + strings.Join(msgs, ",") + `]}` }
	good := ex(u, `{"role":"assistant","content":"a"}`)
	for _, tt := range []struct{ name, line, want string }{
		{"tool_calls", ex(u, `{"role":"assistant","content":"a","tool_calls":[{"id":"x"}]}`), `message 2 (assistant) has the field "tool_calls", which this tool does not support`},
		{"function_call", ex(u, `{"role":"assistant","content":"a","function_call":{"name":"f"}}`), `message 2 (assistant) has the field "function_call"`},
		{"name", ex(`{"role":"user","content":"q","name":"bob"}`, `{"role":"assistant","content":"a"}`), `message 1 (user) has the field "name"`},
		{"top-level tools", `{"tools":[],"messages":[` + u + `,{"role":"assistant","content":"a"}]}`, `the example has the field "tools"`},
		{"weight 0.5", ex(u, `{"role":"assistant","content":"a","weight":0.5}`), `message 2 (assistant): "weight" must be 0 or 1, not 0.5`},
		{"weight string", ex(u, `{"role":"assistant","content":"a","weight":"0"}`), `message 2 (assistant): "weight" must be 0 or 1, not "0"`},
		{"weight on user", ex(`{"role":"user","content":"q","weight":0}`, `{"role":"assistant","content":"a"}`), `message 1 (user): "weight" is only for assistant messages`},
		{"nothing trained", ex(u, `{"role":"assistant","content":"a","weight":0}`), `every assistant message has weight 0, so the example trains nothing`},
		{"content parts", ex(u, `{"role":"assistant","content":[{"type":"text","text":"a"}]}`), `message 2 (assistant): "content" must be a string`},
		{"content null", ex(u, `{"role":"assistant","content":null}`), `message 2 (assistant): "content" must be a string`},
		{"empty user", ex(`{"role":"user","content":"  "}`, `{"role":"assistant","content":"a"}`), `message 1 (user) has empty content`},
		{"empty assistant", ex(u, `{"role":"assistant","content":""}`), `message 2 (assistant) has empty content`},
		{"missing content", ex(u, `{"role":"assistant"}`), `message 2 (assistant) has empty content`},
		{"invalid UTF-8", ex(u, "{\"role\":\"assistant\",\"content\":\"caf\xe9\"}"), `not valid UTF-8 (byte 78 of the line)`},
		{"lone surrogate", ex(u, `{"role":"assistant","content":"x\ud800y"}`), `message 2 (assistant): "content" holds an escape that is not a character`},
		{"lone surrogate after a real U+FFFD", ex(u, `{"role":"assistant","content":"\ufffd \udc00"}`), `message 2 (assistant): "content" holds an escape that is not a character`},
		{"lone surrogate in a user message", ex(`{"role":"user","content":"\ud83d and \uFFFD"}`, `{"role":"assistant","content":"a"}`), `message 1 (user): "content" holds an escape that is not a character`},
	} {
		_, err := Parse("train.jsonl", []byte(good+"\n"+tt.line+"\n"))
		var le *LineError
		if !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), "train.jsonl:2: "+tt.want) {
			t.Errorf("%s: got %v, want train.jsonl:2: %s", tt.name, err, tt.want)
		}
	}
	// A real U+FFFD, written or escaped, is text like any other.
	for _, s := range []string{"\uFFFD", `\ufffd`, `\ud83d\ude00`, `\\ud800`} {
		if _, err := Parse("t", []byte(ex(u, `{"role":"assistant","content":"`+s+`"}`))); err != nil {
			t.Errorf("%q refused: %v", s, err)
		}
	}
}
