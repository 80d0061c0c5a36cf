package tokenizer

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const qwenPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// synthetic builds (merges are written "a+b") a small byte-level BPE tokenizer.json: the 256 byte
// tokens as ids 0..255, then one id per merge, then the added tokens.
func synthetic(t testing.TB, merges []string, added []map[string]any, normalizer any) []byte {
	t.Helper()
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteRune[b])] = b
	}
	var mergeList []any
	for i, m := range merges {
		a, b, _ := strings.Cut(m, "+")
		vocab[byteLevel(a)+byteLevel(b)] = 256 + i
		if i%2 == 0 { // both spellings of a merge occur in the wild
			mergeList = append(mergeList, byteLevel(a)+" "+byteLevel(b))
		} else {
			mergeList = append(mergeList, []string{byteLevel(a), byteLevel(b)})
		}
	}
	doc := map[string]any{
		"version":      "1.0",
		"added_tokens": added,
		"normalizer":   normalizer,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": qwenPattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		}},
		"decoder": map[string]any{"type": "ByteLevel"},
		"model":   map[string]any{"type": "BPE", "vocab": vocab, "merges": mergeList, "ignore_merges": false},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func added(id int, content string, flags ...string) map[string]any {
	m := map[string]any{"id": id, "content": content, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": false}
	for _, f := range flags {
		m[f] = true
	}
	return m
}

func mustParse(t testing.TB, data []byte) *Tokenizer {
	t.Helper()
	tk, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func bytesOf(s string) []int {
	var ids []int
	for i := 0; i < len(s); i++ {
		ids = append(ids, int(s[i]))
	}
	return ids
}

func TestMergesApplyBestRankFirst(t *testing.T) {
	// "l l" outranks "e l", so "hello" must not become he+l+lo.
	tk := mustParse(t, synthetic(t, []string{"l+l", "h+e", "e+l", "he+ll", "hell+o", " +w"}, nil, nil))
	if got, want := tk.Encode("hello"), []int{256 + 4}; !slices.Equal(got, want) {
		t.Errorf("Encode(hello) = %v, want %v", got, want)
	}
	// Leftmost first among equal ranks: "lll" is ll+l.
	if got, want := tk.Encode("lll"), []int{256, 'l'}; !slices.Equal(got, want) {
		t.Errorf("Encode(lll) = %v, want %v", got, want)
	}
	if got, want := tk.Encode(" w"), []int{256 + 5}; !slices.Equal(got, want) {
		t.Errorf("Encode(\" w\") = %v, want %v", got, want)
	}
	for _, s := range []string{"hello world", "", "ünïcödé 😀", "\xff\xfe invalid"} {
		if got := tk.Decode(tk.Encode(s)); got != strings.ToValidUTF8(s, "\uFFFD") && s != "\xff\xfe invalid" {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
}

func TestDecodeReplacesEachIllFormedSequenceOnce(t *testing.T) {
	tk := mustParse(t, synthetic(t, nil, nil, nil))
	for in, want := range map[string]string{
		"\xe2\x82a":        "\uFFFDa", // cut-off 3-byte rune: one replacement
		"\xff\xfe":         "\uFFFD\uFFFD",
		"\xf0\x9f\x98":     "\uFFFD",
		"\xed\xa0\x80":     "\uFFFD\uFFFD\uFFFD", // surrogate: E D then A0 out of range
		"ok \xc3\xa9 ok":   "ok é ok",
		"\xf0\x9f\x98\x80": "😀",
	} {
		if got := tk.Decode(bytesOf(in)); got != want {
			t.Errorf("Decode(% x) = %q, want %q", in, got, want)
		}
	}
	if got := tk.Decode([]int{-1, 'a', 1 << 30}); got != "a" {
		t.Errorf("unknown ids not skipped: %q", got)
	}
}

func TestAddedTokenFlags(t *testing.T) {
	tk := mustParse(t, synthetic(t, nil, []map[string]any{
		added(300, "<s>", "special", "lstrip"),
		added(301, "[X]", "rstrip"),
		added(302, "tok", "single_word"),
		added(303, "<sp>", "special"),
		added(304, "<sp>x"), // longer token at the same place wins
	}, nil))
	cases := []struct {
		in   string
		want []int
	}{
		{"a  <s>b", append(bytesOf("a"), 300, 'b')},
		{"  <s>", []int{300}},
		{"[X]   b", []int{301, 'b'}},
		{"a tok b", append(append(bytesOf("a "), 302), bytesOf(" b")...)},
		{"atok tokb tok", append(bytesOf("atok tokb "), 302)},
		{"<sp>x<sp>", []int{304, 303}},
	}
	for _, c := range cases {
		if got := tk.Encode(c.in); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.in, got, c.want)
		}
	}
	// Special tokens are text under split_special_tokens; others still match.
	if got, want := tk.EncodeSplitSpecial("<s>[X] <sp>"), append(bytesOf("<s>"), 301, '<', 's', 'p', '>'); !slices.Equal(got, want) {
		t.Errorf("EncodeSplitSpecial = %v, want %v", got, want)
	}
	if id, ok := tk.TokenID("[X]"); !ok || id != 301 {
		t.Errorf("TokenID([X]) = %d, %v", id, ok)
	}
	if id, ok := tk.TokenID("Ġ"); !ok || id != ' ' {
		t.Errorf("TokenID(Ġ) = %d, %v", id, ok)
	}
	if _, ok := tk.TokenID("nope"); ok {
		t.Error("TokenID(nope) found")
	}
	if got := tk.Decode([]int{300, 'a', 301}); got != "<s>a[X]" {
		t.Errorf("Decode = %q", got)
	}
}

func TestNormalizerAndNormalizedAddedTokens(t *testing.T) {
	tk := mustParse(t, synthetic(t, nil, []map[string]any{added(300, "é", "normalized")},
		map[string]any{"type": "Sequence", "normalizers": []any{map[string]any{"type": "NFC"}}}))
	// The decomposed e + U+0301 is composed first, then matches the token.
	if got, want := tk.Encode("e\u0301!"), []int{300, '!'}; !slices.Equal(got, want) {
		t.Errorf("Encode = %v, want %v", got, want)
	}
	if got, want := tk.Encode("A\u030a"), bytesOf("Å"); !slices.Equal(got, want) {
		t.Errorf("Encode(A+ring) = %v, want NFC bytes %v", got, want)
	}
}

func TestSplitBehaviors(t *testing.T) {
	// The examples of the tokenizers documentation for Split.
	want := map[int][]string{
		removed:            {"the", "final", "countdown"},
		isolated:           {"the", "-", "final", "-", "-", "countdown"},
		mergedWithPrevious: {"the-", "final-", "-", "countdown"},
		mergedWithNext:     {"the", "-final", "-", "-countdown"},
		contiguous:         {"the", "-", "final", "--", "countdown"},
	}
	for b, w := range want {
		sp := stringSplitter("-")
		sp.behavior = b
		var got []string
		sp.apply("the-final--countdown", func(s string) { got = append(got, s) })
		if !slices.Equal(got, w) {
			t.Errorf("behavior %d: %q, want %q", b, got, w)
		}
	}
	sp := stringSplitter("-")
	sp.behavior, sp.invert = removed, true
	var got []string
	sp.apply("a-b", func(s string) { got = append(got, s) })
	if !slices.Equal(got, []string{"-"}) {
		t.Errorf("inverted Removed: %q", got)
	}
}

func TestParseRefusesWhatItCannotTokenizeFaithfully(t *testing.T) {
	good := synthetic(t, []string{"a+b"}, nil, nil)
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(good, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	cases := map[string][]byte{
		"WordPiece":    edit(func(m map[string]any) { model(m)["type"] = "WordPiece" }),
		"Lowercase":    edit(func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Lowercase"} }),
		"ByteLevel":    edit(func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "Whitespace"} }),
		"WordPiece\"":  edit(func(m map[string]any) { m["decoder"] = map[string]any{"type": "WordPiece"} }),
		"merge 0":      edit(func(m map[string]any) { model(m)["merges"] = []any{"a b c"} }),
		"missing from": edit(func(m map[string]any) { model(m)["merges"] = []any{"zz y"} }),
		"Split behavior": edit(func(m map[string]any) {
			m["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)["behavior"] = "Bogus"
		}),
		"empty vocab":     edit(func(m map[string]any) { model(m)["vocab"] = map[string]any{} }),
		"malformed JSON":  []byte(`{"model": {"vocab": {"a": 1,}}}`),
		"no valid id":     edit(func(m map[string]any) { m["added_tokens"] = []any{map[string]any{"content": "x"}} }),
		"malformed JSON:": good[:len(good)/2],
		"too large":       edit(func(m map[string]any) { model(m)["vocab"].(map[string]any)["big"] = 1 << 40 }),
		"pattern": edit(func(m map[string]any) {
			m["pre_tokenizer"].(map[string]any)["pretokenizers"].([]any)[0].(map[string]any)["pattern"] = map[string]any{"Regex": "(unclosed"}
		}),
		"no model":  []byte(`{}`),
		"dropout":   edit(func(m map[string]any) { model(m)["dropout"] = 0.1 }),
		"unk_token": edit(func(m map[string]any) { model(m)["unk_token"] = "<unk>" }),
	}
	for want, data := range cases {
		_, err := Parse(data)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse error %v, want one mentioning %q", err, want)
		}
	}
	if _, err := Load("/nonexistent/tokenizer.json"); err == nil || !strings.Contains(err.Error(), "/nonexistent/tokenizer.json") {
		t.Errorf("Load error %v does not name the file", err)
	}
}

func TestSHA256IsOfTheFileBytes(t *testing.T) {
	a := synthetic(t, nil, nil, nil)
	b := append(slices.Clone(a), ' ')
	ta, tb := mustParse(t, a), mustParse(t, b)
	if ta.SHA256() == tb.SHA256() || len(ta.SHA256()) != 64 {
		t.Errorf("SHA256 %q vs %q", ta.SHA256(), tb.SHA256())
	}
	if ta.SHA256() != mustParse(t, a).SHA256() {
		t.Error("SHA256 not stable")
	}
}

// The hand scanner must find exactly what the regex finds (through regexp2),
// on the fixed texts and under fuzzing.
func TestScannerMatchesRegexp(t *testing.T) {
	for _, s := range scannerSeeds() {
		compareScanner(t, s)
	}
}

func FuzzScanner(f *testing.F) {
	for _, s := range scannerSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { compareScanner(t, s) })
}

func scannerSeeds() []string {
	return []string{"Hello, world! It's 2024.\n\n  Indented\ttab  ", "I'M YOU'LL 'S 'Ll", "\r\n \n\t x", "１２３ 456789 ٣٤", "a\u00a0\u00a0b\u3000 c", "😀!! ?? ..\n\n"}
}

func compareScanner(t *testing.T, s string) {
	if strings.ContainsRune(s, 'ſ') {
		return // Oniguruma folds ſ to s; .NET-style regexp2 does not
	}
	for pattern, digits := range knownPatterns {
		re, err := compileRegex(pattern)
		if err != nil {
			t.Fatal(err)
		}
		want, err := re.FindAllStringIndex(s, -1)
		if err != nil {
			t.Fatal(err)
		}
		var got [][]int
		scanGPT4(s, digits, func(a, b int) { got = append(got, []int{a, b}) })
		if !slices.EqualFunc(got, want, slices.Equal) {
			t.Fatalf("digits %d, %q:\n scanner %v\n regexp2 %v", digits, s, got, want)
		}
	}
}
