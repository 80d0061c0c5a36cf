package cost

import (
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/tiktoken-go/tokenizer"
)

var (
	codecOnce sync.Once
	codec     tokenizer.Codec
	codecErr  error
)

// Tokens counts the o200k_base tokens of s.
//
// Counting is exact but costly (a backtracking pre-tokenizer regexp, then
// BPE), and the same texts recur: every judge prompt repeats its rubric,
// every usage its answers. So s is cut where the pre-tokenizer provably
// never joins text across the cut (see splitPoint), and each piece's count
// is memoised.
func Tokens(s string) (int, error) {
	if err := loadCodec(); err != nil {
		return 0, err
	}
	if s == "" {
		return 0, nil
	}
	if !utf8.ValidString(s) {
		// The splitting argument is made for valid text only.
		return countRaw(s)
	}
	total := 0
	for s != "" {
		cut := splitPoint(s, targetPiece)
		n, err := memo.count(s[:cut])
		if err != nil {
			return 0, err
		}
		total += n
		s = s[cut:]
	}
	return total, nil
}

func loadCodec() error {
	codecOnce.Do(func() { codec, codecErr = tokenizer.Get(tokenizer.O200kBase) })
	if codecErr != nil {
		return fmt.Errorf("o200k_base vocabulary: %w", codecErr)
	}
	return nil
}

// countRaw counts with the tokenizer alone.
func countRaw(s string) (int, error) {
	if err := loadCodec(); err != nil {
		return 0, err
	}
	n, err := codec.Count(s)
	if err != nil {
		return 0, fmt.Errorf("count tokens: %w", err)
	}
	return n, nil
}

// Pieces are cut at most this long where they can be, so that a long text
// differing from a known one in a line shares the counts of its other lines.
// Memoising texts longer than maxPiece would fill the memo with one-offs.
const (
	targetPiece = 256
	maxPiece    = 4096
)

// splitPoint returns where the first piece of s ends: after the first '\n'
// at or past least bytes that is followed by a safe byte (or len(s)).
//
// o200k's pre-tokenizer pattern is
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Every character starts some alternative, so matches tile the text. Only
// three sub-patterns consume a '\n' and go on: [\r\n/]* (then only '\r',
// '\n' or '/'), \s*[\r\n]+ and the \s+ forms (then only whitespace); the
// letter patterns exclude '\n' even from their optional first character.
// So a match never spans a '\n' followed by a byte c that is printable
// ASCII, not '/' and not a space: a match ends there. Matching is also
// unchanged on each side: the pattern never looks behind, and from a start
// before the cut the only look past it is a greedy run reading c to stop
// (ending just as the end of the text would end it) or (?!\S) at c, which
// is never tried there because \s*[\r\n]+, an earlier alternative, matches
// any whitespace run that contains the '\n'. Hence the counts of the two
// sides add up to the count of the whole; TestSplitExact checks it.
func splitPoint(s string, least int) int {
	if len(s) <= least {
		return len(s)
	}
	for i := max(least-1, 0); i+1 < len(s); {
		k := strings.IndexByte(s[i:], '\n')
		if k < 0 {
			break
		}
		i += k
		if i+1 < len(s) && safeAfterNewline(s[i+1]) {
			return i + 1
		}
		i++
	}
	return len(s)
}

func safeAfterNewline(c byte) bool {
	return c > ' ' && c < 0x7f && c != '/'
}

// memo maps pieces to counts in two generations: when the current one holds
// memoBytes of text it becomes the previous one, and the previous one is
// dropped. Memory stays under about 2*memoBytes of text plus map overhead,
// and pieces in use survive a turnover by being copied forward on a hit.
const memoBytes = 4 << 20

type pieceMemo struct {
	sync.Mutex
	limit     int // bytes of text a generation holds
	cur, prev map[string]int
	bytes     int
}

var memo = pieceMemo{limit: memoBytes}

func (m *pieceMemo) count(p string) (int, error) {
	if len(p) > maxPiece {
		return countRaw(p)
	}
	m.Lock()
	n, ok := m.cur[p]
	if !ok {
		if n, ok = m.prev[p]; ok {
			m.storeLocked(p, n)
		}
	}
	m.Unlock()
	if ok {
		return n, nil
	}
	n, err := countRaw(p)
	if err != nil {
		return 0, err
	}
	m.Lock()
	m.storeLocked(p, n)
	m.Unlock()
	return n, nil
}

// storeLocked keeps a copy of p: p may be a slice of a much longer text,
// which the memo must not keep alive.
func (m *pieceMemo) storeLocked(p string, n int) {
	if m.cur == nil || m.bytes+len(p) > m.limit {
		m.prev, m.cur, m.bytes = m.cur, map[string]int{}, 0
	}
	m.cur[strings.Clone(p)] = n
	m.bytes += len(p)
}
