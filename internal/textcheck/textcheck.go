// Package textcheck finds what decoding would silently turn into U+FFFD:
// a byte that is not UTF-8 and, in JSON text, a \u escape of a lone UTF-16
// surrogate. encoding/json replaces both without a word, so a file read
// with it (a training file, a questions list) asks here first and refuses
// the text at the place this reports.
package textcheck

import "unicode/utf8"

// FirstInvalid returns the byte offset in b of the first byte that is not
// UTF-8 or, when b is JSON text (jsonEscapes), of the first \u escape of a
// lone surrogate; surrogate says which it is. offset is -1 when b holds
// neither. A surrogate pair (\ud83d\ude00) and a written or escaped U+FFFD
// are characters like any other.
func FirstInvalid(b []byte, jsonEscapes bool) (offset int, surrogate bool) {
	for i := 0; i < len(b); {
		c := b[i]
		switch {
		case c == '\\' && jsonEscapes:
			if i+1 < len(b) && b[i+1] == 'u' {
				r, ok := escape(b[i:])
				switch {
				case !ok:
					i += 2 // not an escape of a character: the JSON is refused anyway
				case r >= 0xd800 && r < 0xdc00:
					if low, ok := escape(b[i+6:]); ok && low >= 0xdc00 && low < 0xe000 {
						i += 12
						continue
					}
					return i, true
				case r >= 0xdc00 && r < 0xe000:
					return i, true
				default:
					i += 6
				}
				continue
			}
			i += 2 // \\, \" and the like: the escaped byte is not an escape
		case c < 0x80:
			i++
		default:
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return i, false
			}
			i += n
		}
	}
	return -1, false
}

// escape decodes the \uXXXX escape at the start of b.
func escape(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
