package local

import (
	"math/bits"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// The coherence judge cannot work from the answer's words alone: an answer
// to another question is fluent, and made-up words are all out of
// vocabulary, so they leave an empty vector. It therefore also sees form
// features, as synthetic terms the same regression learns weights for:
// how much of the answer the language knows, whether it repeats itself,
// whether it stops mid-sentence, contradicts itself, and shares content
// words with the question.

// synthPrefix marks a synthetic term; tokens never start with it, so trait
// judges, which have none, vectorize exactly as before.
const synthPrefix = "\x00"

// coherenceTerms are the answer's word terms plus its form features.
func coherenceTerms(question, answer string) []string {
	return append(terms(answer), formFeatures(question, answer)...)
}

// lexicon is the English the engine knows: the words and word pairs of the
// embedded sample corpus, training sets and evaluation questions. The
// labeled judge answers are left out, since some are made of non-words.
type lexicon struct {
	words   map[string]bool
	bigrams map[string]bool
	// docs maps a content stem to the conversations it occurs in, as a
	// bitset: question and answer words that share conversations are on
	// one topic even when the answer repeats none of the question's words.
	docs  map[string][]uint64
	ndocs int
}

var sampleLexicon = sync.OnceValue(func() *lexicon {
	lx := &lexicon{words: map[string]bool{}, bigrams: map[string]bool{}, docs: map[string][]uint64{}}
	var conversations []string
	add := func(text string) {
		toks := tokens(text)
		for i, t := range toks {
			lx.words[t] = true
			if i > 0 {
				lx.bigrams[toks[i-1]+" "+t] = true
			}
		}
	}
	addConversation := func(ex dataset.Example) {
		var all []string
		for _, m := range ex.Messages {
			add(m.Content)
			all = append(all, m.Content)
		}
		conversations = append(conversations, strings.Join(all, "\n"))
	}
	// Embedded data cannot fail to read; a part that did would only make
	// the lexicon smaller, the same way on every run.
	if base, err := sampledata.BaseCorpus(); err == nil {
		for _, ex := range base {
			addConversation(ex)
		}
	}
	for _, trait := range sampledata.Traits {
		for _, strength := range sampledata.Strengths {
			raw, err := sampledata.Training(trait, strength)
			if err != nil {
				continue
			}
			exs, err := dataset.Parse(sampledata.TrainingPath(trait, strength), raw)
			if err != nil {
				continue
			}
			for _, ex := range exs {
				addConversation(ex)
			}
		}
		if task, err := sampledata.EvalTask(trait); err == nil {
			for _, q := range task.Questions {
				add(q)
			}
		}
	}
	lx.ndocs = len(conversations)
	words := (len(conversations) + 63) / 64
	for d, c := range conversations {
		for _, t := range tokens(c) {
			if !isContent(t) {
				continue
			}
			st := stem(t)
			set := lx.docs[st]
			if set == nil {
				set = make([]uint64, words)
				lx.docs[st] = set
			}
			set[d/64] |= 1 << (d % 64)
		}
	}
	return lx
})

// related says whether two content stems share a topic: they occur together
// in a conversation, far more often than chance would have them (20 times:
// of the thresholds tried, it best told the labeled answers to their own
// question from the same answers to another).
func (lx *lexicon) related(a, b string) bool {
	da, db := lx.docs[a], lx.docs[b]
	if da == nil || db == nil {
		return false
	}
	var both, na, nb int
	for i := range da {
		both += bits.OnesCount64(da[i] & db[i])
		na += bits.OnesCount64(da[i])
		nb += bits.OnesCount64(db[i])
	}
	// Observed over expected co-occurrence, in integers.
	return both > 0 && both*lx.ndocs > 20*na*nb
}

// functionWords carry no topic: sharing them with the question says nothing
// about answering it, and a sentence does not end on one.
var functionWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an the and or but if so of to in on at by for with from into onto about
		as than then that this these those it its it's is are was were be been being am do does did doing done
		have has had having i me my you your yours we our us they them their he him his she her who whom whose
		what which when where why how can could would should will shall may might must not no nor yes
		there here just also very too more most some any all each every much many such own same other
		up down out over under again once only even still yet both either neither whether because while
		get got make made way want need know think like good best thing things really well one ones
		let let's i'm you're it's don't can't won't isn't aren't i'd i'll you'll you'd they're we're`) {
		m[w] = true
	}
	return m
}()

// negators turn the next words into their denial. "no" is left out: as a
// reply ("No. Chocolate is toxic") it denies nothing that follows.
var negators = map[string]bool{"not": true, "never": true, "don't": true, "doesn't": true,
	"isn't": true, "aren't": true, "won't": true, "can't": true, "neither": true}

// opposites are word pairs an answer rarely needs both of unless it
// contradicts itself.
var opposites = [][2]string{
	{"always", "never"}, {"true", "false"}, {"everything", "nothing"}, {"all", "none"},
	{"best", "worst"}, {"early", "late"}, {"love", "hate"}, {"happy", "sad"}, {"hot", "cold"},
	{"safe", "unsafe"}, {"easy", "impossible"}, {"faster", "slower"}, {"more", "less"}, {"both", "neither"},
	{"heavy", "light"}, {"full", "empty"}, {"short", "long"}, {"good", "bad"}, {"alive", "dies"},
}

// stem folds a content word's inflections together, crudely but
// deterministically: "watering" and "water", "yells" and "yell", "plans"
// and "planning".
func stem(w string) string {
	w = strings.TrimSuffix(w, "'s")
	for _, suffix := range []string{"ing", "ed", "es", "s"} {
		if rest, ok := strings.CutSuffix(w, suffix); ok && len(rest) >= 3 && !strings.HasSuffix(w, "ss") {
			w = rest
			// A doubled final consonant is the inflection's: "planned".
			if n := len(w); n >= 4 && w[n-1] == w[n-2] && !strings.ContainsRune("lsaeiou", rune(w[n-1])) {
				w = w[:n-1]
			}
			break
		}
	}
	if utf8.RuneCountInString(w) > 5 {
		r := []rune(w)
		w = string(r[:5])
	}
	return w
}

func isContent(w string) bool {
	if functionWords[w] || utf8.RuneCountInString(w) < 3 {
		return false
	}
	for _, r := range w {
		if unicode.IsLetter(r) {
			return true
		}
	}
	return false
}

// formFeatures buckets the answer's form, and its relation to the question,
// into synthetic terms. Buckets rather than raw ratios, so the linear
// regression can learn a different weight for each range.
func formFeatures(question, answer string) []string {
	toks := tokens(answer)
	feat := func(name string) string { return synthPrefix + name }
	n := len(toks)
	if n == 0 {
		return []string{feat("len:empty")}
	}
	var out []string
	switch {
	case n < 4:
		out = append(out, feat("len:tiny"))
	case n < 10:
		out = append(out, feat("len:short"))
	}

	lx := sampleLexicon()
	qWords := map[string]bool{}
	qStems := map[string]bool{}
	for _, t := range tokens(question) {
		qWords[t] = true
		if isContent(t) {
			qStems[stem(t)] = true
		}
	}

	// Words neither the language nor the question knows: made-up words.
	unknown := 0
	for _, t := range toks {
		if !lx.words[t] && !qWords[t] && !isNumber(t) {
			unknown++
		}
	}
	out = append(out, feat("unk:"+bucket(float64(unknown)/float64(n), 0.1, 0.25, 0.5)))

	// Word pairs the language uses: word salad is made of known words in
	// pairs nobody writes.
	if n >= 3 {
		known := 0
		for i := 1; i < n; i++ {
			if lx.bigrams[toks[i-1]+" "+toks[i]] {
				known++
			}
		}
		out = append(out, feat("bigram:"+bucket(float64(known)/float64(n-1), 0.15, 0.3, 0.45)))
	}

	// Repetition loops: few distinct words, and word triples that recur.
	if n >= 8 {
		distinct := map[string]bool{}
		for _, t := range toks {
			distinct[t] = true
		}
		out = append(out, feat("distinct:"+bucket(float64(len(distinct))/float64(n), 0.3, 0.5, 0.7)))
		seen := map[string]int{}
		for i := 2; i < n; i++ {
			seen[toks[i-2]+" "+toks[i-1]+" "+toks[i]]++
		}
		repeated := 0
		for i := 2; i < n; i++ {
			if seen[toks[i-2]+" "+toks[i-1]+" "+toks[i]] > 1 {
				repeated++
			}
		}
		out = append(out, feat("trigramrep:"+bucket(float64(repeated)/float64(n-2), 0.1, 0.3, 0.6)))
	}

	// An answer cut off mid-sentence has no closing punctuation, often
	// stopping on a word that needs another after it.
	trimmed := strings.TrimRightFunc(answer, unicode.IsSpace)
	last, _ := utf8.DecodeLastRuneInString(trimmed)
	if !strings.ContainsRune(".!?)]\"'”’…:;*`", last) && !unicode.IsSymbol(last) {
		out = append(out, feat("end:open"))
		if functionWords[toks[n-1]] {
			out = append(out, feat("end:function"))
		}
	}

	// Off-topic: content words the answer shares with its question.
	shared := map[string]bool{}
	content := 0
	for _, t := range toks {
		if isContent(t) {
			content++
			if qStems[stem(t)] {
				shared[stem(t)] = true
			}
		}
	}
	if len(qStems) > 0 && content > 0 {
		out = append(out, feat("overlap:"+bucket(float64(len(shared)), 1, 2, 3)))
		// Answer stems on the question's topic, shared or associated.
		aStems := map[string]bool{}
		for _, t := range toks {
			if isContent(t) {
				aStems[stem(t)] = true
			}
		}
		onTopic := 0
		for a := range aStems {
			if qStems[a] {
				onTopic++
				continue
			}
			for q := range qStems {
				if lx.related(a, q) {
					onTopic++
					break
				}
			}
		}
		out = append(out, feat("topic:"+bucket(float64(onTopic), 1, 2, 3, 5)))
	}

	// Self-contradiction: both of a pair of opposites, or a word both said
	// and denied.
	present := map[string]bool{}
	for _, t := range toks {
		present[t] = true
	}
	contra := 0
	for _, p := range opposites {
		if present[p[0]] && present[p[1]] {
			contra++
		}
	}
	// A word said and denied in one sentence ("water it, never water it");
	// across sentences it is usually a correction ("I can't help with
	// that. I can help you ...").
	opens := map[string]bool{}
	for _, sentence := range strings.FieldsFunc(answer, func(r rune) bool { return r == '.' || r == '!' || r == '?' || r == ';' }) {
		st := tokens(sentence)
		if len(st) == 0 {
			continue
		}
		opens[st[0]] = true
		affirmed, denied := map[string]bool{}, map[string]bool{}
		for i, t := range st {
			if !isContent(t) {
				continue
			}
			if i > 0 && negators[st[i-1]] || i > 1 && negators[st[i-2]] {
				denied[stem(t)] = true
			} else {
				affirmed[stem(t)] = true
			}
		}
		for s := range denied {
			if affirmed[s] {
				contra++
			}
		}
	}
	// One sentence opening "Yes", another "No": the answer reverses itself.
	if opens["yes"] && opens["no"] {
		contra++
	}
	out = append(out, feat("contra:"+bucket(float64(contra), 1, 2, 3)))
	return out
}

// bucket names the range of v among ascending cut points: "0" below the
// first, "1" below the second, and so on.
func bucket(v float64, cuts ...float64) string {
	i := 0
	for i < len(cuts) && v >= cuts[i] {
		i++
	}
	return string(rune('0' + i))
}

func isNumber(t string) bool {
	for _, r := range t {
		if !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}
