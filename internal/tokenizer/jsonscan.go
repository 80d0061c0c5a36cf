package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// The vocab and merges hold some 150k entries each; decoding them through
// encoding/json's reflection took most of a second, so they are read by this
// small scanner instead. Only strings that contain escapes go back to
// encoding/json.

type scanner struct {
	b []byte
	i int
}

var errSyntax = errors.New("malformed JSON")

func (s *scanner) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next non-space byte, or 0 at the end.
func (s *scanner) peek() byte {
	s.ws()
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) expect(c byte) error {
	if s.peek() != c {
		return fmt.Errorf("%w: expected %q at offset %d", errSyntax, c, s.i)
	}
	s.i++
	return nil
}

func (s *scanner) str() (string, error) {
	if err := s.expect('"'); err != nil {
		return "", err
	}
	start, escaped := s.i, false
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '\\':
			escaped = true
			s.i += 2
			continue
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if !escaped {
				return string(raw), nil
			}
			var out string
			if err := json.Unmarshal(s.b[start-1:s.i], &out); err != nil {
				return "", err
			}
			return out, nil
		case c < 0x20:
			return "", fmt.Errorf("%w: control character in string at offset %d", errSyntax, s.i)
		}
		s.i++
	}
	return "", fmt.Errorf("%w: unterminated string", errSyntax)
}

func (s *scanner) integer() (int, error) {
	s.ws()
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || s.b[s.i] >= '0' && s.b[s.i] <= '9') {
		s.i++
	}
	n, err := strconv.Atoi(string(s.b[start:s.i]))
	if err != nil {
		return 0, fmt.Errorf("%w: expected an integer at offset %d", errSyntax, start)
	}
	return n, nil
}

// list calls item for each element of a JSON array.
func (s *scanner) list(item func() error) error {
	if err := s.expect('['); err != nil {
		return err
	}
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		if err := item(); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return fmt.Errorf("%w: expected ',' or ']' at offset %d", errSyntax, s.i)
		}
	}
}

func (s *scanner) end() error {
	if s.peek() != 0 {
		return fmt.Errorf("%w: trailing data at offset %d", errSyntax, s.i)
	}
	return nil
}

// vocabJSON is {"token": id, ...}.
type vocabJSON map[string]int

func (v *vocabJSON) UnmarshalJSON(b []byte) error {
	s := &scanner{b: b}
	if isNull(b) {
		return nil
	}
	m := make(map[string]int, len(b)/16)
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			k, err := s.str()
			if err != nil {
				return err
			}
			if err := s.expect(':'); err != nil {
				return err
			}
			id, err := s.integer()
			if err != nil {
				return err
			}
			m[k] = id
			if s.peek() == ',' {
				s.i++
				continue
			}
			if err := s.expect('}'); err != nil {
				return err
			}
			break
		}
	}
	*v = m
	return s.end()
}

// mergesJSON is ["a b", ...] or [["a", "b"], ...].
type mergesJSON [][2]string

func (ms *mergesJSON) UnmarshalJSON(b []byte) error {
	s := &scanner{b: b}
	if isNull(b) {
		return nil
	}
	out := make([][2]string, 0, len(b)/12)
	err := s.list(func() error {
		if s.peek() == '"' {
			line, err := s.str()
			if err != nil {
				return err
			}
			a, rest, ok := cut(line)
			if !ok {
				return fmt.Errorf("merge %d: %q is not two tokens separated by a space", len(out), line)
			}
			out = append(out, [2]string{a, rest})
			return nil
		}
		var pair []string
		if err := s.list(func() error {
			x, err := s.str()
			pair = append(pair, x)
			return err
		}); err != nil {
			return err
		}
		if len(pair) != 2 {
			return fmt.Errorf("merge %d: %d tokens, want 2", len(out), len(pair))
		}
		out = append(out, [2]string{pair[0], pair[1]})
		return nil
	})
	if err != nil {
		return err
	}
	*ms = out
	return s.end()
}

// cut splits "a b" at its only space.
func cut(line string) (string, string, bool) {
	for i := 0; i < len(line); i++ {
		if line[i] == ' ' {
			for j := i + 1; j < len(line); j++ {
				if line[j] == ' ' {
					return "", "", false
				}
			}
			return line[:i], line[i+1:], true
		}
	}
	return "", "", false
}

// skip moves past one JSON value and returns its bytes. It checks only the
// structure it needs to find the end; the value is decoded (and so
// validated) by whoever uses it.
func (s *scanner) skip() ([]byte, error) {
	s.ws()
	start, depth := s.i, 0
	for s.i < len(s.b) {
		switch c := s.b[s.i]; c {
		case '"':
			if _, err := s.str(); err != nil {
				return nil, err
			}
			if depth == 0 {
				return s.b[start:s.i], nil
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("%w: unexpected %q at offset %d", errSyntax, c, s.i)
			}
			if depth == 0 {
				s.i++
				return s.b[start:s.i], nil
			}
		case ',', ':', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return s.b[start:s.i], nil
			}
		}
		s.i++
	}
	if depth != 0 || s.i == start {
		return nil, fmt.Errorf("%w: unexpected end", errSyntax)
	}
	return s.b[start:s.i], nil
}

// object calls field for each key of a JSON object; field must consume the
// value.
func (s *scanner) object(field func(key string) error) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		k, err := s.str()
		if err != nil {
			return err
		}
		if err := s.expect(':'); err != nil {
			return err
		}
		if err := field(k); err != nil {
			return err
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return fmt.Errorf("%w: expected ',' or '}' at offset %d", errSyntax, s.i)
		}
	}
}

// decodeFile fills f from a tokenizer.json: the model's vocab and merges with
// the scanner, every other part with encoding/json.
func decodeFile(b []byte, f *fileJSON) error {
	s := &scanner{b: b}
	raw := func(dst any) error {
		v, err := s.skip()
		if err != nil {
			return err
		}
		return json.Unmarshal(v, dst)
	}
	err := s.object(func(key string) error {
		switch key {
		case "added_tokens":
			return raw(&f.AddedTokens)
		case "normalizer":
			return raw(&f.Normalizer)
		case "pre_tokenizer":
			return raw(&f.PreTokenizer)
		case "decoder":
			return raw(&f.Decoder)
		case "model":
			if s.peek() == 'n' {
				return raw(&f.Model)
			}
			return decodeModel(s, f)
		}
		_, err := s.skip()
		return err
	})
	if err != nil {
		return err
	}
	return s.end()
}

// decodeModel reads the model object: vocab and merges with the scanner, the
// few other settings with encoding/json.
func decodeModel(s *scanner, f *fileJSON) error {
	var vocab vocabJSON
	var merges mergesJSON
	rest := map[string]json.RawMessage{}
	err := s.object(func(key string) error {
		v, err := s.skip()
		if err != nil {
			return err
		}
		switch key {
		case "vocab":
			return vocab.UnmarshalJSON(v)
		case "merges":
			return merges.UnmarshalJSON(v)
		}
		rest[key] = v
		return nil
	})
	if err != nil {
		return err
	}
	b, err := json.Marshal(rest)
	if err != nil {
		return err
	}
	f.Model = &modelJSON{}
	if err := json.Unmarshal(b, f.Model); err != nil {
		return fmt.Errorf("model: %w", err)
	}
	f.Model.Vocab, f.Model.Merges = vocab, merges
	return nil
}
