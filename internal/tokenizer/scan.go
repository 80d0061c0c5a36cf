package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// knownPatterns are the Split regexes of Qwen2/3 and Llama 3, mapped to how
// many digits one number token may hold. They are scanned by hand: the same
// matches as the regex, an order of magnitude faster than regexp2.
var knownPatterns = map[string]int{
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`:      1,
	`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`: 3,
}

// scanGPT4 reports the matches of a known pattern over all of s. Every rune
// is letter, number, space or other, so the matches tile s. An invalid byte
// reads as U+FFFD, an "other", as it does for regexp2.
func scanGPT4(s string, maxDigits int, match func(start, end int)) {
	for i := 0; i < len(s); {
		j := gpt4Token(s, i, maxDigits)
		match(i, j)
		i = j
	}
}

func decode(s string, i int) (rune, int) {
	if i >= len(s) {
		return -1, 0
	}
	if s[i] < utf8.RuneSelf {
		return rune(s[i]), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func isL(r rune) bool {
	if r < utf8.RuneSelf {
		return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z'
	}
	return unicode.IsLetter(r)
}

func isN(r rune) bool {
	if r < utf8.RuneSelf {
		return '0' <= r && r <= '9'
	}
	return unicode.IsNumber(r)
}

// isS is \s of Oniguruma, the Unicode White_Space property.
func isS(r rune) bool { return r >= 0 && unicode.IsSpace(r) }

func isOther(r rune) bool { return r >= 0 && !isS(r) && !isL(r) && !isN(r) }

func isCRLF(r rune) bool { return r == '\r' || r == '\n' }

// gpt4Token returns the end of the match at i, trying the alternatives in
// the pattern's order as a backtracking engine would.
func gpt4Token(s string, i, maxDigits int) int {
	r, n := decode(s, i)
	// (?i:'s|'t|'re|'ve|'m|'ll|'d)
	if r == '\'' {
		if l := contraction(s, i+1); l > 0 {
			return i + 1 + l
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if isL(r) {
		return skip(s, i+n, isL)
	}
	if !isCRLF(r) && !isN(r) {
		if r2, n2 := decode(s, i+n); isL(r2) {
			return skip(s, i+n+n2, isL)
		}
	}
	// \p{N}{1,maxDigits}
	if isN(r) {
		j := i + n
		for k := 1; k < maxDigits; k++ {
			r2, n2 := decode(s, j)
			if !isN(r2) {
				break
			}
			j += n2
		}
		return j
	}
	// ` ?[^\s\p{L}\p{N}]+[\r\n]*`
	if r == ' ' {
		if r2, n2 := decode(s, i+n); isOther(r2) {
			return skip(s, skip(s, i+n+n2, isOther), isCRLF)
		}
	}
	if isOther(r) {
		return skip(s, skip(s, i+n, isOther), isCRLF)
	}
	// r is space: \s*[\r\n]+ ends after the run's last CR or LF; else
	// \s+(?!\S) leaves the run's last space to the next word; else \s+.
	end, lastNL, lastStart := i, -1, i
	for {
		r2, n2 := decode(s, end)
		if !isS(r2) {
			break
		}
		if isCRLF(r2) {
			lastNL = end + n2
		}
		lastStart = end
		end += n2
	}
	switch {
	case lastNL >= 0:
		return lastNL
	case end == len(s):
		return end
	case lastStart > i:
		return lastStart
	}
	return end
}

func skip(s string, i int, class func(rune) bool) int {
	for {
		r, n := decode(s, i)
		if n == 0 || !class(r) {
			return i
		}
		i += n
	}
}

// contraction matches s|t|re|ve|m|ll|d case-insensitively at i and returns
// its length in bytes, or 0. Case folding is Unicode's, as in Oniguruma: the
// long s 'ſ' folds to 's'.
func contraction(s string, i int) int {
	r, n := decode(s, i)
	switch r {
	case 's', 'S', 'ſ', 't', 'T', 'm', 'M', 'd', 'D':
		return n
	case 'r', 'R', 'v', 'V':
		if r2, n2 := decode(s, i+n); r2 == 'e' || r2 == 'E' {
			return n + n2
		}
	case 'l', 'L':
		if r2, n2 := decode(s, i+n); r2 == 'l' || r2 == 'L' {
			return n + n2
		}
	}
	return 0
}
