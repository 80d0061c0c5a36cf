package upstream

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Upstream keeps its coherence rubric not in trait_data_eval but in the
// Python module eval/prompts.py, as an entry of a dict of str.format
// templates: Prompts["coherence_0_100"] = """...""". It is read without
// running Python, so only a plain string literal is accepted; anything that
// needs evaluating (an f-string, a concatenation, a name) is refused rather
// than guessed at.
const (
	promptsFile  = "eval/prompts.py"
	coherenceKey = "coherence_0_100"
)

// CoherencePrompt returns upstream's coherence rubric, with {question} and
// {answer} once each and str.format's doubled braces undone.
func (a *Archive) CoherencePrompt() (string, error) {
	name := a.top + promptsFile
	if a.promptsErr != nil {
		return "", fmt.Errorf("read %s from persona_vectors archive %s: %w", name, a.location, a.promptsErr)
	}
	if a.prompts == nil {
		return "", fmt.Errorf("persona_vectors archive %s has no %s, so it has no coherence prompt; use a revision of the archive that has it", a.location, name)
	}
	p, err := pythonPrompt(string(a.prompts), coherenceKey)
	if err != nil {
		return "", fmt.Errorf("%s in persona_vectors archive %s: %w; use another revision of the archive", name, a.location, err)
	}
	return p, nil
}

// errNoEntry says the module has no assignment of the key.
var errNoEntry = errors.New("no such entry")

// pythonPrompt finds the one statement NAME[KEY] = LITERAL at the start of
// a line whose key is key, and returns its literal as a prompt template.
// String literals and comments are skipped whole, so text inside another
// prompt never counts as a statement.
func pythonPrompt(src, key string) (string, error) {
	found, foundLine := "", 0 // foundLine 0: not found yet
	line := 1
	atStart := true
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			atStart = true
			i++
			continue
		case c == ' ' || c == '\t' || c == '\r' || c == '\f':
			i++
			continue
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		}
		if atStart {
			atStart = false
			k, valueAt, ok := entryKey(src, i)
			if ok && k == key {
				if foundLine != 0 {
					return "", fmt.Errorf("%s is assigned at line %d and again at line %d; keep one", key, foundLine, line)
				}
				v, end, err := literal(src, valueAt, false)
				if err != nil {
					return "", fmt.Errorf("%s at line %d: %w", key, line, err)
				}
				if rest := restOfLine(src, end); rest != "" {
					return "", fmt.Errorf("%s at line %d: the string literal is followed by %q; only a plain string literal can be read, not an expression", key, line, clip(rest))
				}
				found, foundLine = v, line
				line += strings.Count(src[i:end], "\n")
				i = end
				continue
			}
		}
		if isQuoteStart(src, i) {
			_, end, err := literal(src, i, true)
			if err != nil {
				// A broken literal elsewhere hides where statements start.
				return "", fmt.Errorf("line %d: %w", line, err)
			}
			line += strings.Count(src[i:end], "\n")
			i = end
			continue
		}
		i++
	}
	if foundLine == 0 {
		return "", fmt.Errorf(`no %s entry (a line NAME["%s"] = """...""")`, key, key)
	}
	p, fields, err := unformat(found)
	if err != nil {
		return "", fmt.Errorf("%s at line %d: %w", key, foundLine, err)
	}
	for _, ph := range []string{"{question}", "{answer}"} {
		if n := fields[ph]; n != 1 {
			return "", fmt.Errorf("%s at line %d holds the placeholder %s %d times, want once", key, foundLine, ph, n)
		}
		// Literal text {{question}} unescapes to what reads as a placeholder.
		if strings.Count(p, ph) != 1 {
			return "", fmt.Errorf("%s at line %d holds the literal text %s besides the placeholder, which would read as a second one", key, foundLine, ph)
		}
	}
	return p, nil
}

// entryKey matches NAME[ 'key' ] = at i and returns the key and where the
// value starts.
func entryKey(src string, i int) (key string, valueAt int, ok bool) {
	j := i
	for j < len(src) && (isIdentByte(src[j]) || j > i && src[j] >= '0' && src[j] <= '9') {
		j++
	}
	if j == i || src[i] >= '0' && src[i] <= '9' {
		return "", 0, false
	}
	j = skipSpace(src, j)
	if j >= len(src) || src[j] != '[' {
		return "", 0, false
	}
	j = skipSpace(src, j+1)
	if j >= len(src) || src[j] != '"' && src[j] != '\'' {
		return "", 0, false
	}
	key, end, err := literal(src, j, false)
	if err != nil {
		return "", 0, false
	}
	j = skipSpace(src, end)
	if j >= len(src) || src[j] != ']' {
		return "", 0, false
	}
	j = skipSpace(src, j+1)
	// "=" but not "==": a comparison is not an assignment.
	if j >= len(src) || src[j] != '=' || j+1 < len(src) && src[j+1] == '=' {
		return "", 0, false
	}
	return key, skipSpace(src, j+1), true
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func skipSpace(src string, i int) int {
	for i < len(src) && (src[i] == ' ' || src[i] == '\t') {
		i++
	}
	return i
}

// isQuoteStart says whether a string literal, perhaps prefixed, starts at i.
func isQuoteStart(src string, i int) bool {
	if src[i] == '"' || src[i] == '\'' {
		return true
	}
	if i > 0 && (isIdentByte(src[i-1]) || src[i-1] >= '0' && src[i-1] <= '9') {
		return false // inside a name; a prefix starts a token
	}
	j := i
	for j < len(src) && j-i < 2 && strings.IndexByte("rRbBuUfF", src[j]) >= 0 {
		j++
	}
	return j < len(src) && (src[j] == '"' || src[j] == '\'')
}

// restOfLine is what follows a literal on its line, without blanks or a comment.
func restOfLine(src string, i int) string {
	end := strings.IndexByte(src[i:], '\n')
	if end < 0 {
		end = len(src) - i
	}
	rest := src[i : i+end]
	if k := strings.IndexByte(rest, '#'); k >= 0 {
		rest = rest[:k]
	}
	return strings.TrimSpace(rest)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// literal reads the Python string literal at i: an optional r or u prefix,
// then a one-line literal in ' or " quotes, or a triple-quoted one in
// three of either. It returns the value and the
// index after the closing quote. f-strings and bytes are refused, since
// they are not plain text, unless skip: then the literal is only passed
// over and its value is not used.
func literal(src string, i int, skip bool) (string, int, error) {
	raw := false
	j := i
	for j < len(src) && src[j] != '"' && src[j] != '\'' {
		switch src[j] {
		case 'r', 'R':
			raw = true
		case 'u', 'U':
		case 'f', 'F':
			if skip {
				break
			}
			return "", 0, errors.New("it is an f-string, which Python fills in when it runs; only a plain string literal can be read")
		case 'b', 'B':
			if skip {
				raw = true // its escapes need not decode as text
				break
			}
			return "", 0, errors.New("it is a bytes literal, not text")
		default:
			return "", 0, fmt.Errorf("it is not a string literal but %q", clip(src[i:min(len(src), i+40)]))
		}
		j++
		if j-i > 2 {
			return "", 0, errors.New("it has an unknown string prefix")
		}
	}
	if j >= len(src) {
		return "", 0, errors.New("a string prefix is not followed by a quote")
	}
	q := src[j]
	triple := strings.HasPrefix(src[j:], strings.Repeat(string(q), 3))
	open := 1
	if triple {
		open = 3
	}
	var b strings.Builder
	for k := j + open; k < len(src); {
		c := src[k]
		switch {
		case triple && strings.HasPrefix(src[k:], strings.Repeat(string(q), 3)):
			return b.String(), k + 3, nil
		case !triple && c == q:
			return b.String(), k + 1, nil
		case !triple && c == '\n':
			return "", 0, errors.New("a one-line string literal ends at the line's end without its closing quote")
		case c == '\\':
			if k+1 >= len(src) {
				return "", 0, errors.New("the file ends inside a string literal")
			}
			if raw {
				// A raw string keeps the backslash; it only stops the quote
				// after it from closing the string.
				b.WriteByte('\\')
				b.WriteByte(src[k+1])
				k += 2
				continue
			}
			n, err := escape(src[k:], &b)
			if err != nil {
				return "", 0, err
			}
			k += n
		default:
			b.WriteByte(c)
			k++
		}
	}
	return "", 0, errors.New("the file ends inside a string literal")
}

// escape decodes the backslash escape at the start of s into b and returns
// its length. Escapes a prompt could not mean are refused, not kept.
func escape(s string, b *strings.Builder) (int, error) {
	switch s[1] {
	case '\n':
		return 2, nil // line continuation
	case '\r':
		if len(s) > 2 && s[2] == '\n' {
			return 3, nil
		}
		return 2, nil
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case '\\', '\'', '"':
		b.WriteByte(s[1])
	case 'x', 'u', 'U':
		digits := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[1]]
		if len(s) < 2+digits {
			return 0, fmt.Errorf("the escape \\%c needs %d hex digits", s[1], digits)
		}
		v, err := strconv.ParseUint(s[2:2+digits], 16, 32)
		if err != nil || v > utf8.MaxRune || v >= 0xD800 && v <= 0xDFFF {
			return 0, fmt.Errorf("the escape %q is not a valid character", s[:2+digits])
		}
		b.WriteRune(rune(v))
		return 2 + digits, nil
	default:
		r, _ := utf8.DecodeRuneInString(s[1:])
		return 0, fmt.Errorf("the escape \\%c is not one a prompt uses (\\n, \\t, \\\\, \\', \\\", \\x, \\u or a line continuation)", r)
	}
	return 2, nil
}

// unformat turns a str.format template into the project's template: the
// doubled braces {{ and }} become literal braces, {question} and {answer}
// stay placeholders (counted in fields), and any other replacement field is
// refused, since str.format(question=..., answer=...) would fail on it.
func unformat(s string) (string, map[string]int, error) {
	fields := map[string]int{}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '{' && i+1 < len(s) && s[i+1] == '{':
			b.WriteByte('{')
			i++
		case c == '}' && i+1 < len(s) && s[i+1] == '}':
			b.WriteByte('}')
			i++
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return "", nil, errors.New("a { opens a replacement field that never closes; a literal brace is written {{")
			}
			field := s[i : i+end+1]
			if field != "{question}" && field != "{answer}" {
				return "", nil, fmt.Errorf("the replacement field %s is not {question} or {answer}, so str.format(question=..., answer=...) cannot fill it", clip(field))
			}
			fields[field]++
			b.WriteString(field)
			i += end
		case c == '}':
			return "", nil, errors.New("a single } is not valid in a str.format template; a literal brace is written }}")
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), fields, nil
}
