package tokenizer

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

type addedToken struct {
	id                      int
	content                 string
	special, lstrip, rstrip bool
	singleWord              bool
}

// matcher finds added tokens leftmost-longest, as the Aho-Corasick automaton
// of `tokenizers` does: the earliest position where any token starts wins,
// and there the longest token.
type matcher struct {
	byFirst [256][]*addedToken // longest first
	any     bool
}

func newMatcher(toks []*addedToken) *matcher {
	m := &matcher{}
	for _, t := range toks {
		b := t.content[0]
		m.byFirst[b] = append(m.byFirst[b], t)
		m.any = true
	}
	for b := range m.byFirst {
		l := m.byFirst[b]
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].content) > len(l[j].content) })
	}
	return m
}

// split calls emit for the pieces of s in order: an added token with its id,
// text between them with id -1. Empty text pieces are not emitted.
// With skipSpecial, special tokens are passed over (their text stays in the
// surrounding piece) but still consumed by the scan, as in `tokenizers`.
func (m *matcher) split(s string, skipSpecial bool, emit func(piece string, id int)) {
	if !m.any {
		if s != "" {
			emit(s, -1)
		}
		return
	}
	start := 0 // end of the last emitted token
	for i := 0; i < len(s); {
		var tok *addedToken
		for _, c := range m.byFirst[s[i]] {
			if strings.HasPrefix(s[i:], c.content) {
				tok = c
				break
			}
		}
		if tok == nil {
			i++
			continue
		}
		ms, me := i, i+len(tok.content)
		i = me
		if skipSpecial && tok.special {
			continue
		}
		if tok.singleWord && (endsWithWord(s[:ms]) || startsWithWord(s[me:])) {
			continue
		}
		if tok.lstrip {
			ms = max(len(strings.TrimRightFunc(s[:ms], unicode.IsSpace)), start)
		}
		if tok.rstrip {
			me = len(s) - len(strings.TrimLeftFunc(s[me:], unicode.IsSpace))
			i = me
		}
		if ms > start {
			emit(s[start:ms], -1)
		}
		emit(s[ms:me], tok.id)
		start = me
	}
	if start < len(s) {
		emit(s[start:], -1)
	}
}

// isWordRune approximates the Unicode \w of Rust's regex crate.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r) ||
		unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Pc, r) || r == 0x200C || r == 0x200D
}

func endsWithWord(s string) bool {
	r, size := utf8.DecodeLastRuneInString(s)
	return size > 0 && isWordRune(r)
}

func startsWithWord(s string) bool {
	r, size := utf8.DecodeRuneInString(s)
	return size > 0 && isWordRune(r)
}
