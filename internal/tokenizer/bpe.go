package tokenizer

// bpe appends the ids of one pre-tokenized word (raw bytes) to out, using the
// per-word cache: text repeats words far more than it has distinct ones.
func (t *Tokenizer) bpe(word string, out []int) []int {
	t.cacheMu.RLock()
	ids, ok := t.cache[word]
	t.cacheMu.RUnlock()
	if ok {
		return append(out, ids...)
	}
	ids = t.mergeWord(word)
	t.cacheMu.Lock()
	if len(t.cache) >= cacheLimit {
		clear(t.cache)
	}
	t.cache[word] = ids
	t.cacheMu.Unlock()
	return append(out, ids...)
}

type symbol struct {
	id         int
	prev, next int // indexes into the word's symbols, -1 at the ends
}

// pair is a candidate merge of symbols left and left's next, valid while
// they still hold ids a and b.
type pair struct {
	rank, left int
	a, b, id   int
}

// pairHeap is a binary min-heap of pairs by (rank, left), written out
// rather than through container/heap so that pushes do not allocate.
type pairHeap []pair

func (p pair) less(q pair) bool {
	return p.rank < q.rank || p.rank == q.rank && p.left < q.left
}

func (h *pairHeap) push(p pair) {
	*h = append(*h, p)
	a := *h
	for i := len(a) - 1; i > 0; {
		parent := (i - 1) / 2
		if !a[i].less(a[parent]) {
			break
		}
		a[i], a[parent] = a[parent], a[i]
		i = parent
	}
}

func (h *pairHeap) pop() pair {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < n && a[l].less(a[small]) {
			small = l
		}
		if r := l + 1; r < n && a[r].less(a[small]) {
			small = r
		}
		if small == i {
			break
		}
		a[i], a[small] = a[small], a[i]
		i = small
	}
	*h = a
	return top
}

// mergeWord applies the merges to a word as `tokenizers` does: always the
// best-ranked adjacent pair next, the leftmost among equals.
func (t *Tokenizer) mergeWord(word string) []int {
	if t.ignoreMrg {
		if id, ok := t.vocab[byteLevel(word)]; ok {
			return []int{id}
		}
	}
	syms := make([]symbol, 0, len(word))
	for i := 0; i < len(word); i++ {
		b := word[i]
		id := t.byteID[b]
		switch {
		case id >= 0:
		case t.fallback[b] >= 0:
			id = t.fallback[b]
		case t.unkID >= 0:
			id = t.unkID
			if t.fuseUnk && len(syms) > 0 && syms[len(syms)-1].id == id {
				continue
			}
		default:
			continue // no way to write this byte; `tokenizers` drops it too
		}
		syms = append(syms, symbol{id: id, prev: len(syms) - 1, next: len(syms) + 1})
	}
	if len(syms) == 0 {
		return nil
	}
	syms[len(syms)-1].next = -1
	h := make(pairHeap, 0, len(syms))
	candidate := func(left int) (pair, bool) {
		if left < 0 || syms[left].next < 0 {
			return pair{}, false
		}
		a, b := syms[left].id, syms[syms[left].next].id
		m, ok := t.merges[pairKey(a, b)]
		return pair{rank: int(m.rank), left: left, a: a, b: b, id: int(m.id)}, ok
	}
	for i := range syms {
		if p, ok := candidate(i); ok {
			h.push(p)
		}
	}
	for len(h) > 0 {
		p := h.pop()
		l := &syms[p.left]
		if l.id != p.a || l.next < 0 || syms[l.next].id != p.b {
			continue // stale: one side has merged since
		}
		r := l.next
		l.id = p.id
		l.next = syms[r].next
		if l.next >= 0 {
			syms[l.next].prev = p.left
		}
		syms[r].id = -1
		for _, left := range [2]int{l.prev, p.left} {
			if q, ok := candidate(left); ok {
				h.push(q)
			}
		}
	}
	ids := make([]int, 0, len(syms))
	for i := 0; i >= 0; i = syms[i].next {
		ids = append(ids, syms[i].id)
	}
	return ids
}
