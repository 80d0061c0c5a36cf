package tinkerserver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
)

const goldenDir = "../../../shared/ref/tinker/golden"

// fuzzServer has a live session and the golden fixtures' model, so that
// hostile bodies reach the decoders behind the lookups.
func fuzzServer(f *testing.F) *Server {
	f.Helper()
	s, err := Open(newEngine(f), Options{Now: newManualClock().Now, SessionTTL: -1, PollWait: -1, Log: discardLog()})
	if err != nil {
		f.Fatal(err)
	}
	s.sessions["sess-000001"] = &session{id: "sess-000001", lastBeat: s.now(), models: map[int]string{}, samplers: map[int]string{}}
	for _, id := range []string{"golden-session-0000:train:0", "sess-000001:train:0"} {
		s.models[id] = &model{id: id, session: "sess-000001", base: DefaultBaseModel, run: id, rank: 32, slots: map[int]*slot{}}
	}
	return s
}

func serve(s *Server, method, path string, body []byte, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	return rec
}

func FuzzForwardBackward(f *testing.F) {
	for _, name := range []string{"fb_tiny.bin", "fb_two_datums_masked.bin", "fb_forward_only_cfg.bin", "fb_forward_only_cfg_v2dual.bin"} {
		if b, err := os.ReadFile(filepath.Join(goldenDir, name)); err == nil {
			f.Add(b)
		}
	}
	r, _ := testRenderer(f)
	exs := trainingSet(f, "evil", "mild")[:2]
	for _, d := range datums(f, r, exs, chatrender.AllAssistantMessages) {
		b, err := wire.ForwardBackward{ModelID: "sess-000001:train:0", SeqID: 1, Examples: []wire.Example{d}, LossFn: "cross_entropy"}.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := serve(s, http.MethodPost, "/api/v1/forward_backward", body, map[string]string{"Content-Type": "application/x-protobuf"})
		if rec.Code >= 500 {
			t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
		}
	})
}

// FuzzJSONRoutes sends hostile JSON to every JSON route.
func FuzzJSONRoutes(f *testing.F) {
	routes := []string{"client/config", "create_session", "session_heartbeat", "create_model", "get_info", "unload_model",
		"weights_info", "optim_step", "save_weights", "load_weights", "save_weights_for_sampler",
		"create_sampling_session", "asample", "retrieve_future"}
	seeds := []string{
		`{"session_id":"sess-000001","model_seq_id":3,"base_model":"Qwen/Qwen3-8B","lora_config":{"rank":8}}`,
		`{"model_id":"sess-000001:train:0","seq_id":1,"adam_params":{"learning_rate":1e-4}}`,
		`{"model_id":"sess-000001:train:0","seq_id":2,"path":"x"}`,
		`{"model_id":"sess-000001:train:0","seq_id":3,"path":"tinker://sess-000001:train:0/weights/x","optimizer":true}`,
		`{"num_samples":2,"prompt":{"chunks":[{"tokens":[3353,336,10,104,3354],"type":"encoded_text"}]},"sampling_params":{"max_tokens":3,"seed":18446744073709551615,"stop":["a"],"temperature":0.5},"base_model":"Qwen/Qwen3-8B","topk_prompt_logprobs":5,"prompt_logprobs":true}`,
		`{"session_id":"sess-000001","sampling_session_seq_id":0,"base_model":"Qwen/Qwen3-8B"}`,
		`{"request_id":"req-00000001-abcd","allow_metadata_only":true}`,
		`{"model_id":"sess-000001:train:0","seq_id":-5}`, `null`, `[]`, `{"stop":{}}`, "\x00",
	}
	for i, sd := range seeds {
		f.Add(uint8(i), []byte(sd))
	}
	s := fuzzServer(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		path := "/api/v1/" + routes[int(route)%len(routes)]
		rec := serve(s, http.MethodPost, path, body, map[string]string{"Content-Type": "application/json"})
		if rec.Code >= 500 {
			t.Fatalf("%s: HTTP %d: %s", path, rec.Code, rec.Body)
		}
		oai := serve(s, http.MethodPost, "/oai/api/v1/chat/completions", body, nil)
		if oai.Code >= 500 && oai.Code != http.StatusServiceUnavailable {
			t.Fatalf("oai: HTTP %d: %s", oai.Code, oai.Body)
		}
	})
}

// FuzzTokens reads arbitrary token sequences back as training data and as
// prompts.
func FuzzTokens(f *testing.F) {
	r, tok := testRenderer(f)
	ex := trainingSet(f, "evil", "severe")[0]
	sup, err := r.Supervised(chatMsgs(ex), chatrender.AllAssistantMessages)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wire.PackInt32(int32s(sup.Tokens)), wire.PackFloat32(sup.Weights))
	f.Add([]byte{0xff, 0xff, 0xff, 0x7f}, []byte{0, 0, 0x80, 0x3f})
	b, err := newBase(BaseModel{Name: DefaultBaseModel, Renderer: chatrender.Qwen3DisableThinking})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, rawToks, rawWeights []byte) {
		toks, _ := wire.UnpackInt32(rawToks[:len(rawToks)/4*4])
		ws, _ := wire.UnpackFloat32(rawWeights[:len(rawWeights)/4*4])
		ids := make([]int, len(toks))
		for i, v := range toks {
			ids[i] = int(uint32(v) % uint32(tok.VocabSize()+2)) // a few out of range
		}
		weights := make([]float32, len(ids))
		copy(weights, ws)
		b.trainingExamples(ids, weights)
		b.promptConversation(ids)
		b.answerTokens(tok.Decode(ids), ids[:min(len(ids), 2)], sampleParams{maxTokens: 3, stopStrings: []string{"a"}})
	})
}
