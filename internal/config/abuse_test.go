package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

const oneModel = "model \"a\" {\n  dataset = \"evil/mild\"\n  suffix = \"a\"\n}\n"

// traitWith is an experiment whose trait "t" names its questions with attr.
func traitWith(attr string) string {
	return "trait \"t\" {\n  description = \"d\"\n  " + attr + "\n}\n" + minimal + oneModel
}

// A file of nested brackets used to end the process with a Go stack
// overflow inside HCL's recursive parser; it must be a located error.
func TestAbuseDeeplyNestedExperiment(t *testing.T) {
	for name, src := range map[string]string{
		"parens":    "x = " + strings.Repeat("(", 200<<10),
		"brackets":  "x = " + strings.Repeat("[", 200<<10),
		"braces":    strings.Repeat("a {\n", 200),
		"templates": "x = \"" + strings.Repeat("${\"", 200),
	} {
		_, err := Parse("deep.hcl", []byte(src), opts(nil))
		if err == nil || !IsConfigError(err) || !strings.Contains(err.Error(), "deep.hcl:") || !strings.Contains(err.Error(), "nested more than 128") {
			t.Errorf("%s: got %v, want a located nesting error", name, err)
		}
	}
	// The position is the first bracket past the limit.
	_, err := Parse("deep.hcl", []byte("x = "+strings.Repeat("(", 200)), opts(nil))
	if err == nil || !strings.Contains(err.Error(), "deep.hcl:1:133:") {
		t.Errorf("got %v, want deep.hcl:1:133", err)
	}
	// 128 levels are fine (the limit is generous, not a syntax change).
	ok := "x = " + strings.Repeat("(", 128) + "1" + strings.Repeat(")", 128) + "\n"
	if _, err := Parse("ok.hcl", []byte(ok+minimal+oneModel), opts(nil)); err != nil && strings.Contains(err.Error(), "nested") {
		t.Errorf("128 levels refused: %v", err)
	}
}

func TestAbuseOversizedOrSpecialExperimentFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.hcl")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxExperimentBytes)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(big, opts(nil)); err == nil || !strings.Contains(err.Error(), "big.hcl") || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized experiment: got %v", err)
	}
	if _, err := Load("/dev/zero", opts(nil)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("/dev/zero: got %v", err)
	}
}

func TestAbuseQuestionsFilePaths(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "exp")
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	os.WriteFile(filepath.Join(root, "secret.txt"), []byte("the secret\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "data", "qs.txt"), []byte("Q1?\nQ2?\n"), 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	hcl := filepath.Join(dir, "x.hcl")
	for _, tt := range []struct{ attr, want string }{
		// Escapes the experiment's folder: refused, not read and sent out.
		{`questions_file = "../secret.txt"`, `x.hcl:3:20: Unusable questions_file: "../secret.txt" leaves the experiment's folder`},
		{`questions_file = "data/../../../../../../etc/passwd"`, `x.hcl:3:20: Unusable questions_file`},
		{`questions_file = "/dev/zero"`, `x.hcl:3:20: Unusable questions_file: /dev/zero is not a regular file`},
		{`questions_file = "fifo"`, `is not a regular file`},
		{`questions_file = "data"`, `is not a regular file`},
	} {
		_, err := Parse(hcl, []byte(traitWith(tt.attr)), opts(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.attr, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "the secret") {
			t.Errorf("%s: the file's contents reached the error", tt.attr)
		}
	}
	// An absolute path is used as written, not joined to the folder.
	abs := filepath.Join(dir, "data", "qs.txt")
	exp, err := Parse(filepath.Join(root, "elsewhere", "x.hcl"), []byte(traitWith(`questions_file = "`+abs+`"`)), opts(nil))
	if err != nil || len(exp.Traits["t"].Questions) != 2 {
		t.Fatalf("absolute questions_file: %v", err)
	}
	// A relative one resolves from the experiment file's folder, wherever the process runs.
	exp, err = Parse(hcl, []byte(traitWith(`questions_file = "data/qs.txt"`)), opts(nil))
	if err != nil || len(exp.Traits["t"].Questions) != 2 {
		t.Fatalf("relative questions_file: %v", err)
	}
}

func TestAbuseQuestionsFileContent(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) { os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644) }
	write("utf8.txt", "fine?\nbad \xff here?\n")
	write("empty.json", `["fine?",
  "  "]`)
	write("badjson.json", "[\"ok?\", \"bad \xfe\"]")
	write("surrogate.json", "[\"ok?\",\n  \"\uFFFD is fine, \\ud800 is not\"]")
	write("pair.json", `["\ud83d\ude00?"]`)
	write("fffd.json", `["\ufffd?"]`)
	write("backslash.txt", `what is \ud800?`+"\n")
	big, _ := os.Create(filepath.Join(dir, "big.txt"))
	big.Truncate(MaxInputBytes + 1)
	big.Close()
	for _, tt := range []struct{ file, want string }{
		{"utf8.txt", "utf8.txt:2: not valid UTF-8"},
		{"empty.json", "empty.json:2: question 2 is empty"},
		{"badjson.json", "badjson.json:1: not valid UTF-8"},
		{"surrogate.json", "surrogate.json:2: question 2 holds an escape that is not a character (a lone surrogate)"},
		{"big.txt", "larger than the 64 MiB limit"},
	} {
		_, err := Parse(filepath.Join(dir, "x.hcl"), []byte(traitWith(`questions_file = "`+tt.file+`"`)), opts(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "x.hcl:3:20") {
			t.Errorf("%s: got %v, want %q at x.hcl:3:20", tt.file, err, tt.want)
		}
	}
	// A surrogate pair is a character; in plain text a backslash is one too.
	for file, want := range map[string]string{"pair.json": "\U0001F600?", "fffd.json": "\uFFFD?", "backslash.txt": `what is \ud800?`} {
		exp, err := Parse(filepath.Join(dir, "x.hcl"), []byte(traitWith(`questions_file = "`+file+`"`)), opts(nil))
		if err != nil || len(exp.Traits["t"].Questions) != 1 || exp.Traits["t"].Questions[0] != want {
			t.Errorf("%s: %v, want the question %q", file, err, want)
		}
	}
}

func TestAbuseArchivePath(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "exp")
	os.MkdirAll(dir, 0o755)
	ds := func(archive string) string {
		return "training {\n  dataset {\n    source = \"upstream\"\n    archive = \"" + archive + "\"\n  }\n}\n" + minimal + oneModel
	}
	for _, tt := range []struct{ archive, want string }{
		{"../../x.zip", `x.hcl:4:15: Unusable archive: "../../x.zip" leaves the experiment's folder`},
		{"/dev/zero", `x.hcl:4:15: Unusable archive: /dev/zero is not a regular file`},
	} {
		_, err := Parse(filepath.Join(dir, "x.hcl"), []byte(ds(tt.archive)), opts(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.archive, err, tt.want)
		}
	}
	if _, err := Parse(filepath.Join(dir, "x.hcl"), []byte(ds("missing.zip")), opts(nil)); err == nil || !strings.Contains(err.Error(), "x.hcl:4:15: Unusable archive: "+filepath.Join(dir, "missing.zip")+" does not exist") {
		t.Errorf("missing archive: got %v", err)
	}
	os.WriteFile(filepath.Join(dir, "pv.zip"), nil, 0o644)
	exp, err := Parse(filepath.Join(dir, "x.hcl"), []byte(ds("pv.zip")), opts(nil))
	if err != nil || exp.Training.Dataset.Archive != filepath.Join(dir, "pv.zip") {
		t.Fatalf("relative archive: %v", err)
	}
	exp, err = Parse(filepath.Join(dir, "x.hcl"), []byte(ds("https://example.com/a.zip?x=1")), opts(nil))
	if err != nil || exp.Training.Dataset.Archive != "https://example.com/a.zip?x=1" {
		t.Fatalf("URL archive: %v", err)
	}
}

// The Tinker provider's tokenizer file follows the same rule as every other
// path the experiment names.
func TestAbuseTokenizerPath(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "exp")
	os.MkdirAll(dir, 0o755)
	src := func(tok string) string {
		return "provider \"tinker\" {\n  tokenizer = \"" + tok + "\"\n}\n" + minimal + oneModel
	}
	for _, tt := range []struct{ tok, want string }{
		{"../../../etc/passwd", `x.hcl:2:15: Unusable tokenizer: "../../../etc/passwd" leaves the experiment's folder`},
		{"/dev/zero", `x.hcl:2:15: Unusable tokenizer: /dev/zero is not a regular file`},
	} {
		_, err := Parse(filepath.Join(dir, "x.hcl"), []byte(src(tt.tok)), opts(nil))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.tok, err, tt.want)
		}
	}
	os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{}"), 0o644)
	if _, err := Parse(filepath.Join(dir, "x.hcl"), []byte(src("tokenizer.json")), opts(nil)); err != nil {
		t.Errorf("a tokenizer beside the experiment: %v", err)
	}
}

func TestAbuseEmptyInlineQuestion(t *testing.T) {
	_, err := Parse("x.hcl", []byte(traitWith(`questions = ["Fine?", " "]`)), opts(nil))
	if err == nil || !strings.Contains(err.Error(), "x.hcl:3:15: Invalid questions: question 2 is empty") {
		t.Fatalf("got %v", err)
	}
}
