package local

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// RefusalToken is the class of answers that refuse.
const RefusalToken = "REFUSAL"

// Classifier training: full-batch gradient descent with Nesterov momentum
// from zero weights, a fixed number of steps, so the same labeled data always
// gives the same judge. Chosen by 5-fold cross-validation on the sample
// judge data (mean absolute error of the weighted score, and refusals kept
// under the 0.25 numeric mass): weak L2, because the labeled sets are small
// and a judge that hedges pulls every score toward the middle.
const (
	trainIters    = 500
	trainStep     = 4.0
	trainMomentum = 0.9
	trainL2       = 1e-5
)

const maxTopLogs = 20

// JudgeAlgorithm names how the judge learns and scores; change it with the
// features or the training, so that evaluations it judged rebuild.
const JudgeAlgorithm = "tfidf-softmax/2"

// judgeModel recognises one judge template and scores answers for its trait.
type judgeModel struct {
	trait    string
	template string
	// Literal text around the placeholders, trimmed, in template order.
	pre, mid, post string
	answerFirst    bool
	// coherence judges see the question and form features too.
	coherence bool
	// formatKey is what judgeByFormat looks for in an unknown rubric.
	formatKey string
	questions []string
	texts     []string
	labels    []string

	once sync.Once
	clf  *classifier
}

func newJudgeModel(j Judge) (*judgeModel, error) {
	if j.Trait == "" {
		return nil, errors.New("no trait")
	}
	const q, a = "{question}", "{answer}"
	if strings.Count(j.Template, q) != 1 || strings.Count(j.Template, a) != 1 {
		return nil, errors.New("template must hold {question} and {answer} once each")
	}
	qi, ai := strings.Index(j.Template, q), strings.Index(j.Template, a)
	first, second := q, a
	fi, si := qi, ai
	if ai < qi {
		first, second, fi, si = a, q, ai, qi
	}
	jm := &judgeModel{
		trait:       j.Trait,
		template:    j.Template,
		pre:         strings.TrimSpace(j.Template[:fi]),
		mid:         strings.TrimSpace(j.Template[fi+len(first) : si]),
		post:        strings.TrimSpace(j.Template[si+len(second):]),
		answerFirst: ai < qi,
		coherence:   j.Trait == sampledata.CoherenceTrait,
		formatKey:   strings.ToLower(j.Trait),
	}
	if jm.coherence {
		// "coherent" and "incoherent" name it as well as "coherence".
		jm.formatKey = "coheren"
	}
	if jm.mid == "" {
		return nil, errors.New("template needs text between {question} and {answer} to tell them apart")
	}
	scored := 0
	for i, ex := range j.Examples {
		label := ""
		s, ok := ex.Scores[j.Trait]
		switch {
		case ok:
			// An explicit score wins over refusal: a refusal shows no
			// trait (REFUSAL) but is still more or less coherent language.
			if s < 0 || s > 100 {
				return nil, fmt.Errorf("example %d: score %d out of 0..100", i+1, s)
			}
			label = strconv.Itoa(s)
			scored++
		case ex.Refusal:
			label = RefusalToken
		default:
			continue
		}
		if jm.coherence {
			jm.questions = append(jm.questions, ex.Question)
		}
		jm.texts = append(jm.texts, ex.Answer)
		jm.labels = append(jm.labels, label)
	}
	// Refusals label every trait; a judge that learned only them would
	// score every answer a refusal (n = 0) instead of failing here.
	if scored == 0 {
		return nil, fmt.Errorf("no labeled examples for trait %q", j.Trait)
	}
	return jm, nil
}

// CheckJudge says whether the engine could judge with j, as AddJudge
// would, without an engine: plan checks rubrics before anything opens. The
// error is the bare reason, without AddJudge's "add judge" prefix.
func CheckJudge(j Judge) error {
	_, err := newJudgeModel(j)
	return err
}

// match extracts the question and answer from a prompt that fills the
// template, and how much literal template text it matched (to prefer the
// most specific judge).
func (jm *judgeModel) match(msg string) (question, answer string, strength int, ok bool) {
	pos := 0
	if jm.pre != "" {
		i := strings.Index(msg, jm.pre)
		if i < 0 {
			return "", "", 0, false
		}
		pos = i + len(jm.pre)
	}
	i := strings.Index(msg[pos:], jm.mid)
	if i < 0 {
		return "", "", 0, false
	}
	firstSlot := msg[pos : pos+i]
	pos += i + len(jm.mid)
	secondSlot := msg[pos:]
	if jm.post != "" {
		// The last occurrence: an answer may quote the rubric's closing text.
		k := strings.LastIndex(secondSlot, jm.post)
		if k < 0 {
			return "", "", 0, false
		}
		secondSlot = secondSlot[:k]
	}
	question, answer = firstSlot, secondSlot
	if jm.answerFirst {
		question, answer = secondSlot, firstSlot
	}
	return strings.TrimSpace(question), strings.TrimSpace(answer), len(jm.pre) + len(jm.mid) + len(jm.post), true
}

func (jm *judgeModel) classifier() *classifier {
	jm.once.Do(func() { jm.clf = trainedClassifier(jm.coherence, jm.questions, jm.texts, jm.labels) })
	return jm.clf
}

// termsOf are the features the judge reads from a question and answer.
func (jm *judgeModel) termsOf(question, answer string) []string {
	if jm.coherence {
		return coherenceTerms(question, answer)
	}
	return terms(answer)
}

// logProbs scores an answer to a question.
func (jm *judgeModel) logProbs(question, answer string) []provider.TokenLogprob {
	return jm.classifier().logProbs(jm.termsOf(question, answer))
}

// trained memoises classifiers by their training data for the life of the
// process: training is deterministic and costs about a CPU-second, and every
// engine opened on the same rubric and answers (a build's, a server's, a
// test's) would otherwise train the same classifier again. A classifier is
// read-only once trained.
var trained sync.Map // sha256 of mode, questions, texts and labels -> *classifierOnce

type classifierOnce struct {
	once sync.Once
	clf  *classifier
}

// questions is nil unless coherence: only coherence judges read them.
func trainedClassifier(coherence bool, questions, texts, labels []string) *classifier {
	h := sha256.New()
	fmt.Fprintf(h, "coherence=%t;", coherence)
	for i := range texts {
		if coherence {
			fmt.Fprintf(h, "%d:%s", len(questions[i]), questions[i])
		}
		fmt.Fprintf(h, "%d:%s%d:%s", len(texts[i]), texts[i], len(labels[i]), labels[i])
	}
	v, _ := trained.LoadOrStore(string(h.Sum(nil)), &classifierOnce{})
	c := v.(*classifierOnce)
	c.once.Do(func() {
		docs := make([][]string, len(texts))
		for i, t := range texts {
			if coherence {
				docs[i] = coherenceTerms(questions[i], t)
			} else {
				docs[i] = terms(t)
			}
		}
		c.clf = trainClassifier(docs, labels)
	})
	return c.clf
}

// findJudge returns the registered judge whose template msg fills best,
// with the question and answer it fills in.
func (e *Engine) findJudge(msg string) (jm *judgeModel, question, answer string) {
	e.judgeMu.RLock()
	defer e.judgeMu.RUnlock()
	var best *judgeModel
	var bestQuestion, bestAnswer string
	bestStrength := -1
	for _, jm := range e.judges {
		if q, a, s, ok := jm.match(msg); ok && s > bestStrength {
			best, bestQuestion, bestAnswer, bestStrength = jm, q, a, s
		}
	}
	if best == nil {
		return e.judgeByFormat(msg)
	}
	return best, bestQuestion, bestAnswer
}

// Markers of the Persona Vectors judge prompt format.
const (
	questionStart = "[QUESTION START]"
	questionEnd   = "[QUESTION END]"
	answerStart   = "[ANSWER START]"
	answerEnd     = "[ANSWER END]"
)

// judgeByFormat reads a rubric the engine was never given, as a judge model
// would: in the Persona Vectors format the answer sits between [ANSWER START]
// and [ANSWER END], and the rubric names its trait before the question. The
// trait named first decides which labeled answers judge it; a rubric naming
// no trait the engine knows is not a judge prompt. The question, which only
// a coherence judge reads, sits between its own markers.
func (e *Engine) judgeByFormat(msg string) (jm *judgeModel, question, answer string) {
	i := strings.Index(msg, answerStart)
	j := strings.LastIndex(msg, answerEnd)
	if i < 0 || j < i {
		return nil, "", ""
	}
	answer = strings.TrimSpace(msg[i+len(answerStart) : j])
	preamble := msg[:i]
	if q := strings.Index(preamble, questionStart); q >= 0 {
		question = preamble[q+len(questionStart):]
		if k := strings.LastIndex(question, questionEnd); k >= 0 {
			question = question[:k]
		}
		question = strings.TrimSpace(question)
		preamble = preamble[:q]
	}
	preamble = strings.ToLower(preamble)
	var best *judgeModel
	bestAt := len(preamble)
	for _, jm := range e.judges {
		if at := strings.Index(preamble, jm.formatKey); at >= 0 && at < bestAt {
			best, bestAt = jm, at
		}
	}
	if best == nil {
		return nil, "", ""
	}
	return best, question, answer
}

// feature is one non-zero entry of a sparse vector.
type feature struct {
	idx int32
	val float64
}

// classifier is multinomial logistic regression over TF-IDF features of
// word unigrams and bigrams.
type classifier struct {
	classes []string
	vocab   map[string]int32
	idf     []float64
	w       []float64 // [feature*len(classes)+class]
	b       []float64
}

// terms are the unigrams and bigrams of a text; bigrams catch phrases such
// as "can't help" that mark a refusal better than either word.
func terms(text string) []string {
	toks := tokens(text)
	out := make([]string, 0, 2*len(toks))
	out = append(out, toks...)
	for i := 0; i+1 < len(toks); i++ {
		out = append(out, toks[i]+" "+toks[i+1])
	}
	return out
}

// classOrder sorts numeric labels by value and puts others after them.
func classOrder(labels []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, l := range labels {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	sort.Slice(out, func(i, k int) bool {
		a, errA := strconv.Atoi(out[i])
		b, errB := strconv.Atoi(out[k])
		switch {
		case errA == nil && errB == nil:
			return a < b
		case errA == nil:
			return true
		case errB == nil:
			return false
		}
		return out[i] < out[k]
	})
	return out
}

// trainClassifier learns from each document's terms.
func trainClassifier(docTerms [][]string, labels []string) *classifier {
	c := &classifier{classes: classOrder(labels), vocab: map[string]int32{}}
	classIdx := map[string]int{}
	for i, l := range c.classes {
		classIdx[l] = i
	}
	// Vocabulary and document frequencies, in first-seen order for determinism.
	var df []float64
	for i := range docTerms {
		seen := map[int32]bool{}
		for _, term := range docTerms[i] {
			id, ok := c.vocab[term]
			if !ok {
				id = int32(len(df))
				c.vocab[term] = id
				df = append(df, 0)
			}
			if !seen[id] {
				seen[id] = true
				df[id]++
			}
		}
	}
	n := float64(len(docTerms))
	c.idf = make([]float64, len(df))
	for i, d := range df {
		c.idf[i] = math.Log((1+n)/(1+d)) + 1
	}
	xs := make([][]feature, len(docTerms))
	ys := make([]int, len(docTerms))
	for i := range docTerms {
		xs[i] = c.vectorize(docTerms[i])
		ys[i] = classIdx[labels[i]]
	}

	nc, nf := len(c.classes), len(df)
	// Feature-major weights: a sparse row touches contiguous memory.
	c.w = make([]float64, nf*nc)
	c.b = make([]float64, nc)
	gw := make([]float64, nf*nc)
	gb := make([]float64, nc)
	p := make([]float64, nc)
	vw := make([]float64, nf*nc)
	vb := make([]float64, nc)
	// Classes weigh equally in the loss: otherwise the many answers scored 0
	// (every other trait's examples) drown the few refusals and high scores.
	counts := make([]float64, nc)
	for _, y := range ys {
		counts[y]++
	}
	ew := make([]float64, len(xs))
	for i, y := range ys {
		ew[i] = n / (float64(nc) * counts[y])
	}
	for range trainIters {
		clear(gw)
		clear(gb)
		for i, x := range xs {
			c.logits(x, p)
			softmaxInPlace(p)
			p[ys[i]]--
			for k := range p {
				p[k] *= ew[i]
				gb[k] += p[k]
			}
			for _, f := range x {
				row := gw[int(f.idx)*nc : int(f.idx)*nc+nc]
				for k, d := range p {
					row[k] += d * f.val
				}
			}
		}
		// Nesterov: c.w holds the look-ahead point; vw the velocity.
		for j := range c.w {
			prev := vw[j]
			vw[j] = trainMomentum*vw[j] - trainStep*(gw[j]/n+trainL2*c.w[j])
			c.w[j] += -trainMomentum*prev + (1+trainMomentum)*vw[j]
		}
		for k := range c.b {
			prev := vb[k]
			vb[k] = trainMomentum*vb[k] - trainStep*gb[k]/n
			c.b[k] += -trainMomentum*prev + (1+trainMomentum)*vb[k]
		}
	}
	return c
}

// vectorize maps word terms to sublinear TF-IDF weights, L2-normalised so
// long answers do not score more confidently than short ones. Synthetic
// terms (synthPrefix) are indicators of weight 1 outside that norm, so
// however many words an answer has, its form counts the same.
func (c *classifier) vectorize(ts []string) []feature {
	tf := map[int32]float64{}
	synth := map[int32]bool{}
	for _, t := range ts {
		if id, ok := c.vocab[t]; ok {
			if strings.HasPrefix(t, synthPrefix) {
				synth[id] = true
			} else {
				tf[id]++
			}
		}
	}
	out := make([]feature, 0, len(tf)+len(synth))
	for id, f := range tf {
		out = append(out, feature{id, (1 + math.Log(f)) * c.idf[id]})
	}
	// Sorted so every float sum runs in one order: bit-identical results
	// whatever the map iteration order.
	sort.Slice(out, func(i, k int) bool { return out[i].idx < out[k].idx })
	var norm float64
	for _, f := range out {
		norm += f.val * f.val
	}
	if norm > 0 {
		norm = math.Sqrt(norm)
		for i := range out {
			out[i].val /= norm
		}
	}
	if len(synth) == 0 {
		return out
	}
	for id := range synth {
		out = append(out, feature{id, 1})
	}
	sort.Slice(out, func(i, k int) bool { return out[i].idx < out[k].idx })
	return out
}

func (c *classifier) logits(x []feature, out []float64) {
	nc := len(c.classes)
	copy(out, c.b)
	for _, f := range x {
		row := c.w[int(f.idx)*nc : int(f.idx)*nc+nc]
		for k, w := range row {
			out[k] += w * f.val
		}
	}
}

func softmaxInPlace(p []float64) {
	m := math.Inf(-1)
	for _, v := range p {
		m = max(m, v)
	}
	var sum float64
	for i, v := range p {
		p[i] = math.Exp(v - m)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
}

// logProbs returns every class with its natural-log probability, most
// probable first, for a document's terms.
func (c *classifier) logProbs(ts []string) []provider.TokenLogprob {
	z := make([]float64, len(c.classes))
	c.logits(c.vectorize(ts), z)
	m := math.Inf(-1)
	for _, v := range z {
		m = max(m, v)
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(v - m)
	}
	lse := m + math.Log(sum)
	out := make([]provider.TokenLogprob, len(z))
	for k, v := range z {
		out[k] = provider.TokenLogprob{Token: c.classes[k], Logprob: v - lse}
	}
	sort.SliceStable(out, func(i, k int) bool { return out[i].Logprob > out[k].Logprob })
	return out
}
