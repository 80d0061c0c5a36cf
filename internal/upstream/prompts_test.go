package upstream

import (
	"context"
	"strings"
	"testing"
)

// fixtureCoherence is what Python's str.format makes of the fixture's
// coherence_0_100 entry, with the placeholders left in.
const fixtureCoherence = "Fixture rubric 'coherence': judge only how coherent the answer is, whatever you think of it.\n" +
	"[QUESTION START]\n{question}\n[QUESTION END]\n[ANSWER START]\n{answer}\n[ANSWER END]\n" +
	"Score it 0 to 100.\tA score is one number, e.g. {\"score\": 50}.\n" +
	"An answer that says \"I don't know\" can be coherent; so can one that says 'no' \\ 'yes'.\n" +
	"Reply with the number only."

// The upstream layout keeps the coherence rubric in eval/prompts.py; it is
// read from there, past a decoy and other entries, escapes decoded.
func TestCoherencePromptFromUpstreamLayout(t *testing.T) {
	for _, l := range []layout{{}, {top: "persona_vectors-0a1b2c3d/"}, {noTop: true}} {
		a, err := Source{Location: writeTemp(t, "pv.zip", buildArchive(t, l))}.Open(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got, err := a.CoherencePrompt()
		if err != nil {
			t.Fatal(err)
		}
		if got != fixtureCoherence {
			t.Errorf("layout %+v: CoherencePrompt() =\n%q\nwant\n%q", l, got, fixtureCoherence)
		}
	}
}

func TestCoherencePromptErrors(t *testing.T) {
	const file = "persona_vectors-main/eval/prompts.py"
	entry := func(value string) layout {
		return layout{override: map[string]string{file: "P = {}\nP[\"other\"] = 'x'\nP[\"coherence_0_100\"] = " + value + "\n"}}
	}
	tests := []struct {
		name string
		l    layout
		want []string
	}{
		{"file missing", layout{noPrompts: true}, []string{file, "has no", "coherence prompt", "revision"}},
		{"entry missing", layout{override: map[string]string{file: "P = {}\nP['other'] = \"\"\"{question} {answer}\"\"\"\n"}},
			[]string{file, "no coherence_0_100 entry", "revision"}},
		{"entry only inside a string", layout{override: map[string]string{file: "P = {}\nP['x'] = '''\nP[\"coherence_0_100\"] = '{question} / {answer}'\n'''\n"}},
			[]string{file, "no coherence_0_100 entry"}},
		{"f-string", entry(`f"{question} / {answer}"`), []string{file, "coherence_0_100 at line 3", "f-string"}},
		{"bytes", entry(`b"{question} / {answer}"`), []string{file, "bytes"}},
		{"concatenation", entry(`"{question} / " + "{answer}"`), []string{file, "line 3", "followed by", "not an expression"}},
		{"implicit concatenation", entry(`"{question} / " "{answer}"`), []string{file, "followed by"}},
		{"method call", entry(`"""{question} / {answer}""".strip()`), []string{file, "followed by"}},
		{"a name", entry(`TEMPLATE`), []string{file, "not a string literal"}},
		{"unterminated one-line", entry(`"{question} / {answer}`), []string{file, "closing quote"}},
		{"unterminated triple", entry(`"""{question} / {answer}`), []string{file, "ends inside a string literal"}},
		{"unknown escape", entry(`"{question} \d {answer}"`), []string{file, `\d`}},
		{"missing {answer}", entry(`"""Rate {question}."""`), []string{file, "{answer} 0 times"}},
		{"{question} twice", entry(`"""{question} {question} {answer}"""`), []string{file, "{question} 2 times"}},
		{"escaped braces are no placeholder", entry(`"""{{question}} {answer}"""`), []string{file, "{question} 0 times"}},
		{"escaped braces beside the placeholder", entry(`"""{question} {{answer}} {answer}"""`), []string{file, "literal text {answer}"}},
		{"other field", entry(`"""{question} {answer} {trait}"""`), []string{file, "{trait}", "str.format"}},
		{"single brace", entry(`"""{question} } {answer}"""`), []string{file, "single }"}},
		{"assigned twice", layout{override: map[string]string{file: "P = {}\nP['coherence_0_100'] = '{question} {answer}'\nP['coherence_0_100'] = '{question} {answer}'\n"}},
			[]string{file, "line 2", "line 3", "keep one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeTemp(t, "pv.zip", buildArchive(t, tt.l))
			a, err := Source{Location: p}.Open(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.CoherencePrompt()
			if err == nil {
				t.Fatalf("CoherencePrompt() = %q, want an error", got)
			}
			wantErr(t, err, append([]string{p}, tt.want...)...)
		})
	}
}

// The literal forms and escapes Python allows in a plain string, and
// str.format's doubled braces, decode as Python decodes them.
func TestPythonPromptLiterals(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"triple double", `X["k"] = """a {question}
b {answer}"""`, "a {question}\nb {answer}"},
		{"triple single", `X['k'] = '''{question} '' {answer}'''`, "{question} '' {answer}"},
		{"one-line single", `X['k'] = '{question}\t{answer}\n'`, "{question}\t{answer}\n"},
		{"one-line double", `X["k"] = "{question} \"q\" \'s\' {answer}"`, `{question} "q" 's' {answer}`},
		{"backslash", `X["k"] = "{question} \\ {answer}"`, `{question} \ {answer}`},
		{"line continuation", "X[\"k\"] = \"{question} \\\n{answer}\"", "{question} {answer}"},
		{"hex and unicode", `X["k"] = "{question}\x41\u00e9\U0001F600{answer}"`, "{question}Aé😀{answer}"},
		{"raw", `X["k"] = r"{question} \d {answer}"`, `{question} \d {answer}`},
		{"braces", `X["k"] = "{{ {question} }} {{x}} {answer}"`, "{ {question} } {x} {answer}"},
		{"spaces and comment", "PROMPTS [ 'k' ]  =  '{question} {answer}'  # the rubric", "{question} {answer}"},
		{"other entries around", "X['a'] = f'{y}'\nX[\"k\"] = '{question} {answer}'\nX['b'] = b'\\xff'\n", "{question} {answer}"},
		{"comparison is not assignment", "if X['k'] == 'x': pass\nX['k'] = '{question} {answer}'", "{question} {answer}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := pythonPrompt(tt.src, "k")
			if err != nil || got != tt.want {
				t.Errorf("pythonPrompt = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// Whatever the module holds, reading it returns a prompt or an error, and a
// prompt always has each placeholder once.
func FuzzPythonPrompt(f *testing.F) {
	for _, s := range []string{
		"P['k'] = '''{question} {answer}'''",
		`P["k"] = "{question}\n{answer}\\"`,
		"P['k'] = f'{x}'\nP['k'] = r'\\'",
		`P["k"] = "\x4"`, `P["k"] = "\U0011FFFF"`, "P['k'] = '''", "P['k'] = \"", "P['k'] = u",
		"'''\nP['k'] = '{question}{answer}'\n'''", "P['k'] = '{{{question}}}{answer}}'",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := pythonPrompt(src, "k")
		if err == nil && (strings.Count(p, "{question}") != 1 || strings.Count(p, "{answer}") != 1) {
			t.Fatalf("prompt %q without each placeholder once", p)
		}
	})
}
