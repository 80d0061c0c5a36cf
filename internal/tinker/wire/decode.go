package wire

import (
	"encoding/binary"
	"math"
	"sort"
	"strings"

	"google.golang.org/protobuf/proto"
)

// maxEmptyDatums bounds the datums a result may claim without carrying any
// field bytes: a few bytes of varint must not make us allocate millions of
// empty records.
const maxEmptyDatums = 1 << 20

// Array is one per-datum output tensor, widened as the SDK does: BF16
// becomes float32 and INT32 becomes int64, so exactly one of Float32 and
// Int64 is used.
type Array struct {
	DType   string // "float32" or "int64"
	Shape   []int64
	Float32 []float32
	Int64   []int64
}

// ForwardBackwardResult is ForwardBackwardOutput as the SDK 0.25.0 decoder
// returns it.
type ForwardBackwardResult struct {
	// LossFnOutputType is the bare class name ("ArrayRecord"); a
	// "module:Class" value is cut after its last ':'.
	LossFnOutputType string
	// LossFnOutputs has one map per datum, in request order, across all
	// ArrayRecords of the message.
	LossFnOutputs []map[string]Array
	// Metrics are keyed "<name>:<reduction>", e.g. "loss:sum".
	Metrics map[string]float64
}

type fieldChunk struct {
	dtype    DType
	trailing []int64
	datums   [][]byte // raw bytes per datum
}

// DecodeForwardBackwardOutput decodes a protobuf ForwardBackwardOutput.
func DecodeForwardBackwardOutput(b []byte) (*ForwardBackwardResult, error) {
	var m ForwardBackwardOutput
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, malformed("ForwardBackwardOutput: %v", err)
	}
	res := &ForwardBackwardResult{Metrics: make(map[string]float64, len(m.Metrics))}
	for k, v := range m.Metrics {
		res.Metrics[k] = v
	}
	if len(m.LossFnOutputs) == 0 {
		res.LossFnOutputType = m.LossFnOutputType
		if res.LossFnOutputType == "" {
			res.LossFnOutputType = "ArrayRecord"
		}
		res.LossFnOutputs = []map[string]Array{}
		return res, nil
	}
	t := m.LossFnOutputType
	if i := strings.LastIndexByte(t, ':'); i >= 0 {
		t = t[i+1:]
	}
	res.LossFnOutputType = t

	// Per field, the per-datum slices with each one's chunk metadata; field
	// names are the same in every record, dtype and trailing shape may not be.
	type datumRef struct {
		meta *fieldChunk
		raw  []byte
	}
	perField := map[string][]datumRef{}
	var order []string // first-seen order, sorted per record for stability
	var numDatums int64
	for ri, rec := range m.LossFnOutputs {
		if rec.NumDatums < 0 {
			return nil, malformed("record %d: num_datums %d", ri, rec.NumDatums)
		}
		numDatums += rec.NumDatums
		if numDatums > math.MaxInt32 {
			return nil, malformed("num_datums total %d", numDatums)
		}
		names := make([]string, 0, len(rec.Fields))
		for name := range rec.Fields {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fc, err := splitBatched(rec.Fields[name])
			if err != nil {
				return nil, malformed("record %d field %q: %v", ri, name, err)
			}
			if _, seen := perField[name]; !seen {
				order = append(order, name)
			}
			for _, raw := range fc.datums {
				perField[name] = append(perField[name], datumRef{meta: fc, raw: raw})
			}
		}
	}
	if numDatums == 0 && len(order) > 0 {
		// Messages predating num_datums: count the first field.
		numDatums = int64(len(perField[order[0]]))
	}
	if len(order) == 0 && numDatums > maxEmptyDatums {
		return nil, malformed("%d datums without any field", numDatums)
	}
	for _, name := range order {
		if int64(len(perField[name])) < numDatums {
			return nil, malformed("field %q has %d datums, message says %d", name, len(perField[name]), numDatums)
		}
	}
	res.LossFnOutputs = make([]map[string]Array, numDatums)
	for i := range res.LossFnOutputs {
		d := make(map[string]Array, len(order))
		for _, name := range order {
			ref := perField[name][i]
			a, err := toArray(ref.meta, ref.raw)
			if err != nil {
				return nil, malformed("datum %d field %q: %v", i, name, err)
			}
			d[name] = a
		}
		res.LossFnOutputs[i] = d
	}
	return res, nil
}

func itemSize(dt DType) int {
	switch dt {
	case DType_DTYPE_FLOAT32, DType_DTYPE_INT32:
		return 4
	case DType_DTYPE_INT64:
		return 8
	case DType_DTYPE_BFLOAT16:
		return 2
	}
	return 0
}

// splitBatched cuts a BatchedTensor into per-datum byte slices using its
// byte offsets.
func splitBatched(bt *BatchedTensor) (*fieldChunk, error) {
	size := itemSize(bt.Dtype)
	if size == 0 {
		return nil, malformed("unsupported dtype %v", bt.Dtype)
	}
	if len(bt.Data)%size != 0 {
		return nil, malformed("data of %d bytes is not a whole number of %v", len(bt.Data), bt.Dtype)
	}
	offs, err := UnpackInt64(bt.Offsets)
	if err != nil {
		return nil, err
	}
	for _, s := range bt.TrailingShape {
		if s < 0 {
			return nil, malformed("negative trailing_shape %v", bt.TrailingShape)
		}
	}
	fc := &fieldChunk{dtype: bt.Dtype, trailing: bt.TrailingShape}
	if len(offs) == 0 {
		return fc, nil
	}
	fc.datums = make([][]byte, 0, len(offs)-1)
	for i := 0; i+1 < len(offs); i++ {
		lo, hi := offs[i], offs[i+1]
		if lo < 0 || hi < lo || hi > int64(len(bt.Data)) {
			return nil, malformed("offsets [%d,%d) outside %d data bytes", lo, hi, len(bt.Data))
		}
		if lo%int64(size) != 0 || hi%int64(size) != 0 {
			return nil, malformed("offsets [%d,%d) not aligned to %d-byte elements", lo, hi, size)
		}
		fc.datums = append(fc.datums, bt.Data[lo:hi])
	}
	return fc, nil
}

func toArray(fc *fieldChunk, raw []byte) (Array, error) {
	var a Array
	var n int
	switch fc.dtype {
	case DType_DTYPE_FLOAT32:
		v, err := UnpackFloat32(raw)
		if err != nil {
			return a, err
		}
		a.DType, a.Float32, n = "float32", v, len(v)
	case DType_DTYPE_BFLOAT16:
		// bf16 is the upper half of a float32.
		v := make([]float32, len(raw)/2)
		for i := range v {
			v[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
		}
		a.DType, a.Float32, n = "float32", v, len(v)
	case DType_DTYPE_INT64:
		v, err := UnpackInt64(raw)
		if err != nil {
			return a, err
		}
		a.DType, a.Int64, n = "int64", v, len(v)
	case DType_DTYPE_INT32:
		v32, err := UnpackInt32(raw)
		if err != nil {
			return a, err
		}
		v := make([]int64, len(v32))
		for i, x := range v32 {
			v[i] = int64(x)
		}
		a.DType, a.Int64, n = "int64", v, len(v)
	default:
		return a, malformed("unsupported dtype %v", fc.dtype)
	}
	// Leading dimension = elements / prod(trailing_shape), 0 when the
	// product is 0, as the SDK reshapes.
	prod := int64(1)
	for _, s := range fc.trailing {
		if s != 0 && prod > math.MaxInt64/s {
			return a, malformed("trailing_shape %v overflows", fc.trailing)
		}
		prod *= s
	}
	lead := int64(0)
	if prod != 0 {
		lead = int64(n) / prod
	}
	a.Shape = append([]int64{lead}, fc.trailing...)
	return a, nil
}

// TopkSentinelLogprob marks an empty top-k cell (with token id 0).
const TopkSentinelLogprob = -99999.0

// TopkEntry is one (token id, logprob) candidate.
type TopkEntry struct {
	TokenID int32
	Logprob float32
}

// Sequence is one sampled continuation.
type Sequence struct {
	StopReason string // "stop" or "length"
	Tokens     []int32
	// Logprobs has one value per token, or is nil when the server sent
	// none.
	Logprobs []float32
}

// SampleResult is SampleResponse as the SDK 0.25.0 decoder returns it.
type SampleResult struct {
	Sequences []Sequence
	// PromptLogprobs has one value per prompt token; NaN where the server
	// computed none (always position 0). Nil when not requested.
	PromptLogprobs []float32
	// TopkPromptLogprobs has one row per prompt token: nil for a row whose
	// first cell is empty, else the candidates with trailing empty cells
	// dropped. Nil when not requested (k or length 0).
	TopkPromptLogprobs [][]TopkEntry
	// PromptCacheHitTokens counts prompt tokens billed as prefix-cache hits.
	PromptCacheHitTokens int32
}

// PromptLogprob reports prompt token i's logprob and whether it is known.
func (r *SampleResult) PromptLogprob(i int) (float32, bool) {
	if i < 0 || i >= len(r.PromptLogprobs) || math.IsNaN(float64(r.PromptLogprobs[i])) {
		return 0, false
	}
	return r.PromptLogprobs[i], true
}

// DecodeSampleResponse decodes a protobuf SampleResponse.
func DecodeSampleResponse(b []byte) (*SampleResult, error) {
	var m SampleResponse
	if err := proto.Unmarshal(b, &m); err != nil {
		return nil, malformed("SampleResponse: %v", err)
	}
	res := &SampleResult{PromptCacheHitTokens: m.PromptCacheHitTokens}
	res.Sequences = make([]Sequence, 0, len(m.Sequences))
	for i, s := range m.Sequences {
		var seq Sequence
		switch s.StopReason {
		case StopReason_STOP_REASON_STOP:
			seq.StopReason = "stop"
		case StopReason_STOP_REASON_LENGTH:
			seq.StopReason = "length"
		default:
			return nil, malformed("sequence %d: unknown stop_reason %d", i, int32(s.StopReason))
		}
		var err error
		if seq.Tokens, err = UnpackInt32(s.Tokens); err != nil {
			return nil, malformed("sequence %d tokens: %v", i, err)
		}
		if len(s.Logprobs) > 0 {
			if seq.Logprobs, err = UnpackFloat32(s.Logprobs); err != nil {
				return nil, malformed("sequence %d logprobs: %v", i, err)
			}
		}
		res.Sequences = append(res.Sequences, seq)
	}
	if len(m.PromptLogprobs) > 0 {
		v, err := UnpackFloat32(m.PromptLogprobs)
		if err != nil {
			return nil, malformed("prompt_logprobs: %v", err)
		}
		res.PromptLogprobs = v
	}
	if tk := m.TopkPromptLogprobs; tk != nil && tk.K > 0 && tk.Length > 0 {
		rows, err := decodeTopk(tk)
		if err != nil {
			return nil, malformed("topk_prompt_logprobs: %v", err)
		}
		res.TopkPromptLogprobs = rows
	}
	return res, nil
}

func decodeTopk(tk *TopkLogprobs) ([][]TopkEntry, error) {
	n, k := uint64(tk.Length), uint64(tk.K)
	cells := n * k // both < 2^32, cannot overflow
	if uint64(len(tk.TokenIds)) != 4*cells || uint64(len(tk.Logprobs)) != 4*cells {
		return nil, malformed("%dx%d matrix needs %d bytes each, have %d token_ids and %d logprobs",
			n, k, 4*cells, len(tk.TokenIds), len(tk.Logprobs))
	}
	ids, err := UnpackInt32(tk.TokenIds)
	if err != nil {
		return nil, err
	}
	lps, err := UnpackFloat32(tk.Logprobs)
	if err != nil {
		return nil, err
	}
	empty := func(c uint64) bool { return ids[c] == 0 && lps[c] == TopkSentinelLogprob }
	rows := make([][]TopkEntry, n)
	for i := uint64(0); i < n; i++ {
		base := i * k
		if empty(base) {
			continue
		}
		end := k
		for end > 0 && empty(base+end-1) {
			end--
		}
		row := make([]TopkEntry, end)
		for j := uint64(0); j < end; j++ {
			row[j] = TopkEntry{TokenID: ids[base+j], Logprob: lps[base+j]}
		}
		rows[i] = row
	}
	return rows, nil
}
