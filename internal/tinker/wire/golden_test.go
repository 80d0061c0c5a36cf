package wire

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// goldenDir finds shared/ref/tinker/golden beside the repository (the
// layout of a session and of CI), or skips the test.
func goldenDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("TINKER_GOLDEN_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("no go.mod above the test directory; cannot locate ../shared")
		}
		dir = parent
	}
	g := filepath.Join(dir, "..", "shared", "ref", "tinker", "golden")
	if _, err := os.Stat(g); err != nil {
		t.Skipf("golden fixtures not present at %s (shared/ absent): %v", g, err)
	}
	return g
}

func readGolden(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type goldenTensor struct {
	Data  []float64 `json:"data"`
	DType string    `json:"dtype"`
	Shape []int64   `json:"shape"`
}

type goldenRequest struct {
	ModelID      string             `json:"model_id"`
	SeqID        int32              `json:"seq_id"`
	LossFn       string             `json:"loss_fn"`
	ForwardOnly  bool               `json:"forward_only"`
	LossFnConfig map[string]float64 `json:"loss_fn_config"`
	Data         []struct {
		ModelInput struct {
			Chunks []struct {
				Type   string  `json:"type"`
				Tokens []int32 `json:"tokens"`
			} `json:"chunks"`
		} `json:"model_input"`
		LossFnInputs map[string]goldenTensor `json:"loss_fn_inputs"`
	} `json:"data"`
}

func (g goldenRequest) build(t *testing.T, v2 bool) ForwardBackward {
	f := ForwardBackward{ModelID: g.ModelID, SeqID: g.SeqID, LossFn: g.LossFn,
		ForwardOnly: g.ForwardOnly, LossFnConfig: g.LossFnConfig, ConfigV2: v2}
	for _, d := range g.Data {
		var ex Example
		for _, c := range d.ModelInput.Chunks {
			if c.Type != "encoded_text" {
				t.Fatalf("fixture chunk type %q not handled by this test", c.Type)
			}
			ex.Chunks = append(ex.Chunks, TextChunk(c.Tokens))
		}
		ex.LossFnInputs = map[string]TensorData{}
		for name, gt := range d.LossFnInputs {
			var td TensorData
			switch gt.DType {
			case "int64":
				td.DType = DType_DTYPE_INT64
				td.Int64 = make([]int64, len(gt.Data))
				for i, x := range gt.Data {
					td.Int64[i] = int64(x)
				}
			case "float32":
				td.DType = DType_DTYPE_FLOAT32
				td.Float32 = make([]float32, len(gt.Data))
				for i, x := range gt.Data {
					td.Float32[i] = float32(x)
				}
			default:
				t.Fatalf("fixture dtype %q", gt.DType)
			}
			td.Shape = gt.Shape
			ex.LossFnInputs[name] = td
		}
		f.Examples = append(f.Examples, ex)
	}
	return f
}

func TestGoldenRequests(t *testing.T) {
	dir := goldenDir(t)
	for _, tc := range []struct {
		name string
		v2   bool
	}{
		{"fb_tiny", false},
		{"fb_two_datums_masked", false},
		{"fb_forward_only_cfg", false},
		{"fb_forward_only_cfg_v2dual", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var g goldenRequest
			if err := json.Unmarshal(readGolden(t, dir, tc.name+".json"), &g); err != nil {
				t.Fatal(err)
			}
			want := readGolden(t, dir, tc.name+".bin")
			f := g.build(t, tc.v2)

			msg, err := f.ToProto()
			if err != nil {
				t.Fatal(err)
			}
			var fixture ForwardBackwardRequest
			if err := proto.Unmarshal(want, &fixture); err != nil {
				t.Fatalf("fixture does not decode: %v", err)
			}
			if !proto.Equal(msg, &fixture) {
				t.Fatalf("message differs from fixture\n got %v\nwant %v", msg, &fixture)
			}
			got, err := f.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("deterministic bytes differ (%d vs %d bytes)\n got %x\nwant %x", len(got), len(want), got, want)
			}
		})
	}
}

// The Tiny example the fixtures README spells out byte by byte, built with
// the text-only convenience (Tokens, default 1-D shapes).
func TestGoldenTinyConvenience(t *testing.T) {
	dir := goldenDir(t)
	f := ForwardBackward{
		ModelID: "golden-session-0000:train:0", SeqID: 1, LossFn: "cross_entropy",
		Examples: []Example{{
			Tokens: []int32{100, 2000, 30000, 151643, 7},
			LossFnInputs: map[string]TensorData{
				"target_tokens": Int64s([]int64{2000, 30000, 151643, 7, 151645}),
				"weights":       Float32s([]float32{1, 1, 1, 1, 1}),
			},
		}},
	}
	got, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if want := readGolden(t, dir, "fb_tiny.bin"); !bytes.Equal(got, want) {
		t.Fatalf("got %x\nwant %x", got, want)
	}
}

func jsonFloat32s(t *testing.T, raw []any) []float32 {
	t.Helper()
	out := make([]float32, len(raw))
	for i, x := range raw {
		if x == nil {
			out[i] = float32(math.NaN())
			continue
		}
		out[i] = float32(x.(float64))
	}
	return out
}

func sameFloat32s(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.IsNaN(float64(a[i])) != math.IsNaN(float64(b[i])) {
			return false
		}
		if !math.IsNaN(float64(a[i])) && a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestGoldenForwardBackwardOutput(t *testing.T) {
	dir := goldenDir(t)
	var g struct {
		Want struct {
			LossFnOutputType string                    `json:"loss_fn_output_type"`
			Metrics          map[string]float64        `json:"metrics"`
			LossFnOutputs    []map[string]goldenTensor `json:"loss_fn_outputs"`
		} `json:"decoded_as_sdk_0.25.0_would"`
	}
	if err := json.Unmarshal(readGolden(t, dir, "resp_forward_backward_output.json"), &g); err != nil {
		t.Fatal(err)
	}
	res, err := DecodeForwardBackwardOutput(readGolden(t, dir, "resp_forward_backward_output.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if res.LossFnOutputType != g.Want.LossFnOutputType {
		t.Errorf("type %q, want %q", res.LossFnOutputType, g.Want.LossFnOutputType)
	}
	if !reflect.DeepEqual(res.Metrics, g.Want.Metrics) {
		t.Errorf("metrics %v, want %v", res.Metrics, g.Want.Metrics)
	}
	if len(res.LossFnOutputs) != len(g.Want.LossFnOutputs) {
		t.Fatalf("%d datums, want %d", len(res.LossFnOutputs), len(g.Want.LossFnOutputs))
	}
	for i, want := range g.Want.LossFnOutputs {
		got := res.LossFnOutputs[i]
		if len(got) != len(want) {
			t.Fatalf("datum %d fields %v, want %v", i, got, want)
		}
		for name, wt := range want {
			a := got[name]
			if a.DType != wt.DType || !reflect.DeepEqual(a.Shape, wt.Shape) {
				t.Errorf("datum %d %s: dtype %s shape %v, want %s %v", i, name, a.DType, a.Shape, wt.DType, wt.Shape)
			}
			wv := make([]float32, len(wt.Data))
			for j, x := range wt.Data {
				wv[j] = float32(x)
			}
			if !sameFloat32s(a.Float32, wv) {
				t.Errorf("datum %d %s: %v, want %v", i, name, a.Float32, wv)
			}
		}
	}
}

func TestGoldenSampleResponse(t *testing.T) {
	dir := goldenDir(t)
	var g struct {
		Want struct {
			Sequences []struct {
				StopReason string    `json:"stop_reason"`
				Tokens     []int32   `json:"tokens"`
				Logprobs   []float32 `json:"logprobs"`
			} `json:"sequences"`
			PromptLogprobs       []any     `json:"prompt_logprobs"`
			Topk                 [][][]any `json:"topk_prompt_logprobs"`
			PromptCacheHitTokens int32     `json:"prompt_cache_hit_tokens"`
		} `json:"decoded_as_sdk_0.25.0_would"`
	}
	if err := json.Unmarshal(readGolden(t, dir, "resp_sample_response.json"), &g); err != nil {
		t.Fatal(err)
	}
	res, err := DecodeSampleResponse(readGolden(t, dir, "resp_sample_response.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Sequences) != len(g.Want.Sequences) {
		t.Fatalf("%d sequences, want %d", len(res.Sequences), len(g.Want.Sequences))
	}
	for i, w := range g.Want.Sequences {
		s := res.Sequences[i]
		if s.StopReason != w.StopReason || !reflect.DeepEqual(s.Tokens, w.Tokens) || !sameFloat32s(s.Logprobs, w.Logprobs) {
			t.Errorf("sequence %d = %+v, want %+v", i, s, w)
		}
	}
	if want := jsonFloat32s(t, g.Want.PromptLogprobs); !sameFloat32s(res.PromptLogprobs, want) {
		t.Errorf("prompt_logprobs %v, want %v", res.PromptLogprobs, want)
	}
	if _, ok := res.PromptLogprob(0); ok {
		t.Error("position 0 must be unknown (NaN on the wire)")
	}
	if v, ok := res.PromptLogprob(1); !ok || v != -3.25 {
		t.Errorf("PromptLogprob(1) = %v, %v", v, ok)
	}
	if len(res.TopkPromptLogprobs) != len(g.Want.Topk) {
		t.Fatalf("topk rows %v, want %v", res.TopkPromptLogprobs, g.Want.Topk)
	}
	for i, wrow := range g.Want.Topk {
		row := res.TopkPromptLogprobs[i]
		if (wrow == nil) != (row == nil) || len(row) != len(wrow) {
			t.Fatalf("topk row %d = %v, want %v", i, row, wrow)
		}
		for j, cell := range wrow {
			want := TopkEntry{TokenID: int32(cell[0].(float64)), Logprob: float32(cell[1].(float64))}
			if row[j] != want {
				t.Errorf("topk[%d][%d] = %v, want %v", i, j, row[j], want)
			}
		}
	}
	if res.PromptCacheHitTokens != g.Want.PromptCacheHitTokens {
		t.Errorf("prompt_cache_hit_tokens %d, want %d", res.PromptCacheHitTokens, g.Want.PromptCacheHitTokens)
	}
}

// TestSchemaMatchesSDKDescriptors checks our .proto against the SDK's own
// embedded descriptors: every message field of the SDK schema exists here
// with the same number, type and cardinality, and (for the newer schema)
// nothing is missing either way. Names may differ only where the SDK renamed
// a message (TopkPromptLogprobs -> TopkLogprobs, prompt_length -> length).
func TestSchemaMatchesSDKDescriptors(t *testing.T) {
	dir := goldenDir(t)
	ours := File_tinker_public_proto
	renamedMsg := map[string]string{"TopkPromptLogprobs": "TopkLogprobs"}
	renamedField := map[string]string{"TopkLogprobs.prompt_length": "length"}
	for _, file := range []string{"tinker_public.0.25.0.fdp.bin", "tinker_public.e5871ef.fdp.bin"} {
		t.Run(file, func(t *testing.T) {
			var fdp descriptorpb.FileDescriptorProto
			if err := proto.Unmarshal(readGolden(t, dir, file), &fdp); err != nil {
				t.Fatal(err)
			}
			if fdp.GetPackage() != string(ours.Package()) {
				t.Fatalf("package %q, ours %q", fdp.GetPackage(), ours.Package())
			}
			var check func(prefix string, msgs []*descriptorpb.DescriptorProto, lookup func(string) protoreflect.MessageDescriptor)
			check = func(prefix string, msgs []*descriptorpb.DescriptorProto, lookup func(string) protoreflect.MessageDescriptor) {
				for _, m := range msgs {
					name := m.GetName()
					if r, ok := renamedMsg[name]; ok {
						name = r
					}
					md := lookup(name)
					if md == nil {
						t.Errorf("message %s%s missing from our schema", prefix, name)
						continue
					}
					for _, f := range m.Field {
						fname := f.GetName()
						if r, ok := renamedField[name+"."+fname]; ok {
							fname = r
						}
						fd := md.Fields().ByNumber(protoreflect.FieldNumber(f.GetNumber()))
						if fd == nil {
							t.Errorf("%s%s field %d (%s) missing", prefix, name, f.GetNumber(), fname)
							continue
						}
						if string(fd.Name()) != fname || int32(fd.Kind()) != int32(f.GetType()) ||
							int32(fd.Cardinality()) != int32(f.GetLabel()) || fd.HasPresence() != (f.GetLabel() != descriptorpb.FieldDescriptorProto_LABEL_REPEATED && (f.GetProto3Optional() || f.OneofIndex != nil || f.GetType() == descriptorpb.FieldDescriptorProto_TYPE_MESSAGE)) {
							t.Errorf("%s%s field %d: ours %s %v %v presence=%v, SDK %s %v %v", prefix, name, f.GetNumber(),
								fd.Name(), fd.Kind(), fd.Cardinality(), fd.HasPresence(), fname, f.GetType(), f.GetLabel())
						}
					}
					nested := md.Messages()
					check(prefix+name+".", m.NestedType, func(n string) protoreflect.MessageDescriptor { return nested.ByName(protoreflect.Name(n)) })
				}
			}
			check("", fdp.MessageType, func(n string) protoreflect.MessageDescriptor {
				return ours.Messages().ByName(protoreflect.Name(n))
			})
			for _, e := range fdp.EnumType {
				ed := ours.Enums().ByName(protoreflect.Name(e.GetName()))
				if ed == nil {
					t.Errorf("enum %s missing", e.GetName())
					continue
				}
				for _, v := range e.Value {
					vd := ed.Values().ByNumber(protoreflect.EnumNumber(v.GetNumber()))
					if vd == nil || string(vd.Name()) != v.GetName() {
						t.Errorf("enum %s value %d (%s) differs", e.GetName(), v.GetNumber(), v.GetName())
					}
				}
			}
			if file == "tinker_public.e5871ef.fdp.bin" && ours.Messages().Len() != len(fdp.MessageType) {
				t.Errorf("we have %d messages, the newest SDK schema %d", ours.Messages().Len(), len(fdp.MessageType))
			}
		})
	}
}
