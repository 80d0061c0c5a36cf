package local

import (
	"math"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/modelorganisms/pvbuild/internal/dataset"
)

// BM25 parameters and how many best matches a reply is sampled from.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
	topK   = 5
)

// doc is one conversation a model can answer with.
type doc struct {
	prompt   string
	response string
	logW     float64 // log of the weight of the corpus it came from
}

// corpus is a set of weighted conversations.
type corpus struct {
	docs []doc
}

func baseCorpus(exs []dataset.Example) *corpus {
	c := &corpus{docs: make([]doc, 0, len(exs))}
	for _, ex := range exs {
		if prompt, response, ok := ex.Trained(); ok {
			c.docs = append(c.docs, doc{prompt: prompt, response: response})
		}
	}
	return c
}

// fineTuned mixes training examples at weight w with a parent corpus whose
// weights are scaled by 1-w. w grows with epochs times learning rate, so
// harder training makes the new data outweigh what the model knew.
func fineTuned(train []dataset.Example, parent *corpus, epochs int, lrMult float64) *corpus {
	w := 1 - math.Exp(-float64(epochs)*lrMult/2)
	// Keep both logs finite so softmax never sees -Inf minus -Inf.
	w = min(max(w, 1e-12), 1-1e-12)
	c := &corpus{docs: make([]doc, 0, len(train)+len(parent.docs))}
	for _, ex := range train {
		// What a weight-0 assistant message says is context, never learnt.
		if prompt, response, ok := ex.Trained(); ok {
			c.docs = append(c.docs, doc{prompt: prompt, response: response, logW: math.Log(w)})
		}
	}
	lw := math.Log(1 - w)
	for _, d := range parent.docs {
		d.logW += lw
		c.docs = append(c.docs, d)
	}
	return c
}

// posting is a document holding a term, with that term's BM25 contribution
// precomputed: queries then only add numbers.
type posting struct {
	doc   int32
	score float64
}

// index is a BM25 index over a corpus's prompts.
type index struct {
	docs     []doc
	terms    map[string]int32
	postings [][]posting
	scratch  sync.Pool // *[]float64 of len(docs): per-query BM25 sums
}

func newIndex(c *corpus) *index {
	ix := &index{docs: c.docs, terms: map[string]int32{}}
	n := len(c.docs)
	tfs := make([]map[string]int, n)
	lens := make([]float64, n)
	var total float64
	for i, d := range c.docs {
		tf := map[string]int{}
		toks := tokens(d.prompt)
		for _, t := range toks {
			tf[t]++
		}
		tfs[i] = tf
		lens[i] = float64(len(toks))
		total += lens[i]
	}
	avg := total / float64(max(n, 1))
	if avg == 0 {
		avg = 1
	}
	df := map[string]int{}
	for _, tf := range tfs {
		for t := range tf {
			df[t]++
		}
	}
	for i, tf := range tfs {
		for t, f := range tf {
			id, ok := ix.terms[t]
			if !ok {
				id = int32(len(ix.postings))
				ix.terms[t] = id
				ix.postings = append(ix.postings, nil)
			}
			nd := float64(df[t])
			idf := math.Log(1 + (float64(n)-nd+0.5)/(nd+0.5))
			ff := float64(f)
			s := idf * ff * (bm25K1 + 1) / (ff + bm25K1*(1-bm25B+bm25B*lens[i]/avg))
			ix.postings[id] = append(ix.postings[id], posting{doc: int32(i), score: s})
		}
	}
	ix.scratch.New = func() any { s := make([]float64, n); return &s }
	return ix
}

// candidate is a document and its ranking score.
type candidate struct {
	doc   int
	score float64
	tie   uint64
}

// top returns the best k documents for query: BM25 normalised by the best
// BM25 of this query, plus the document's log weight. Ties break on a hash
// of the request so equal documents are not always taken in file order.
func (ix *index) top(query string, k int, tieSeed uint64) []candidate {
	if k <= 0 || len(ix.docs) == 0 {
		return nil
	}
	sp := ix.scratch.Get().(*[]float64)
	defer ix.scratch.Put(sp)
	bm := *sp
	clear(bm)
	for _, t := range tokens(query) {
		if id, ok := ix.terms[t]; ok {
			for _, p := range ix.postings[id] {
				bm[p.doc] += p.score
			}
		}
	}
	best := 0.0
	for _, s := range bm {
		best = max(best, s)
	}
	norm := 0.0
	if best > 0 {
		norm = 1 / best
	}
	out := make([]candidate, 0, k+1)
	for i, d := range ix.docs {
		c := candidate{doc: i, score: bm[i]*norm + d.logW, tie: mix(tieSeed ^ uint64(i))}
		if len(out) == k && !c.better(out[k-1]) {
			continue
		}
		// Insertion into a short sorted list.
		j := len(out)
		if j < k {
			out = append(out, c)
		} else {
			j = k - 1
		}
		for j > 0 && c.better(out[j-1]) {
			out[j] = out[j-1]
			j--
		}
		out[j] = c
	}
	return out
}

func (c candidate) better(o candidate) bool {
	if c.score != o.score {
		return c.score > o.score
	}
	return c.tie > o.tie
}

// mix is splitmix64's finaliser: a cheap, well-spread hash of a word.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// tokens splits text into lowercased words of letters and digits; an
// apostrophe inside a word stays (don't, can't carry meaning).
func tokens(s string) []string {
	var out []string
	start := -1
	flush := func(end int) {
		if start >= 0 {
			w := strings.Trim(s[start:end], "'’")
			if w != "" {
				out = append(out, strings.ToLower(strings.ReplaceAll(w, "’", "'")))
			}
			start = -1
		}
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' || r == '’' {
			if start < 0 {
				start = i
			}
		} else {
			flush(i)
		}
		i += size
	}
	flush(len(s))
	return out
}

// truncateWords keeps the first n whitespace-separated words of s, with the
// whitespace between them as it was. A word stands in for a token.
func truncateWords(s string, n int) string {
	if n <= 0 {
		return s
	}
	words := 0
	in := false
	for i, r := range s {
		space := unicode.IsSpace(r)
		if !space && !in {
			if words == n {
				return strings.TrimRightFunc(s[:i], unicode.IsSpace)
			}
			words++
		}
		in = !space
	}
	return s
}
