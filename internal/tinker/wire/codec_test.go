package wire

import (
	"errors"
	"math"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestPackRoundTrip(t *testing.T) {
	i32 := []int32{0, -1, 151645, math.MaxInt32, math.MinInt32}
	if got, err := UnpackInt32(PackInt32(i32)); err != nil || !reflect.DeepEqual(got, i32) {
		t.Fatalf("int32 %v %v", got, err)
	}
	i64 := []int64{0, -1, 1 << 40}
	if got, err := UnpackInt64(PackInt64(i64)); err != nil || !reflect.DeepEqual(got, i64) {
		t.Fatalf("int64 %v %v", got, err)
	}
	f32 := []float32{0, -0.5, 3.25}
	if got, err := UnpackFloat32(PackFloat32(f32)); err != nil || !reflect.DeepEqual(got, f32) {
		t.Fatalf("float32 %v %v", got, err)
	}
	for _, f := range []func([]byte) error{
		func(b []byte) error { _, err := UnpackInt32(b); return err },
		func(b []byte) error { _, err := UnpackInt64(b); return err },
		func(b []byte) error { _, err := UnpackFloat32(b); return err },
	} {
		if err := f([]byte{1, 2, 3}); !errors.Is(err, ErrMalformed) {
			t.Errorf("odd length: %v", err)
		}
	}
}

func TestRequestValidation(t *testing.T) {
	ok := Example{Tokens: []int32{1, 2}, LossFnInputs: map[string]TensorData{"weights": Float32s([]float32{1, 1})}}
	if _, err := (ForwardBackward{ModelID: "m", SeqID: 0, Examples: []Example{ok}}).Encode(); err == nil {
		t.Error("seq_id 0 accepted")
	}
	bad := Example{LossFnInputs: map[string]TensorData{"weights": {DType: DType_DTYPE_FLOAT32, Float32: []float32{1}, Shape: []int64{2}}}}
	if _, err := (ForwardBackward{ModelID: "m", SeqID: 1, Examples: []Example{bad}}).Encode(); err == nil {
		t.Error("shape mismatch accepted")
	}
	bf := Example{LossFnInputs: map[string]TensorData{"x": {DType: DType_DTYPE_BFLOAT16}}}
	if _, err := (ForwardBackward{ModelID: "m", SeqID: 1, Examples: []Example{bf}}).Encode(); err == nil {
		t.Error("bf16 request tensor accepted")
	}
	if n := ok.EstimateBytes(); n != 8+8 {
		t.Errorf("estimate %d, want 16", n)
	}
}

func TestDecodeWidening(t *testing.T) {
	bf := []byte{0x80, 0x3f, 0x00, 0xc0} // bf16 1.0, -2.0
	out := &ForwardBackwardOutput{
		LossFnOutputType: "pkg.module:ArrayRecord",
		LossFnOutputs: []*ArrayRecord{
			{NumDatums: 1, Fields: map[string]*BatchedTensor{
				"a": {Data: bf, Offsets: PackInt64([]int64{0, 4}), Dtype: DType_DTYPE_BFLOAT16},
				"b": {Data: PackInt32([]int32{7, -8, 9, 10}), Offsets: PackInt64([]int64{0, 16}), Dtype: DType_DTYPE_INT32, TrailingShape: []int64{2}},
			}},
			// A second record (chunk): no num_datums, a different trailing shape.
			{NumDatums: 1, Fields: map[string]*BatchedTensor{
				"a": {Data: bf[:2], Offsets: PackInt64([]int64{0, 2}), Dtype: DType_DTYPE_BFLOAT16},
				"b": {Data: PackInt64([]int64{5}), Offsets: PackInt64([]int64{0, 8}), Dtype: DType_DTYPE_INT64},
			}},
		},
	}
	b, err := Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	res, err := DecodeForwardBackwardOutput(b)
	if err != nil {
		t.Fatal(err)
	}
	if res.LossFnOutputType != "ArrayRecord" || len(res.LossFnOutputs) != 2 {
		t.Fatalf("%+v", res)
	}
	if a := res.LossFnOutputs[0]["a"]; a.DType != "float32" || !reflect.DeepEqual(a.Float32, []float32{1, -2}) || !reflect.DeepEqual(a.Shape, []int64{2}) {
		t.Errorf("bf16: %+v", a)
	}
	if b := res.LossFnOutputs[0]["b"]; b.DType != "int64" || !reflect.DeepEqual(b.Int64, []int64{7, -8, 9, 10}) || !reflect.DeepEqual(b.Shape, []int64{2, 2}) {
		t.Errorf("int32: %+v", b)
	}
	if b := res.LossFnOutputs[1]["b"]; !reflect.DeepEqual(b.Int64, []int64{5}) || !reflect.DeepEqual(b.Shape, []int64{1}) {
		t.Errorf("chunk 2: %+v", b)
	}
}

func TestDecodeRejectsMalformed(t *testing.T) {
	cases := map[string]*ForwardBackwardOutput{
		"offset past data": {LossFnOutputs: []*ArrayRecord{{NumDatums: 1, Fields: map[string]*BatchedTensor{
			"x": {Data: make([]byte, 4), Offsets: PackInt64([]int64{0, 8}), Dtype: DType_DTYPE_FLOAT32}}}}},
		"offsets decreasing": {LossFnOutputs: []*ArrayRecord{{NumDatums: 1, Fields: map[string]*BatchedTensor{
			"x": {Data: make([]byte, 8), Offsets: PackInt64([]int64{4, 0}), Dtype: DType_DTYPE_FLOAT32}}}}},
		"unaligned": {LossFnOutputs: []*ArrayRecord{{NumDatums: 1, Fields: map[string]*BatchedTensor{
			"x": {Data: make([]byte, 8), Offsets: PackInt64([]int64{0, 2}), Dtype: DType_DTYPE_FLOAT32}}}}},
		"too few datums": {LossFnOutputs: []*ArrayRecord{{NumDatums: 3, Fields: map[string]*BatchedTensor{
			"x": {Data: make([]byte, 4), Offsets: PackInt64([]int64{0, 4}), Dtype: DType_DTYPE_FLOAT32}}}}},
		"unknown dtype": {LossFnOutputs: []*ArrayRecord{{NumDatums: 1, Fields: map[string]*BatchedTensor{
			"x": {Data: make([]byte, 4), Offsets: PackInt64([]int64{0, 4}), Dtype: 9}}}}},
		"datum bomb": {LossFnOutputs: []*ArrayRecord{{NumDatums: 1 << 40}}},
	}
	for name, m := range cases {
		b, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeForwardBackwardOutput(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v", name, err)
		}
	}
	if _, err := DecodeForwardBackwardOutput([]byte{0xff}); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
	sample := map[string]*SampleResponse{
		"bad stop":    {Sequences: []*SampledSequence{{StopReason: 5}}},
		"odd tokens":  {Sequences: []*SampledSequence{{Tokens: []byte{1}}}},
		"short topk":  {TopkPromptLogprobs: &TopkLogprobs{K: 2, Length: 2, TokenIds: make([]byte, 12), Logprobs: make([]byte, 16)}},
		"huge topk":   {TopkPromptLogprobs: &TopkLogprobs{K: math.MaxUint32, Length: math.MaxUint32}},
		"odd prompts": {PromptLogprobs: []byte{1, 2}},
	}
	for name, m := range sample {
		b, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeSampleResponse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestEmptyResults(t *testing.T) {
	res, err := DecodeForwardBackwardOutput(nil)
	if err != nil || res.LossFnOutputType != "ArrayRecord" || len(res.LossFnOutputs) != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	s, err := DecodeSampleResponse(nil)
	if err != nil || len(s.Sequences) != 0 || s.PromptLogprobs != nil || s.TopkPromptLogprobs != nil {
		t.Fatalf("%+v %v", s, err)
	}
	// k = 0: top-k absent, as in the SDK.
	b, _ := Marshal(&SampleResponse{TopkPromptLogprobs: &TopkLogprobs{K: 0, Length: 3}})
	if s, err := DecodeSampleResponse(b); err != nil || s.TopkPromptLogprobs != nil {
		t.Fatalf("%+v %v", s, err)
	}
}

// Fuzzers: the decoders must never panic, and the canonical marshaller must
// round-trip whatever protobuf-go accepts.

func FuzzDecodeForwardBackwardOutput(f *testing.F) {
	seed, _ := Marshal(&ForwardBackwardOutput{LossFnOutputType: "ArrayRecord", Metrics: map[string]float64{"loss:sum": 1},
		LossFnOutputs: []*ArrayRecord{{NumDatums: 1, Fields: map[string]*BatchedTensor{
			"logprobs": {Data: PackFloat32([]float32{-1}), Offsets: PackInt64([]int64{0, 4}), Dtype: DType_DTYPE_FLOAT32}}}}})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeForwardBackwardOutput(b)
		if err == nil && res == nil {
			t.Fatal("nil result without error")
		}
	})
}

func FuzzDecodeSampleResponse(f *testing.F) {
	seed, _ := Marshal(&SampleResponse{
		Sequences:          []*SampledSequence{{Tokens: PackInt32([]int32{1, 2}), Logprobs: PackFloat32([]float32{-1, -2})}},
		PromptLogprobs:     PackFloat32([]float32{float32(math.NaN()), -1}),
		TopkPromptLogprobs: &TopkLogprobs{K: 1, Length: 2, TokenIds: PackInt32([]int32{0, 5}), Logprobs: PackFloat32([]float32{TopkSentinelLogprob, -1})},
	})
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := DecodeSampleResponse(b)
		if err == nil && res == nil {
			t.Fatal("nil result without error")
		}
	})
}

func FuzzDecodeForwardBackwardRequestRoundTrip(f *testing.F) {
	seed, _ := (ForwardBackward{ModelID: "m", SeqID: 3, LossFn: "ppo", LossFnConfig: map[string]float64{"a": 1, "b": 2}, ConfigV2: true,
		Examples: []Example{{Tokens: []int32{1, 2}, LossFnInputs: map[string]TensorData{"target_tokens": Int64s([]int64{2, 3})}}}}).Encode()
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var m ForwardBackwardRequest
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		out, err := Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		var back ForwardBackwardRequest
		if err := proto.Unmarshal(out, &back); err != nil {
			t.Fatalf("canonical bytes do not decode: %v", err)
		}
		if !proto.Equal(&m, &back) {
			t.Fatalf("round trip changed the message")
		}
	})
}
