package config

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// On a long line of non-ASCII text the window around an error is cut on
// character boundaries and the marker stands under the offending token.
func TestDiagnosticWindowOnLongNonASCIILine(t *testing.T) {
	long := strings.Repeat("é", 300)
	for _, attr := range []string{
		`judge_prompt = "` + long + `" = 1`,              // the error is past the long text
		`judge_prompt = "` + long + `" = "` + long + `"`, // and the text goes on after it
		`judge_prompt = "ab" = "` + long + `"`,           // the error is early, the line goes on
	} {
		checkWindow(t, attr)
	}
}

func checkWindow(t *testing.T, attr string) {
	t.Helper()
	_, err := Parse("x.hcl", []byte(traitWith(attr)), opts(nil))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !utf8.ValidString(msg) {
		t.Fatalf("message is not valid UTF-8: %q", msg)
	}
	lines := strings.Split(msg, "\n")
	if len(lines) < 3 {
		t.Fatalf("no source line: %q", msg)
	}
	code, marker := lines[1], lines[2]
	col := strings.IndexByte(marker, '^')
	if col < 0 {
		t.Fatalf("no marker: %q", marker)
	}
	// The marker's column, in characters, picks the token in the line.
	got := []rune(code)
	at := utf8.RuneCountInString(marker[:col])
	if at >= len(got) || got[at] != '=' {
		t.Errorf("marker at character %d of %q, not under the second '='", at, code)
	}
	if n := utf8.RuneCountInString(code); n > len("    3 | ")+3*60+1 {
		t.Errorf("window of %d characters", n)
	}
}
