package textcheck

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestFirstInvalid(t *testing.T) {
	for _, tt := range []struct {
		in        string
		json      bool
		offset    int
		surrogate bool
	}{
		{"plain text, é and \uFFFD", true, -1, false},
		{"caf\xe9 au lait", false, 3, false},
		{"ok \xff\xfe", true, 3, false},
		{"\xc3", false, 0, false},           // a sequence cut short
		{"\xed\xa0\x80", false, 0, false},   // a surrogate written in UTF-8 is not UTF-8
		{`"x\ud800y"`, true, 2, true},       // a high half alone
		{`"x\uDC00"`, true, 2, true},        // a low half alone
		{`"\ud83d\ude00"`, true, -1, false}, // a pair is a character
		{`"\ud83d\u0041"`, true, 1, true},   // a high half before something else
		{`"\ufffd then \ud800"`, true, 13, true},
		{`"\\ud800"`, true, -1, false}, // an escaped backslash, then text
		{`"\\\ud800"`, true, 3, true},
		{`\ud800 as text`, false, -1, false}, // not JSON: the backslash is a character
		{`"\u12"`, true, -1, false},          // not an escape; the JSON is refused elsewhere
		{`"\ud800` + "\xff", true, 1, true},  // the first of the two
	} {
		offset, surrogate := FirstInvalid([]byte(tt.in), tt.json)
		if offset != tt.offset || surrogate != tt.surrogate {
			t.Errorf("FirstInvalid(%q, %v) = %d, %v; want %d, %v", tt.in, tt.json, offset, surrogate, tt.offset, tt.surrogate)
		}
	}
}

// What FirstInvalid passes, encoding/json decodes without inventing a
// U+FFFD; what it flags, encoding/json turns into one.
func FuzzFirstInvalidAgreesWithEncodingJSON(f *testing.F) {
	for _, s := range []string{`"a"`, `"\ud800"`, `"\ud83d\ude00"`, `"\\ud800"`, "\"\xff\"", `"\ufffd\udfff"`, `"\uD83D\uD83D\uDE00"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s string
		if json.Unmarshal(b, &s) != nil {
			return
		}
		offset, _ := FirstInvalid(b, true)
		real := strings.Count(string(b), "\uFFFD") + strings.Count(strings.ToLower(string(b)), `\ufffd`)
		if got := strings.Count(s, "\uFFFD"); offset < 0 && got > real {
			t.Errorf("%q passed, but decodes to %q", b, s)
		} else if offset >= 0 && got <= real {
			t.Errorf("%q flagged at %d, but decodes to %q", b, offset, s)
		}
	})
}
