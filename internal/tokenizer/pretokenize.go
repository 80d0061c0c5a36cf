package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dlclark/regexp2/v2"
)

// Split behaviors, as named in tokenizer.json.
const (
	isolated = iota
	removed
	mergedWithPrevious
	mergedWithNext
	contiguous
)

var behaviors = map[string]int{
	"Isolated":           isolated,
	"Removed":            removed,
	"MergedWithPrevious": mergedWithPrevious,
	"MergedWithNext":     mergedWithNext,
	"Contiguous":         contiguous,
}

// splitter is one Split pre-tokenizer: find reports the matches of its
// pattern in s, in order, as byte offsets.
type splitter struct {
	find     func(s string, match func(start, end int))
	behavior int
	invert   bool
}

// gpt2Pattern is what ByteLevel splits with when use_regex is set.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// regexTimeout stops a pathological pattern from hanging Encode; the text
// after a timed-out match is left unsplit.
const regexTimeout = 2 * time.Second

type preJSON struct {
	Type           string            `json:"type"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Pattern        *patternJSON      `json:"pattern"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	AddPrefixSpace bool              `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
}

type patternJSON struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

func (t *Tokenizer) parsePreTokenizer(raw json.RawMessage) error {
	var flat []preJSON
	if err := flattenPre(raw, &flat, 0); err != nil {
		return err
	}
	if len(flat) == 0 || flat[len(flat)-1].Type != "ByteLevel" {
		return errors.New("tokenizer.json: pre_tokenizer must end with ByteLevel (only byte-level BPE is supported)")
	}
	for i, p := range flat {
		switch p.Type {
		case "ByteLevel":
			if i != len(flat)-1 {
				return errors.New("tokenizer.json: ByteLevel must be the last pre_tokenizer")
			}
			t.prefixSpc = p.AddPrefixSpace
			if p.UseRegex == nil || *p.UseRegex {
				sp, err := regexSplitter(gpt2Pattern)
				if err != nil {
					return err
				}
				t.byteLevelRe = &sp
			}
		case "Split":
			b, ok := behaviors[p.Behavior]
			if !ok {
				return fmt.Errorf("tokenizer.json: unsupported Split behavior %q", p.Behavior)
			}
			var sp splitter
			switch {
			case p.Pattern != nil && p.Pattern.Regex != nil:
				var err error
				if sp, err = regexSplitter(*p.Pattern.Regex); err != nil {
					return err
				}
			case p.Pattern != nil && p.Pattern.String != nil:
				sp = stringSplitter(*p.Pattern.String)
			default:
				return errors.New("tokenizer.json: Split without a Regex or String pattern")
			}
			sp.behavior, sp.invert = b, p.Invert
			t.pre = append(t.pre, sp)
		default:
			return fmt.Errorf("tokenizer.json: unsupported pre_tokenizer type %q", p.Type)
		}
	}
	return nil
}

func flattenPre(raw json.RawMessage, out *[]preJSON, depth int) error {
	if isNull(raw) {
		return nil
	}
	if depth > 16 {
		return errors.New("tokenizer.json: pre_tokenizer nested too deeply")
	}
	var p preJSON
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("tokenizer.json: pre_tokenizer: %w", err)
	}
	if p.Type != "Sequence" {
		*out = append(*out, p)
		return nil
	}
	for _, sub := range p.Pretokenizers {
		if err := flattenPre(sub, out, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func regexSplitter(pattern string) (splitter, error) {
	if maxDigits, ok := knownPatterns[pattern]; ok {
		return splitter{find: func(s string, match func(int, int)) { scanGPT4(s, maxDigits, match) }}, nil
	}
	re, err := compileRegex(pattern)
	if err != nil {
		return splitter{}, fmt.Errorf("tokenizer.json: pattern %q: %w", pattern, err)
	}
	return splitter{find: func(s string, match func(int, int)) {
		// On a timeout the matches found so far stand and the rest is one piece.
		locs, _ := re.FindAllStringIndex(s, -1)
		for _, l := range locs {
			match(l[0], l[1])
		}
	}}, nil
}

// compileRegex compiles an Oniguruma-style pattern with regexp2; a malformed
// pattern can make regexp2 panic, which is turned into an error.
func compileRegex(pattern string) (re *regexp2.Regexp, err error) {
	defer func() {
		if r := recover(); r != nil {
			re, err = nil, fmt.Errorf("cannot compile: %v", r)
		}
	}()
	re, err = regexp2.Compile(pattern, regexp2.None)
	if err != nil {
		return nil, err
	}
	re.MatchTimeout = regexTimeout
	return re, nil
}

func stringSplitter(lit string) splitter {
	return splitter{find: func(s string, match func(int, int)) {
		if lit == "" {
			return
		}
		for off := 0; ; {
			i := strings.Index(s[off:], lit)
			if i < 0 {
				return
			}
			match(off+i, off+i+len(lit))
			off += i + len(lit)
		}
	}}
}

// span is a piece of the text being split and whether it is a delimiter.
type span struct {
	start, end int
	match      bool
}

// apply splits s the way NormalizedString::split of `tokenizers` does and
// emits the non-empty pieces.
func (sp *splitter) apply(s string, emit func(string)) {
	if sp.behavior == isolated && !sp.invert {
		// The common case needs no bookkeeping: every piece stands alone.
		prev := 0
		sp.find(s, func(start, end int) {
			if start < prev || end < start || end > len(s) {
				return
			}
			if prev < start {
				emit(s[prev:start])
			}
			if start < end {
				emit(s[start:end])
			}
			prev = end
		})
		if prev < len(s) {
			emit(s[prev:])
		}
		return
	}
	var spans []span
	prev := 0
	sp.find(s, func(start, end int) {
		if start < prev || end < start || end > len(s) {
			return // defensive: a confused matcher must not slice out of range
		}
		if prev != start {
			spans = append(spans, span{prev, start, false})
		}
		spans = append(spans, span{start, end, true})
		prev = end
	})
	if prev != len(s) {
		spans = append(spans, span{prev, len(s), false})
	}
	if sp.invert {
		for i := range spans {
			spans[i].match = !spans[i].match
		}
	}
	var out []span
	switch sp.behavior {
	case isolated:
		out = spans
	case removed:
		for _, x := range spans {
			if !x.match {
				out = append(out, x)
			}
		}
	case mergedWithPrevious:
		prevMatch := false
		for _, x := range spans {
			if x.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].end = x.end
			} else {
				out = append(out, x)
			}
			prevMatch = x.match
		}
	case mergedWithNext:
		prevMatch := false
		for i := len(spans) - 1; i >= 0; i-- {
			x := spans[i]
			if x.match && !prevMatch && len(out) > 0 {
				out[len(out)-1].start = x.start
			} else {
				out = append(out, x)
			}
			prevMatch = x.match
		}
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	case contiguous:
		prevMatch := false
		for _, x := range spans {
			if x.match == prevMatch && len(out) > 0 {
				out[len(out)-1].end = x.end
			} else {
				out = append(out, x)
			}
			prevMatch = x.match
		}
	}
	for _, x := range out {
		if x.end > x.start {
			emit(s[x.start:x.end])
		}
	}
}

// preTokenize runs the Split steps in order over piece, then ByteLevel (its
// prefix space and its own regex, when configured), and emits the words BPE
// works on, still as raw bytes.
func (t *Tokenizer) preTokenize(piece string, emit func(string)) {
	t.runSplits(0, piece, emit)
}

func (t *Tokenizer) runSplits(k int, s string, emit func(string)) {
	if k < len(t.pre) {
		t.pre[k].apply(s, func(p string) { t.runSplits(k+1, p, emit) })
		return
	}
	if t.prefixSpc && !strings.HasPrefix(s, " ") {
		s = " " + s
	}
	if t.byteLevelRe == nil {
		emit(s)
		return
	}
	t.byteLevelRe.apply(s, emit)
}
