package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// ErrMalformed is wrapped by every decoding error caused by the bytes
// themselves (as opposed to a caller mistake).
var ErrMalformed = errors.New("malformed tinker protobuf")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// PackInt32 returns v as int32 little-endian bytes, the encoding of
// EncodedTextChunk.tokens and SampledSequence.tokens.
func PackInt32(v []int32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return b
}

// PackInt64 returns v as int64 little-endian bytes.
func PackInt64(v []int64) []byte {
	b := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(b[8*i:], uint64(x))
	}
	return b
}

// PackFloat32 returns v as IEEE-754 float32 little-endian bytes.
func PackFloat32(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

// UnpackInt32 decodes int32 little-endian bytes.
func UnpackInt32(b []byte) ([]int32, error) {
	if len(b)%4 != 0 {
		return nil, malformed("int32 array of %d bytes", len(b))
	}
	v := make([]int32, len(b)/4)
	for i := range v {
		v[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// UnpackInt64 decodes int64 little-endian bytes.
func UnpackInt64(b []byte) ([]int64, error) {
	if len(b)%8 != 0 {
		return nil, malformed("int64 array of %d bytes", len(b))
	}
	v := make([]int64, len(b)/8)
	for i := range v {
		v[i] = int64(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return v, nil
}

// UnpackFloat32 decodes float32 little-endian bytes.
func UnpackFloat32(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, malformed("float32 array of %d bytes", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// TensorData is one loss-function input as the SDK's TensorData: a flat array
// of either float32 or int64 values and its shape. These are the only two
// dtypes the SDK puts on requests.
type TensorData struct {
	DType   DType // DType_DTYPE_FLOAT32 or DType_DTYPE_INT64
	Float32 []float32
	Int64   []int64
	// Shape of the tensor; nil means 1-D [len].
	Shape []int64
}

// Int64s is a 1-D int64 tensor (e.g. target_tokens).
func Int64s(v []int64) TensorData { return TensorData{DType: DType_DTYPE_INT64, Int64: v} }

// Float32s is a 1-D float32 tensor (e.g. weights, advantages, logprobs).
func Float32s(v []float32) TensorData {
	return TensorData{DType: DType_DTYPE_FLOAT32, Float32: v}
}

// Len is the number of elements.
func (t TensorData) Len() int {
	if t.DType == DType_DTYPE_INT64 {
		return len(t.Int64)
	}
	return len(t.Float32)
}

// ByteSize is the raw dense size, the figure the SDK's chunking estimate uses.
func (t TensorData) ByteSize() int {
	if t.DType == DType_DTYPE_INT64 {
		return 8 * len(t.Int64)
	}
	return 4 * len(t.Float32)
}

// ToProto builds the dense Tensor the SDK would send.
func (t TensorData) ToProto() (*Tensor, error) {
	var dense []byte
	switch t.DType {
	case DType_DTYPE_FLOAT32:
		if t.Int64 != nil {
			return nil, errors.New("float32 tensor carries int64 values")
		}
		dense = PackFloat32(t.Float32)
	case DType_DTYPE_INT64:
		if t.Float32 != nil {
			return nil, errors.New("int64 tensor carries float32 values")
		}
		dense = PackInt64(t.Int64)
	default:
		return nil, fmt.Errorf("request tensors must be float32 or int64, not %v", t.DType)
	}
	shape := t.Shape
	if shape == nil {
		shape = []int64{int64(t.Len())}
	}
	n := int64(1)
	for _, s := range shape {
		if s < 0 {
			return nil, fmt.Errorf("negative dimension in shape %v", shape)
		}
		n *= s
	}
	if n != int64(t.Len()) {
		return nil, fmt.Errorf("shape %v holds %d elements, have %d", shape, n, t.Len())
	}
	return &Tensor{Encoding: &Tensor_Dense{Dense: dense}, Dtype: t.DType, Shape: append([]int64(nil), shape...)}, nil
}

// Example is one training datum: the model input and the loss-function inputs
// keyed by name ("target_tokens" int64, "weights" float32, ...).
type Example struct {
	// Tokens is the model input as one encoded_text chunk. Ignored when
	// Chunks is set.
	Tokens []int32
	// Chunks is the model input chunk by chunk (text, image, dmel), for
	// callers that need more than one text chunk.
	Chunks       []*Chunk
	LossFnInputs map[string]TensorData
}

// TextChunk is an encoded_text model-input chunk.
func TextChunk(tokens []int32) *Chunk {
	return &Chunk{Chunk: &Chunk_EncodedText{EncodedText: &EncodedTextChunk{Tokens: PackInt32(tokens)}}}
}

// EstimateBytes is the SDK's per-datum size estimate that decides request
// chunking: 4 per text token, raw bytes of images and dmel, and each loss
// input's raw size.
func (e Example) EstimateBytes() int {
	n := 0
	if e.Chunks == nil {
		n += 4 * len(e.Tokens)
	}
	for _, c := range e.Chunks {
		switch x := c.GetChunk().(type) {
		case *Chunk_EncodedText:
			n += len(x.EncodedText.GetTokens())
		case *Chunk_Image:
			n += len(x.Image.GetData())
		case *Chunk_Dmel:
			n += len(x.Dmel.GetDmel())
		}
	}
	for _, t := range e.LossFnInputs {
		n += t.ByteSize()
	}
	return n
}

// ToProto builds the protobuf Datum.
func (e Example) ToProto() (*Datum, error) {
	d := &Datum{LossFnInputs: make(map[string]*Tensor, len(e.LossFnInputs))}
	if e.Chunks != nil {
		d.ModelInput = e.Chunks
	} else {
		d.ModelInput = []*Chunk{TextChunk(e.Tokens)}
	}
	// Sorted only so that an error names the same key every time.
	keys := make([]string, 0, len(e.LossFnInputs))
	for k := range e.LossFnInputs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t, err := e.LossFnInputs[k].ToProto()
		if err != nil {
			return nil, fmt.Errorf("loss_fn_inputs[%q]: %w", k, err)
		}
		d.LossFnInputs[k] = t
	}
	return d, nil
}

// ForwardBackward is one forward_backward (or forward) request before
// encoding.
type ForwardBackward struct {
	ModelID      string
	SeqID        int32 // >= 1; 0 means unset and the server rejects it
	Examples     []Example
	LossFn       string // cross_entropy, importance_sampling, ppo, cispo, dro
	LossFnConfig map[string]float64
	ForwardOnly  bool
	// ConfigV2 also mirrors LossFnConfig into field 7 as SDKs after 0.25.0
	// do. Off by default: 0.25.0 never writes it.
	ConfigV2 bool
}

// ToProto builds the ForwardBackwardRequest message the SDK would send.
func (f ForwardBackward) ToProto() (*ForwardBackwardRequest, error) {
	if f.SeqID <= 0 {
		return nil, fmt.Errorf("forward_backward for %s: seq_id %d is not >= 1", f.ModelID, f.SeqID)
	}
	m := &ForwardBackwardRequest{
		ModelId:     f.ModelID,
		SeqId:       f.SeqID,
		LossFn:      f.LossFn,
		ForwardOnly: f.ForwardOnly,
		Data:        make([]*Datum, 0, len(f.Examples)),
	}
	for i, e := range f.Examples {
		d, err := e.ToProto()
		if err != nil {
			return nil, fmt.Errorf("forward_backward for %s: datum %d: %w", f.ModelID, i, err)
		}
		m.Data = append(m.Data, d)
	}
	if len(f.LossFnConfig) > 0 {
		m.LossFnConfig = make(map[string]float64, len(f.LossFnConfig))
		for k, v := range f.LossFnConfig {
			m.LossFnConfig[k] = v
		}
		if f.ConfigV2 {
			m.LossFnConfigV2 = make(map[string]*LossConfigValue, len(f.LossFnConfig))
			for k, v := range f.LossFnConfig {
				m.LossFnConfigV2[k] = &LossConfigValue{Value: &LossConfigValue_Number{Number: v}}
			}
		}
	}
	return m, nil
}

// Encode is ToProto followed by deterministic Marshal: the request body.
func (f ForwardBackward) Encode() ([]byte, error) {
	m, err := f.ToProto()
	if err != nil {
		return nil, err
	}
	b, err := Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("forward_backward for %s: marshal: %w", f.ModelID, err)
	}
	return b, nil
}
