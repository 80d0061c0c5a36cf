// Package tokenizer encodes and decodes text with a Hugging Face
// tokenizer.json of the byte-level BPE kind used by Qwen3 and Llama 3.x, so
// that training data can be tokenized in Go exactly as the Python
// `tokenizers` library would tokenize it for Tinker.
//
// Supported: model BPE (vocab, merges as "a b" strings or [a, b] pairs,
// ignore_merges, byte_fallback, unk_token), normalizers NFC/NFD/NFKC/NFKD and
// Sequence of them, pre-tokenizers Split (Regex or String pattern, every
// behavior, invert) and ByteLevel (which must come last), decoder ByteLevel,
// and added tokens with their lstrip, rstrip, single_word, normalized and
// special flags. Anything else is refused by Parse with an error naming it,
// rather than tokenized differently. The post-processor is not applied: Encode
// is `add_special_tokens=False`, which is what the Tinker cookbook renderers use.
package tokenizer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/text/unicode/norm"

	"github.com/modelorganisms/pvbuild/internal/inputfile"
)

// Tokenizer is a parsed tokenizer.json. It is safe for concurrent use.
type Tokenizer struct {
	sum string

	vocab     map[string]int // byte-level token text → id
	idToken   []string       // id → byte-level token text, or an added token's content
	idIsAdded []bool
	idBytes   []byte   // the bytes each token decodes to, concatenated…
	idOff     []uint32 // …token id's at idBytes[idOff[id]:idOff[id+1]]
	merges    map[uint64]merge
	byteID    [256]int // id of each single byte's token, -1 if absent
	fallback  [256]int // byte_fallback "<0xXX>" ids, -1 if absent
	unkID     int
	fuseUnk   bool
	ignoreMrg bool

	added       map[string]int
	rawMatch    *matcher // added tokens matched on the text as given
	normMatch   *matcher // added tokens matched after normalization
	normalizer  func(string) string
	pre         []splitter
	prefixSpc   bool      // ByteLevel add_prefix_space
	byteLevelRe *splitter // ByteLevel use_regex

	cacheMu sync.RWMutex
	cache   map[string][]int
}

type merge struct {
	rank int32
	id   int32
}

// cacheLimit bounds the per-word BPE cache; it is cleared when full so that
// hostile input cannot grow it without bound.
const cacheLimit = 1 << 16

// Load reads and parses a tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	data, err := inputfile.Read(path, maxFileSize)
	if err != nil {
		return nil, err
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

type fileJSON struct {
	AddedTokens  []addedJSON     `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Decoder      json.RawMessage `json:"decoder"`
	Model        *modelJSON      `json:"model"`
}

type addedJSON struct {
	ID         *int   `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelJSON struct {
	Type                    string     `json:"type"`
	Vocab                   vocabJSON  `json:"vocab"`
	Merges                  mergesJSON `json:"merges"`
	UnkToken                *string    `json:"unk_token"`
	ContinuingSubwordPrefix *string    `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string    `json:"end_of_word_suffix"`
	FuseUnk                 bool       `json:"fuse_unk"`
	ByteFallback            bool       `json:"byte_fallback"`
	IgnoreMerges            bool       `json:"ignore_merges"`
	Dropout                 *float64   `json:"dropout"`
}

// Parse builds a Tokenizer from the bytes of a tokenizer.json.
func Parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := decodeFile(data, &f); err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	sum := sha256.Sum256(data)
	t := &Tokenizer{sum: hex.EncodeToString(sum[:]), unkID: -1, cache: map[string][]int{}}
	if err := t.parseModel(f.Model); err != nil {
		return nil, err
	}
	var err error
	if t.normalizer, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if err := t.parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err := checkDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if err := t.parseAdded(f.AddedTokens); err != nil {
		return nil, err
	}
	t.idOff = make([]uint32, len(t.idToken)+1)
	for id, tok := range t.idToken {
		if t.idIsAdded[id] {
			t.idBytes = append(t.idBytes, tok...)
		} else {
			t.idBytes = appendTokenBytes(t.idBytes, tok)
		}
		t.idOff[id+1] = uint32(len(t.idBytes))
	}
	return t, nil
}

func (t *Tokenizer) parseModel(m *modelJSON) error {
	if m == nil {
		return errors.New("tokenizer.json: no model")
	}
	if m.Type != "BPE" && !(m.Type == "" && m.Merges != nil) {
		return fmt.Errorf("tokenizer.json: unsupported model type %q (only BPE)", m.Type)
	}
	if m.Dropout != nil && *m.Dropout != 0 {
		return errors.New("tokenizer.json: BPE dropout is not supported")
	}
	if (m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "") ||
		(m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "") {
		return errors.New("tokenizer.json: continuing_subword_prefix and end_of_word_suffix are not supported")
	}
	if len(m.Vocab) == 0 {
		return errors.New("tokenizer.json: empty vocab")
	}
	t.vocab = m.Vocab
	t.fuseUnk = m.FuseUnk
	t.ignoreMrg = m.IgnoreMerges
	maxID := 0
	for tok, id := range m.Vocab {
		if id < 0 {
			return fmt.Errorf("tokenizer.json: vocab token %q has negative id %d", tok, id)
		}
		maxID = max(maxID, id)
	}
	// A dense table keeps Decode fast; ids far beyond the entry count would
	// only serve to exhaust memory.
	if maxID > 4*len(m.Vocab)+1<<16 {
		return fmt.Errorf("tokenizer.json: vocab id %d is too large for %d entries", maxID, len(m.Vocab))
	}
	t.idToken = make([]string, maxID+1)
	t.idIsAdded = make([]bool, maxID+1)
	for tok, id := range m.Vocab {
		t.idToken[id] = tok
	}
	for b := 0; b < 256; b++ {
		t.byteID[b], t.fallback[b] = -1, -1
		if id, ok := m.Vocab[string(byteRune[b])]; ok {
			t.byteID[b] = id
		}
		if m.ByteFallback {
			if id, ok := m.Vocab[fmt.Sprintf("<0x%02X>", b)]; ok {
				t.fallback[b] = id
			}
		}
	}
	if m.UnkToken != nil {
		id, ok := m.Vocab[*m.UnkToken]
		if !ok {
			return fmt.Errorf("tokenizer.json: unk_token %q is not in the vocab", *m.UnkToken)
		}
		t.unkID = id
	}
	t.merges = make(map[uint64]merge, len(m.Merges))
	for rank, mg := range m.Merges {
		a, b := mg[0], mg[1]
		ia, oka := m.Vocab[a]
		ib, okb := m.Vocab[b]
		im, okm := m.Vocab[a+b]
		if !oka || !okb || !okm {
			return fmt.Errorf("tokenizer.json: merge %d (%q %q) uses a token missing from the vocab", rank, a, b)
		}
		key := pairKey(ia, ib)
		if _, dup := t.merges[key]; !dup { // the first (best-ranked) occurrence wins
			t.merges[key] = merge{rank: int32(rank), id: int32(im)}
		}
	}
	return nil
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

type typed struct {
	Type string `json:"type"`
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

func parseNormalizer(raw json.RawMessage) (func(string) string, error) {
	if isNull(raw) {
		return nil, nil
	}
	var n struct {
		Type        string            `json:"type"`
		Normalizers []json.RawMessage `json:"normalizers"`
	}
	if err := json.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("tokenizer.json: normalizer: %w", err)
	}
	switch n.Type {
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Sequence":
		var fs []func(string) string
		for _, sub := range n.Normalizers {
			f, err := parseNormalizer(sub)
			if err != nil {
				return nil, err
			}
			if f != nil {
				fs = append(fs, f)
			}
		}
		if len(fs) == 0 {
			return nil, nil
		}
		return func(s string) string {
			for _, f := range fs {
				s = f(s)
			}
			return s
		}, nil
	}
	return nil, fmt.Errorf("tokenizer.json: unsupported normalizer type %q", n.Type)
}

func checkDecoder(raw json.RawMessage) error {
	var d typed
	if isNull(raw) {
		return errors.New("tokenizer.json: no decoder (only ByteLevel is supported)")
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("tokenizer.json: decoder: %w", err)
	}
	if d.Type != "ByteLevel" {
		return fmt.Errorf("tokenizer.json: unsupported decoder type %q (only ByteLevel)", d.Type)
	}
	return nil
}

func (t *Tokenizer) parseAdded(list []addedJSON) error {
	t.added = map[string]int{}
	var raw, normed []*addedToken
	for i, a := range list {
		if a.ID == nil || *a.ID < 0 || *a.ID > len(t.idToken)+1<<20 {
			return fmt.Errorf("tokenizer.json: added token %d (%q) has no valid id", i, a.Content)
		}
		if a.Content == "" {
			continue
		}
		id := *a.ID
		for id >= len(t.idToken) {
			t.idToken = append(t.idToken, "")
			t.idIsAdded = append(t.idIsAdded, false)
		}
		t.idToken[id] = a.Content
		t.idIsAdded[id] = true
		t.added[a.Content] = id
		// HF's default: special tokens match the raw text, others the normalized text.
		normalized := !a.Special
		if a.Normalized != nil {
			normalized = *a.Normalized
		}
		tok := &addedToken{id: id, content: a.Content, special: a.Special,
			lstrip: a.LStrip, rstrip: a.RStrip, singleWord: a.SingleWord}
		if normalized && t.normalizer != nil {
			tok.content = t.normalizer(a.Content)
			if tok.content == "" {
				continue
			}
			normed = append(normed, tok)
		} else {
			raw = append(raw, tok)
		}
	}
	t.rawMatch = newMatcher(raw)
	t.normMatch = newMatcher(normed)
	return nil
}

// SHA256 is the hex SHA-256 of the tokenizer.json bytes, for keys of work
// that depends on the exact tokenizer.
func (t *Tokenizer) SHA256() string { return t.sum }

// TokenID returns the id of a token given as its text: an added token's
// content, or a vocab entry in its byte-level form (e.g. "Ġthe").
func (t *Tokenizer) TokenID(s string) (int, bool) {
	if id, ok := t.added[s]; ok {
		return id, true
	}
	id, ok := t.vocab[s]
	return id, ok
}

// Encode tokenizes text. Added tokens (special or not) that occur in the text
// are recognised, as the `tokenizers` library does by default.
func (t *Tokenizer) Encode(text string) []int { return t.encode(text, false) }

// EncodeSplitSpecial tokenizes text with Hugging Face's
// split_special_tokens=True: added tokens marked special are tokenized as
// ordinary text, so text cannot forge control tokens; non-special added
// tokens (Qwen3's <think>, for one) are still recognised.
func (t *Tokenizer) EncodeSplitSpecial(text string) []int { return t.encode(text, true) }

func (t *Tokenizer) encode(text string, splitSpecial bool) []int {
	out := make([]int, 0, len(text)/4+1)
	t.rawMatch.split(text, splitSpecial, func(piece string, id int) {
		if id >= 0 {
			out = append(out, id)
			return
		}
		if t.normalizer != nil {
			piece = t.normalizer(piece)
		}
		t.normMatch.split(piece, splitSpecial, func(p string, id int) {
			if id >= 0 {
				out = append(out, id)
				return
			}
			t.preTokenize(p, func(word string) { out = t.bpe(word, out) })
		})
	})
	return out
}

// Decode turns ids back into text. Added tokens are written as their content;
// the bytes of other tokens are decoded as UTF-8 with each invalid sequence
// replaced by U+FFFD. Ids outside the vocabulary are skipped.
func (t *Tokenizer) Decode(ids []int) string {
	var sb strings.Builder
	var buf []byte
	flush := func() {
		writeLossy(&sb, buf)
		buf = buf[:0]
	}
	for _, id := range ids {
		if id < 0 || id >= len(t.idToken) {
			continue
		}
		b := t.idBytes[t.idOff[id]:t.idOff[id+1]]
		if t.idIsAdded[id] {
			flush()
			sb.Write(b)
			continue
		}
		buf = append(buf, b...)
	}
	flush()
	return sb.String()
}

// VocabSize is the largest token id plus one.
func (t *Tokenizer) VocabSize() int { return len(t.idToken) }
