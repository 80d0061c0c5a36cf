package tinkerserver

import (
	"encoding/json"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/dlclark/regexp2/v2"

	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// OfflineTokenizerID is the hub id the offline tokenizer is served under. It
// is not "Qwen/Qwen3-8B" on purpose: a client caches tokenizers by id, and
// this one must never pass for the real Qwen tokenizer in a shared cache.
const OfflineTokenizerID = "pvbuild/Qwen3-8B-offline"

// qwen3Pattern is the Split regex of Qwen3's tokenizer.json.
const qwen3Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// offlineMerges is how many merges are learned: enough that the project's
// texts encode to a few tokens per word, small enough to build in well under
// a second.
const offlineMerges = 3000

// qwen3Added are Qwen3's added tokens, in id order, with their special flag.
// The renderers need <|im_start|>, <|im_end|>, <think> and </think>; the rest
// keep the layout of the real file.
var qwen3Added = []struct {
	content string
	special bool
}{
	{"<|endoftext|>", true}, {"<|im_start|>", true}, {"<|im_end|>", true},
	{"<|object_ref_start|>", true}, {"<|object_ref_end|>", true}, {"<|box_start|>", true},
	{"<|box_end|>", true}, {"<|quad_start|>", true}, {"<|quad_end|>", true},
	{"<|vision_start|>", true}, {"<|vision_end|>", true}, {"<|vision_pad|>", true},
	{"<|image_pad|>", true}, {"<|video_pad|>", true}, {"<tool_call>", false},
	{"</tool_call>", false}, {"<|fim_prefix|>", true}, {"<|fim_middle|>", true},
	{"<|fim_suffix|>", true}, {"<|fim_pad|>", true}, {"<|repo_name|>", true},
	{"<|file_sep|>", true}, {"<tool_response>", false}, {"</tool_response>", false},
	{"<think>", false}, {"</think>", false},
}

// forcedWords become single tokens whatever the corpus says: the local judge
// answers REFUSAL, and its first answer token must be one token.
var forcedWords = []string{"REFUSAL"}

var (
	offlineOnce sync.Once
	offlineJSON []byte
)

// OfflineTokenizer returns a small, deterministic byte-level BPE
// tokenizer.json in the shape of Qwen3's: NFC normalizer, the Qwen3 split
// regex, the 256 byte tokens (ids 0..255, id = byte), merges learned from
// the project's own sample data, single tokens for the integers "0".."100"
// (the judge's answers; Qwen's regex splits digits, so Encode never produces
// the multi-digit ones, but the judge's distribution is over them), and
// Qwen3's added tokens. The same bytes come back on every call.
func OfflineTokenizer() []byte {
	offlineOnce.Do(func() { offlineJSON = buildOfflineTokenizer() })
	return append([]byte(nil), offlineJSON...)
}

// byteRunes is GPT-2's printable stand-in for each byte, as tokenizer.json
// writes byte-level tokens.
var byteRunes = func() [256]rune {
	var out [256]rune
	next := rune(256)
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE {
			out[b] = rune(b)
		} else {
			out[b] = next
			next++
		}
	}
	return out
}()

func byteLevelText(s string) string {
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		sb.WriteRune(byteRunes[s[i]])
	}
	return sb.String()
}

// corpusTexts are the texts merges are learned from: every message of the
// embedded training sets, base corpus and judge examples, and the judge
// prompts and questions. Errors only drop a source: the tokenizer stays valid
// with fewer merges.
func corpusTexts() []string {
	var texts []string
	for _, trait := range sampledata.Traits {
		for _, strength := range sampledata.Strengths {
			if b, err := sampledata.Training(trait, strength); err == nil {
				texts = append(texts, string(b))
			}
		}
		if task, err := sampledata.EvalTask(trait); err == nil {
			texts = append(texts, task.EvalPrompt)
			texts = append(texts, task.Questions...)
		}
	}
	if base, err := sampledata.BaseCorpus(); err == nil {
		for _, ex := range base {
			for _, m := range ex.Messages {
				texts = append(texts, m.Content)
			}
		}
	}
	if labeled, err := sampledata.JudgeExamples(); err == nil {
		for _, l := range labeled {
			texts = append(texts, l.Question, l.Answer)
		}
	}
	return texts
}

// preTokenize splits text with the Qwen3 regex, as the tokenizer will.
func preTokenize(re *regexp2.Regexp, text string, emit func(string)) {
	m, err := re.FindStringMatch(text)
	for err == nil && m != nil {
		emit(m.String())
		m, err = re.FindNextMatch(m)
	}
}

type symPair struct{ a, b int }

func buildOfflineTokenizer() []byte {
	re := regexp2.MustCompile(qwen3Pattern, regexp2.None)
	freq := map[string]int{}
	for _, t := range corpusTexts() {
		preTokenize(re, t, func(w string) { freq[w]++ })
	}
	words := make([]string, 0, len(freq))
	for w := range freq {
		words = append(words, w)
	}
	sort.Strings(words)

	// tokens[id] is the byte string of token id.
	tokens := make([]string, 256, 256+offlineMerges+128)
	for b := 0; b < 256; b++ {
		tokens[b] = string([]byte{byte(b)})
	}
	seqs := make([][]int, len(words))
	counts := make([]int, len(words))
	for i, w := range words {
		counts[i] = freq[w]
		for j := 0; j < len(w); j++ {
			seqs[i] = append(seqs[i], int(w[j]))
		}
	}
	pairCount := map[symPair]int{}
	where := map[symPair]map[int]bool{}
	addPairs := func(i, sign int) {
		s := seqs[i]
		for j := 0; j+1 < len(s); j++ {
			p := symPair{s[j], s[j+1]}
			pairCount[p] += sign * counts[i]
			if sign > 0 {
				if where[p] == nil {
					where[p] = map[int]bool{}
				}
				where[p][i] = true
			}
		}
	}
	for i := range seqs {
		addPairs(i, 1)
	}
	// A max-heap of (count, pair) with lazy deletion: an entry whose count
	// is no longer the pair's current count is skipped when popped.
	h := &pairHeap{tokens: &tokens}
	for p, n := range pairCount {
		h.push(pairEntry{n, p})
	}
	var merges []symPair
	for len(merges) < offlineMerges && len(h.items) > 0 {
		top := h.pop()
		if top.n != pairCount[top.p] {
			continue
		}
		if top.n < 2 {
			break
		}
		best := top.p
		id := len(tokens)
		tokens = append(tokens, tokens[best.a]+tokens[best.b])
		merges = append(merges, best)
		affected := make([]int, 0, len(where[best]))
		for i := range where[best] {
			affected = append(affected, i)
		}
		sort.Ints(affected)
		changed := map[symPair]bool{}
		for _, i := range affected {
			s := seqs[i]
			for j := 0; j+1 < len(s); j++ {
				changed[symPair{s[j], s[j+1]}] = true
			}
			addPairs(i, -1)
			seqs[i] = mergeSeq(seqs[i], best, id)
			addPairs(i, 1)
			s = seqs[i]
			for j := 0; j+1 < len(s); j++ {
				changed[symPair{s[j], s[j+1]}] = true
			}
		}
		delete(pairCount, best)
		delete(where, best)
		for p := range changed {
			if n := pairCount[p]; n > 0 {
				h.push(pairEntry{n, p})
			} else {
				delete(pairCount, p)
			}
		}
	}

	// Forced words: merge whatever pieces the learned merges leave, left to
	// right, until one token remains.
	index := map[string]int{}
	for id, t := range tokens {
		if _, dup := index[t]; !dup {
			index[t] = id
		}
	}
	for _, w := range forcedWords {
		pieces := applyMerges(w, merges)
		for len(pieces) > 1 {
			a, b := pieces[0], pieces[1]
			text := tokens[a] + tokens[b]
			id, ok := index[text]
			if !ok {
				id = len(tokens)
				tokens = append(tokens, text)
				index[text] = id
			}
			merges = append(merges, symPair{a, b})
			pieces = append([]int{id}, pieces[2:]...)
		}
	}
	// The judge's answers "10".."100" as single tokens (0..9 are bytes).
	for n := 10; n <= 100; n++ {
		s := strconv.Itoa(n)
		if _, ok := index[s]; !ok {
			index[s] = len(tokens)
			tokens = append(tokens, s)
		}
	}

	vocab := make(map[string]int, len(tokens))
	for id, t := range tokens {
		bl := byteLevelText(t)
		if _, dup := vocab[bl]; !dup {
			vocab[bl] = id
		}
	}
	mergeStrs := make([]string, len(merges))
	for i, m := range merges {
		mergeStrs[i] = byteLevelText(tokens[m.a]) + " " + byteLevelText(tokens[m.b])
	}
	added := make([]map[string]any, len(qwen3Added))
	for i, a := range qwen3Added {
		added[i] = map[string]any{"id": len(tokens) + i, "content": a.content, "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": false, "special": a.special}
	}
	doc := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer":   map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": qwen3Pattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		}},
		"post_processor": nil,
		"decoder":        map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": mergeStrs},
	}
	b, err := json.Marshal(doc)
	if err != nil {
		// Only plain maps, strings and numbers: Marshal cannot fail.
		return nil
	}
	return b
}

type pairEntry struct {
	n int
	p symPair
}

// pairHeap orders by count, most first, then by the pair's text, so that
// ties never depend on map order.
type pairHeap struct {
	items  []pairEntry
	tokens *[]string
}

func (h *pairHeap) less(i, j int) bool {
	a, b := h.items[i], h.items[j]
	if a.n != b.n {
		return a.n > b.n
	}
	return lessPair(*h.tokens, a.p, b.p)
}

func (h *pairHeap) push(e pairEntry) {
	h.items = append(h.items, e)
	for i := len(h.items) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		h.items[i], h.items[parent] = h.items[parent], h.items[i]
		i = parent
	}
}

func (h *pairHeap) pop() pairEntry {
	top := h.items[0]
	n := len(h.items) - 1
	h.items[0] = h.items[n]
	h.items = h.items[:n]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < n && h.less(l, small) {
			small = l
		}
		if r := l + 1; r < n && h.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		h.items[i], h.items[small] = h.items[small], h.items[i]
		i = small
	}
	return top
}

func lessPair(tokens []string, p, q symPair) bool {
	if tokens[p.a] != tokens[q.a] {
		return tokens[p.a] < tokens[q.a]
	}
	return tokens[p.b] < tokens[q.b]
}

func mergeSeq(s []int, p symPair, id int) []int {
	out := s[:0:0]
	for j := 0; j < len(s); j++ {
		if j+1 < len(s) && s[j] == p.a && s[j+1] == p.b {
			out = append(out, id)
			j++
			continue
		}
		out = append(out, s[j])
	}
	return out
}

// applyMerges runs the learned merges over one word in rank order, as BPE
// does, and returns the token ids left.
func applyMerges(w string, merges []symPair) []int {
	seq := make([]int, len(w))
	for i := 0; i < len(w); i++ {
		seq[i] = int(w[i])
	}
	for i, m := range merges {
		seq = mergeSeq(seq, m, 256+i)
	}
	return seq
}
