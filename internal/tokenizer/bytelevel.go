package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// byteRune is GPT-2's reversible map from bytes to printable runes: bytes that
// are printable Latin-1 stand for themselves, the others are moved to 256 and
// up in byte order. Vocab entries are written in these runes.
var byteRune [256]rune

// runeByte inverts byteRune: runeByte[r] is r's byte plus one, 0 if r
// stands for no byte. Every byte-level rune is below 324.
var runeByte [324]int16

func init() {
	next := rune(256)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE {
			byteRune[b] = rune(b)
		} else {
			byteRune[b] = next
			next++
		}
		runeByte[byteRune[b]] = int16(b) + 1
	}
}

// byteLevel writes s in byte-level runes.
func byteLevel(s string) string {
	var sb strings.Builder
	sb.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteRune[s[i]])
	}
	return sb.String()
}

// appendTokenBytes appends the bytes a byte-level token stands for. A token
// with a rune outside the map is taken as its own UTF-8, as the ByteLevel
// decoder of `tokenizers` does.
func appendTokenBytes(buf []byte, tok string) []byte {
	start := len(buf)
	for _, r := range tok {
		if r < 0 || int(r) >= len(runeByte) || runeByte[r] == 0 {
			return append(buf[:start], tok...)
		}
		buf = append(buf, byte(runeByte[r]-1))
	}
	return buf
}

// writeLossy writes b as UTF-8, replacing each maximal ill-formed subsequence
// with one U+FFFD, the way Rust's from_utf8_lossy and the WHATWG decoder do
// (Go's per-byte replacement would give more U+FFFDs for a cut-off rune).
func writeLossy(sb *strings.Builder, b []byte) {
	if utf8.Valid(b) {
		sb.Write(b)
		return
	}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[i : i+size])
			i += size
			continue
		}
		sb.WriteRune(utf8.RuneError)
		i += illFormedLen(b[i:])
	}
}

// illFormedLen is the length of the maximal subpart of an ill-formed UTF-8
// sequence at the start of b (at least 1).
func illFormedLen(b []byte) int {
	lead := b[0]
	var n int
	lo, hi := byte(0x80), byte(0xBF)
	switch {
	case lead >= 0xC2 && lead <= 0xDF:
		n = 2
	case lead == 0xE0:
		n, lo = 3, 0xA0
	case lead == 0xED:
		n, hi = 3, 0x9F
	case lead >= 0xE1 && lead <= 0xEF:
		n = 3
	case lead == 0xF0:
		n, lo = 4, 0x90
	case lead >= 0xF1 && lead <= 0xF3:
		n = 4
	case lead == 0xF4:
		n, hi = 4, 0x8F
	default:
		return 1
	}
	k := 1
	for k < n && k < len(b) {
		c := b[k]
		if k == 1 && (c < lo || c > hi) || k > 1 && (c < 0x80 || c > 0xBF) {
			break
		}
		k++
	}
	return k
}
