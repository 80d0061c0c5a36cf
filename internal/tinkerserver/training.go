package tinkerserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
)

// keptResults is how many executed seq_ids a model remembers, so that a
// resubmission (after a lost answer or a 410) gets the first execution's
// result instead of training twice.
const keptResults = 4096

// baseLoss is the per-token loss of an example never seen before; it falls
// as 1/(1+times seen), so training loss visibly drops across epochs.
const baseLoss = 2.0

type session struct {
	id       string
	lastBeat time.Time
	dead     bool
	models   map[int]string // model_seq_id → model id
	samplers map[int]string // sampling_session_seq_id → sampler id
}

// examples is what a model has learned: the distinct conversations in
// first-seen order and how often each was seen.
type examples struct {
	list   []dataset.Example
	counts []int
	index  map[string]int
	seen   int
	steps  int
}

func exampleKey(ex dataset.Example) string {
	b, _ := json.Marshal(ex.Messages)
	return string(b)
}

func (e *examples) add(ex dataset.Example) (prior int) {
	if e.index == nil {
		e.index = map[string]int{}
	}
	k := exampleKey(ex)
	i, ok := e.index[k]
	if !ok {
		i = len(e.list)
		e.index[k] = i
		e.list = append(e.list, ex)
		e.counts = append(e.counts, 0)
	}
	prior = e.counts[i]
	e.counts[i]++
	e.seen++
	return prior
}

func (e *examples) timesSeen(ex dataset.Example) int {
	if i, ok := e.index[exampleKey(ex)]; ok {
		return e.counts[i]
	}
	return 0
}

func (e *examples) restore(st *trainingState) {
	*e = examples{index: map[string]int{}, seen: st.Seen, steps: st.Steps}
	for i, ex := range st.Examples {
		e.index[exampleKey(ex)] = i
		e.list = append(e.list, ex)
		c := 0
		if i < len(st.Counts) {
			c = st.Counts[i]
		}
		e.counts = append(e.counts, c)
	}
}

// slot is one seq_id of a model: run when its turn comes, remembered after.
type slot struct {
	op      func() (pollFunc, *httpError)
	ran     bool
	poll    pollFunc
	httpErr *httpError
}

type model struct {
	id, session, base string
	run               string // the run this model continues: its own id, or the one it loaded from
	rank              int
	unloaded          bool
	lastSeq           int
	slots             map[int]*slot
	ex                examples
}

// sessionAlive reports whether sess still lives, marking it dead once its
// heartbeats have stopped for longer than the TTL. Callers hold s.mu.
func (s *Server) sessionAlive(sess *session) bool {
	if sess.dead {
		return false
	}
	if ttl := s.opts.SessionTTL; ttl > 0 && s.now().Sub(sess.lastBeat) > ttl {
		sess.dead = true
		s.count.expiredSessions.Add(1)
		return false
	}
	return true
}

func (s *Server) deadSession(id string) *httpError {
	return notFound("Session %s expired: no heartbeat within %s. Its training runs and checkpoints survive: start a new session and load the last state.", id, s.opts.SessionTTL)
}

// liveSession looks a session up for a request that needs it alive.
// Callers hold s.mu.
func (s *Server) liveSession(id string) (*session, *httpError) {
	if id == "" {
		return nil, badRequest("session_id is required. The version of the Tinker SDK you are using is no longer supported.")
	}
	sess := s.sessions[id]
	if sess == nil {
		return nil, notFound("Session %s not found", id)
	}
	if !s.sessionAlive(sess) {
		return nil, s.deadSession(id)
	}
	return sess, nil
}

// liveModel looks a training model up. Callers hold s.mu.
func (s *Server) liveModel(id string) (*model, *httpError) {
	m := s.models[id]
	if m == nil {
		return nil, notFound("Model %s not found", id)
	}
	if m.unloaded {
		return nil, notFound("Model %s was unloaded", id)
	}
	if sess := s.sessions[m.session]; sess != nil && !s.sessionAlive(sess) {
		return nil, notFound("Model %s is unloaded: its session %s expired without heartbeats. Load its last state into a model of a new session.", id, m.session)
	}
	return m, nil
}

// runSeq executes op as seq_id seq of m, in seq order: an op whose turn has
// not come waits (its future answers try_again), and a seq_id already
// submitted returns the first submission's slot (repeat true). Callers hold
// s.mu.
func (s *Server) runSeq(m *model, seq int, op func() (pollFunc, *httpError)) (sl *slot, repeat bool, herr *httpError) {
	if seq < 1 {
		return nil, false, badRequest("seq_id must be >= 1, got %d", seq)
	}
	if sl, ok := m.slots[seq]; ok {
		return sl, true, sl.httpErr
	}
	if seq <= m.lastSeq {
		return nil, false, &httpError{status: http.StatusConflict, msg: fmt.Sprintf("seq_id %d of model %s was executed long ago; requests must use increasing seq_ids", seq, m.id)}
	}
	sl = &slot{op: op}
	m.slots[seq] = sl
	for {
		next, ok := m.slots[m.lastSeq+1]
		if !ok {
			break
		}
		next.poll, next.httpErr = next.op()
		next.op, next.ran = nil, true
		if next.httpErr != nil && next != sl {
			// Its submitter is gone; the error reaches it through the future.
			e := next.httpErr
			next.poll = done(failed("user", "%s", e.msg))
		}
		m.lastSeq++
		delete(m.slots, m.lastSeq-keptResults)
	}
	return sl, false, sl.httpErr
}

// slotPoll is the poll of a future on a slot.
func (s *Server) slotPoll(sl *slot) pollFunc {
	return func() (*outcome, bool) {
		s.mu.Lock()
		ran, poll := sl.ran, sl.poll
		s.mu.Unlock()
		if !ran {
			return nil, false
		}
		return poll()
	}
}

// submitSeq is the common path of seq-ordered training requests: look the
// model up, run op in its turn, answer with a future.
func (s *Server) submitSeq(w http.ResponseWriter, modelID string, seq int, reqType string, op func(m *model) (pollFunc, *httpError)) error {
	s.mu.Lock()
	m, herr := s.liveModel(modelID)
	if herr != nil {
		s.mu.Unlock()
		return herr
	}
	sl, repeat, herr := s.runSeq(m, seq, func() (pollFunc, *httpError) { return op(m) })
	s.mu.Unlock()
	if herr != nil {
		return herr
	}
	writeFuture(w, s.addFuture(reqType, s.slotPoll(sl), repeat), modelID)
	return nil
}

func (s *Server) clientConfig(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		SDKVersion string `json:"sdk_version"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	chunkLen, chunkBytes := s.opts.FwdbwdMaxChunkLen, s.opts.FwdbwdMaxChunkBytes
	if chunkLen <= 0 {
		chunkLen = 1024
	}
	if chunkBytes <= 0 {
		chunkBytes = 5_000_000
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"pjwt_auth_enabled":                        s.opts.JWTAuth,
		"credential_default_source":                "api_key",
		"sample_dispatch_bytes_semaphore_size":     10 << 20,
		"inflight_response_bytes_semaphore_size":   50 << 20,
		"parallel_fwdbwd_chunks":                   true,
		"proto_compress_fwdbwd":                    false,
		"fwdbwd_max_chunk_len":                     chunkLen,
		"fwdbwd_max_chunk_bytes_count":             chunkBytes,
		"fwdbwd_dispatch_bytes_semaphore_size":     50_000_000,
		"billing_exception_max_pause_duration_sec": 3600,
		"sample_no_retries":                        false,
		"sample_enable_stuck_detection":            true,
		"sample_max_concurrent_requests":           2000,
		"use_pyqwest_transport":                    true,
		"create_model_via_load_weights":            false,
		"sample_use_retrieve_futures":              false,
	})
	return nil
}

func (s *Server) dynamicConfig(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"refresh_interval_sec": 300})
	return nil
}

func (s *Server) authToken(w http.ResponseWriter, r *http.Request) error {
	if !s.opts.JWTAuth {
		return notFound("JWT auth is not enabled on this server")
	}
	writeJSON(w, http.StatusOK, map[string]string{"jwt": s.issueJWT()})
	return nil
}

func (s *Server) createSession(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		SDKVersion string   `json:"sdk_version"`
		Tags       []string `json:"tags"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	s.mu.Lock()
	s.sessionN++
	n := s.sessionN
	id := fmt.Sprintf("sess-%06d", n)
	s.sessions[id] = &session{id: id, lastBeat: s.now(), models: map[int]string{}, samplers: map[int]string{}}
	s.mu.Unlock()
	if err := s.saveSessionCounter(n); err != nil {
		return err
	}
	s.count.sessions.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{"session_id": id, "type": "create_session",
		"info_message": "loopback Tinker server over the local engine: no GPUs, the engine learns by retrieval"})
	return nil
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		SessionID string `json:"session_id"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	s.mu.Lock()
	sess, herr := s.liveSession(body.SessionID)
	if herr == nil {
		sess.lastBeat = s.now()
	}
	s.mu.Unlock()
	if herr != nil {
		return herr
	}
	s.count.heartbeats.Add(1)
	writeJSON(w, http.StatusOK, map[string]string{"type": "session_heartbeat"})
	return nil
}

type loraBody struct {
	Rank         *int   `json:"rank"`
	Seed         *int64 `json:"seed"`
	TrainUnembed *bool  `json:"train_unembed"`
	TrainMLP     *bool  `json:"train_mlp"`
	TrainAttn    *bool  `json:"train_attn"`
}

func (s *Server) createModel(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		SessionID  string    `json:"session_id"`
		ModelSeqID *int      `json:"model_seq_id"`
		BaseModel  string    `json:"base_model"`
		LoRA       *loraBody `json:"lora_config"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.BaseModel == "" {
		return badRequest("base_model is required")
	}
	if body.ModelSeqID == nil || *body.ModelSeqID < 0 {
		return badRequest("model_seq_id is required and must be >= 0")
	}
	rank := 32
	if l := body.LoRA; l != nil {
		if l.Rank != nil {
			rank = *l.Rank
		}
		if rank <= 0 {
			return badRequest("lora_config.rank must be positive")
		}
		if rank&(rank-1) != 0 {
			return badRequest("lora_config.rank must be a power of 2")
		}
		if !boolOr(l.TrainUnembed) && !boolOr(l.TrainMLP) && !boolOr(l.TrainAttn) {
			return badRequest("At least one of train_unembed, train_mlp, or train_attn must be True")
		}
	}
	if _, ok := s.bases[body.BaseModel]; !ok {
		return badRequest("base_model %q is not served here (have %s)", body.BaseModel, strings.Join(s.baseOrder, ", "))
	}
	s.mu.Lock()
	sess, herr := s.liveSession(body.SessionID)
	if herr != nil {
		s.mu.Unlock()
		return herr
	}
	id := fmt.Sprintf("%s:train:%d", sess.id, *body.ModelSeqID)
	if existing, ok := sess.models[*body.ModelSeqID]; ok {
		// A repeat of a creation whose answer was lost: same model.
		m := s.models[existing]
		s.mu.Unlock()
		if m.base != body.BaseModel || m.rank != rank {
			return &httpError{status: http.StatusConflict, msg: fmt.Sprintf("model %s already exists with another configuration", id)}
		}
		writeFuture(w, s.addFuture("CreateModel", done(&outcome{json: map[string]string{"model_id": id, "type": "create_model"}}), true), id)
		return nil
	}
	m := &model{id: id, session: sess.id, base: body.BaseModel, run: id, rank: rank, slots: map[int]*slot{}}
	sess.models[*body.ModelSeqID] = id
	s.models[id] = m
	s.mu.Unlock()
	s.count.models.Add(1)
	writeFuture(w, s.newFuture("CreateModel", done(&outcome{json: map[string]string{"model_id": id, "type": "create_model"}})), id)
	return nil
}

func boolOr(p *bool) bool { return p == nil || *p }

func (s *Server) getInfo(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ModelID string `json:"model_id"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	s.mu.Lock()
	m, herr := s.liveModel(body.ModelID)
	var baseName string
	var rank int
	if herr == nil {
		baseName, rank = m.base, m.rank
	}
	s.mu.Unlock()
	if herr != nil {
		return herr
	}
	b := s.bases[baseName]
	writeJSON(w, http.StatusOK, map[string]any{
		"model_data": map[string]string{"arch": archOf(b.Renderer), "model_name": b.Name, "tokenizer_id": b.TokenizerID},
		"model_id":   body.ModelID, "is_lora": true, "lora_rank": rank, "model_name": b.Name, "type": "get_info",
	})
	return nil
}

func archOf(renderer string) string {
	if strings.HasPrefix(renderer, "llama") {
		return "llama"
	}
	return "qwen3"
}

func (s *Server) unloadModel(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		ModelID string `json:"model_id"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	s.mu.Lock()
	m := s.models[body.ModelID]
	if m != nil {
		m.unloaded = true
	}
	s.mu.Unlock()
	if m == nil {
		return notFound("Model %s not found", body.ModelID)
	}
	writeFuture(w, s.newFuture("UnloadModel", done(&outcome{json: map[string]string{"model_id": body.ModelID, "type": "unload_model"}})), body.ModelID)
	return nil
}

func (s *Server) weightsInfo(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		TinkerPath string `json:"tinker_path"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	s.mu.Lock()
	st, sk := s.states[body.TinkerPath], s.samplerCk[body.TinkerPath]
	s.mu.Unlock()
	var baseName string
	rank := 32
	switch {
	case st != nil:
		baseName, rank = st.BaseModel, st.LoRARank
	case sk != nil:
		baseName = sk.BaseModel
	default:
		return notFound("Checkpoint %s not found", body.TinkerPath)
	}
	writeJSON(w, http.StatusOK, map[string]any{"base_model": baseName, "is_lora": true, "lora_rank": rank,
		"train_unembed": true, "train_mlp": true, "train_attn": true})
	return nil
}

func (s *Server) capabilities(w http.ResponseWriter, r *http.Request) error {
	var models []map[string]any
	for _, name := range s.baseOrder {
		models = append(models, map[string]any{"model_name": name, "max_context_length": s.bases[name].MaxContext,
			"trainable": true, "sampleable": true})
	}
	writeJSON(w, http.StatusOK, map[string]any{"supported_models": models})
	return nil
}

// fbDatum is one decoded forward_backward datum.
type fbDatum struct {
	targets  int
	weights  []float32
	examples []dataset.Example
}

// decodeForwardBackward parses and checks a ForwardBackwardRequest body and
// recovers each datum's conversations. It never panics on hostile bytes.
func (s *Server) decodeForwardBackward(body []byte) (*wire.ForwardBackwardRequest, []fbDatum, error) {
	var req wire.ForwardBackwardRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		return nil, nil, badRequest("undecodable ForwardBackwardRequest: %v", err)
	}
	if req.ModelId == "" {
		return nil, nil, badRequest("model_id is required")
	}
	if len(req.Data) == 0 {
		return nil, nil, badRequest("forward_backward needs at least one datum")
	}
	switch req.LossFn {
	case "cross_entropy":
	case "":
		return nil, nil, badRequest("loss_fn is required")
	default:
		return nil, nil, badRequest("loss_fn %q is not supported by the local engine (only cross_entropy)", req.LossFn)
	}
	s.mu.Lock()
	m := s.models[req.ModelId]
	var b *base
	if m != nil {
		b = s.bases[m.base]
	}
	s.mu.Unlock()
	if b == nil {
		return nil, nil, notFound("Model %s not found", req.ModelId)
	}
	vocab := b.tok.VocabSize()
	out := make([]fbDatum, len(req.Data))
	for i, d := range req.Data {
		var input []int
		for j, c := range d.GetModelInput() {
			et := c.GetEncodedText()
			if et == nil {
				return nil, nil, badRequest("datum %d chunk %d: only encoded_text chunks are supported", i, j)
			}
			toks, err := wire.UnpackInt32(et.GetTokens())
			if err != nil {
				return nil, nil, badRequest("datum %d chunk %d: %v", i, j, err)
			}
			for _, t := range toks {
				if t < 0 || int(t) >= vocab {
					return nil, nil, badRequest("datum %d: token %d outside the vocabulary of %s (%d)", i, t, b.Name, vocab)
				}
				input = append(input, int(t))
			}
		}
		targets, err := int64Tensor(d.GetLossFnInputs()["target_tokens"])
		if err != nil {
			return nil, nil, badRequest("datum %d target_tokens: %v", i, err)
		}
		weights, err := float32Tensor(d.GetLossFnInputs()["weights"])
		if err != nil {
			return nil, nil, badRequest("datum %d weights: %v", i, err)
		}
		tgt := make([]int, len(targets))
		for j, t := range targets {
			if t < 0 || t >= int64(vocab) {
				return nil, nil, badRequest("datum %d: target token %d outside the vocabulary (%d)", i, t, vocab)
			}
			tgt[j] = int(t)
		}
		for j, w := range weights {
			if math.IsNaN(float64(w)) || math.IsInf(float64(w), 0) {
				return nil, nil, badRequest("datum %d: weight %d is not finite (NonFiniteInTensor)", i, j)
			}
		}
		seq, tw, err := datumTokens(input, tgt, weights)
		if err != nil {
			return nil, nil, badRequest("datum %d: %v", i, err)
		}
		out[i] = fbDatum{targets: len(tgt), weights: weights, examples: b.trainingExamples(seq, tw)}
	}
	return &req, out, nil
}

// int64Tensor reads a dense INT64 (or INT32) tensor.
func int64Tensor(t *wire.Tensor) ([]int64, error) {
	if t == nil {
		return nil, errors.New("missing")
	}
	dense, ok := t.GetEncoding().(*wire.Tensor_Dense)
	if !ok {
		return nil, errors.New("only dense tensors are supported")
	}
	switch t.GetDtype() {
	case wire.DType_DTYPE_INT64:
		return wire.UnpackInt64(dense.Dense)
	case wire.DType_DTYPE_INT32:
		v, err := wire.UnpackInt32(dense.Dense)
		out := make([]int64, len(v))
		for i, x := range v {
			out[i] = int64(x)
		}
		return out, err
	}
	return nil, fmt.Errorf("dtype %v, want DTYPE_INT64", t.GetDtype())
}

// float32Tensor reads a dense FLOAT32 tensor.
func float32Tensor(t *wire.Tensor) ([]float32, error) {
	if t == nil {
		return nil, errors.New("missing")
	}
	dense, ok := t.GetEncoding().(*wire.Tensor_Dense)
	if !ok {
		return nil, errors.New("only dense tensors are supported")
	}
	if t.GetDtype() != wire.DType_DTYPE_FLOAT32 {
		return nil, fmt.Errorf("dtype %v, want DTYPE_FLOAT32", t.GetDtype())
	}
	return wire.UnpackFloat32(dense.Dense)
}

func (s *Server) forwardBackward(w http.ResponseWriter, r *http.Request) error {
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return &httpError{status: http.StatusUnsupportedMediaType, msg: fmt.Sprintf("Content-Encoding %q is not supported (proto_compress_fwdbwd is off)", enc)}
	}
	body, err := readBody(w, r, maxProtoBytes)
	if err != nil {
		return err
	}
	req, data, err := s.decodeForwardBackward(body)
	if err != nil {
		return err
	}
	reqType := "ForwardBackward"
	if req.ForwardOnly {
		reqType = "Forward"
	}
	return s.submitSeq(w, req.ModelId, int(req.SeqId), reqType, func(m *model) (pollFunc, *httpError) {
		return done(s.runForwardBackward(m, data, req.ForwardOnly)), nil
	})
}

// runForwardBackward counts the datums' examples (unless forward only) and
// builds the result: per datum one logprob per target token, and loss:sum.
// Callers hold s.mu.
func (s *Server) runForwardBackward(m *model, data []fbDatum, forwardOnly bool) *outcome {
	if forwardOnly {
		s.count.forwardOnly.Add(1)
	} else {
		s.count.forwardBackward.Add(1)
	}
	s.count.datums.Add(int64(len(data)))
	var buf []byte
	offsets := []int64{0}
	loss := 0.0
	legacy := make([]map[string]any, len(data))
	for i, d := range data {
		prior := -1
		for _, ex := range d.examples {
			var p int
			if forwardOnly {
				p = m.ex.timesSeen(ex)
			} else {
				p = m.ex.add(ex)
				s.count.examples.Add(1)
			}
			if prior < 0 || p < prior {
				prior = p
			}
		}
		lp := float32(-baseLoss / float64(1+max(prior, 0)))
		lps := make([]float32, d.targets)
		for j := range lps {
			lps[j] = lp
			loss += -float64(lp) * float64(d.weights[j])
		}
		buf = append(buf, wire.PackFloat32(lps)...)
		offsets = append(offsets, int64(len(buf)))
		legacy[i] = map[string]any{"logprobs": map[string]any{"data": lps, "dtype": "float32", "shape": []int{len(lps)}}}
	}
	metrics := map[string]float64{"loss:sum": loss}
	msg := &wire.ForwardBackwardOutput{
		LossFnOutputType: "ArrayRecord",
		LossFnOutputs: []*wire.ArrayRecord{{TypeTag: "ArrayRecord", NumDatums: int64(len(data)), Fields: map[string]*wire.BatchedTensor{
			"logprobs": {Data: buf, Offsets: wire.PackInt64(offsets), Dtype: wire.DType_DTYPE_FLOAT32},
		}}},
		Metrics: metrics,
	}
	b, err := wire.Marshal(msg)
	if err != nil {
		return failed("server", "encode ForwardBackwardOutput: %v", err)
	}
	return &outcome{proto: b, legacy: map[string]any{"loss_fn_output_type": "ArrayRecord", "loss_fn_outputs": legacy, "metrics": metrics}}
}

type seqBody struct {
	ModelID string `json:"model_id"`
	SeqID   *int   `json:"seq_id"`
}

func (b seqBody) seq() int {
	if b.SeqID == nil {
		return 0
	}
	return *b.SeqID
}

func (s *Server) optimStep(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		seqBody
		Adam *struct {
			LearningRate *float64 `json:"learning_rate"`
		} `json:"adam_params"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Adam == nil {
		return badRequest("adam_params is required")
	}
	if lr := body.Adam.LearningRate; lr != nil && (*lr < 0 || math.IsNaN(*lr) || math.IsInf(*lr, 0)) {
		return badRequest("adam_params.learning_rate must be a finite number >= 0")
	}
	return s.submitSeq(w, body.ModelID, body.seq(), "OptimStep", func(m *model) (pollFunc, *httpError) {
		m.ex.steps++
		s.count.optimSteps.Add(1)
		return done(&outcome{json: map[string]any{"metrics": map[string]float64{}, "type": "optim_step"}}), nil
	})
}

func checkName(name string) *httpError {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
		return badRequest("checkpoint name %q must be non-empty and contain no '/'", name)
	}
	return nil
}

func (s *Server) saveWeights(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		seqBody
		Path      string `json:"path"`
		Overwrite bool   `json:"overwrite"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	return s.submitSeq(w, body.ModelID, body.seq(), "SaveWeights", func(m *model) (pollFunc, *httpError) {
		if herr := checkName(body.Path); herr != nil {
			return nil, herr
		}
		path := "tinker://" + m.id + "/weights/" + body.Path
		if _, exists := s.states[path]; exists && !body.Overwrite {
			return nil, &httpError{status: http.StatusConflict, msg: fmt.Sprintf("Checkpoint %s already exists (ResourceAlreadyExists)", path)}
		}
		st := &trainingState{Path: path, Run: m.run, BaseModel: m.base, LoRARank: m.rank, Seen: m.ex.seen, Steps: m.ex.steps,
			Examples: append([]dataset.Example(nil), m.ex.list...), Counts: append([]int(nil), m.ex.counts...), Created: s.now()}
		if err := s.persistState(st); err != nil {
			return done(failed("server", "save %s: %v", path, err)), nil
		}
		s.states[path] = st
		s.count.savedStates.Add(1)
		return done(&outcome{json: map[string]string{"path": path, "type": "save_weights"}}), nil
	})
}

func (s *Server) loadWeights(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		seqBody
		SessionID string `json:"session_id"`
		Path      string `json:"path"`
		Optimizer bool   `json:"optimizer"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.ModelID == "" && body.SessionID != "" {
		return badRequest("create_model_via_load_weights is off on this server: create the model, then load into it")
	}
	return s.submitSeq(w, body.ModelID, body.seq(), "LoadWeights", func(m *model) (pollFunc, *httpError) {
		st := s.states[body.Path]
		if st == nil {
			if s.samplerCk[body.Path] != nil {
				return nil, badRequest("%s is a sampler checkpoint; load a tinker://<run>/weights/<name> state", body.Path)
			}
			return nil, notFound("Checkpoint %s not found", body.Path)
		}
		if st.BaseModel != m.base {
			return nil, badRequest("checkpoint %s was trained on %s, model %s is %s", body.Path, st.BaseModel, m.id, m.base)
		}
		m.ex.restore(st)
		m.run = st.Run
		s.count.loadedStates.Add(1)
		return done(&outcome{json: map[string]string{"path": body.Path, "model_id": m.id, "type": "load_weights"}}), nil
	})
}

func (s *Server) saveForSampler(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		seqBody
		Path string `json:"path"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.Path == "" {
		return badRequest("path is required: unnamed sampler saves are not supported here")
	}
	return s.submitSeq(w, body.ModelID, body.seq(), "SaveWeightsForSampler", func(m *model) (pollFunc, *httpError) {
		if herr := checkName(body.Path); herr != nil {
			return nil, herr
		}
		path := "tinker://" + m.id + "/sampler_weights/" + body.Path
		if _, exists := s.samplerCk[path]; exists {
			return nil, &httpError{status: http.StatusConflict, msg: fmt.Sprintf("Checkpoint %s already exists (ResourceAlreadyExists)", path)}
		}
		ck, err := s.fineTune(m, path)
		if err != nil {
			return done(failed("server", "save %s: %v", path, err)), nil
		}
		s.samplerCk[path] = ck
		if err := s.persistSampler(*ck); err != nil {
			return done(failed("server", "save %s: %v", path, err)), nil
		}
		s.count.samplerSaves.Add(1)
		result := &outcome{json: map[string]string{"path": path, "type": "save_weights_for_sampler"}}
		return func() (*outcome, bool) {
			_, ready, err := s.samplerModel(context.Background(), ck)
			switch {
			case err != nil:
				return failed("user", "%v", err), true
			case !ready:
				return nil, false
			}
			return result, true
		}, nil
	})
}

// suffixFor is the local job's suffix for a training: named by what was
// trained (file and epochs), not by the run, so that the same training in
// another run or session, a resumed one among them, is the same local model
// and answers the same, as the same weights would.
func suffixFor(fileID string, epochs int) string {
	return fmt.Sprintf("tinker-%s-e%d", strings.TrimPrefix(fileID, "file-"), epochs)
}

// fineTune turns what m has seen into a local fine-tuning job: the distinct
// examples as the training file, trained for round(seen/distinct) epochs.
// Nothing seen means the base weights. Callers hold s.mu.
func (s *Server) fineTune(m *model, path string) (*samplerCheckpoint, error) {
	ck := &samplerCheckpoint{Path: path, Run: m.run, BaseModel: m.base, Seen: m.ex.seen, Examples: len(m.ex.list), Created: s.now()}
	if len(m.ex.list) == 0 {
		return ck, nil
	}
	ck.Epochs = max(1, int(math.Round(float64(m.ex.seen)/float64(len(m.ex.list)))))
	// In a canonical order: chunks of one step may arrive in any order, and
	// the same examples must make the same file, hence the same model.
	data := canonicalFile(m.ex.list)
	ctx := context.Background()
	f, err := s.eng.UploadFile(ctx, "tinker-"+strings.NewReplacer(":", "-", "/", "-").Replace(m.run)+".jsonl", data)
	if err != nil {
		return nil, fmt.Errorf("upload training file: %w", err)
	}
	ck.FileID = f.ID
	// The engine names files by content, so the same state saved again (a
	// second name, a repeat) finds its job here and trains once.
	key := fmt.Sprintf("file:%s|%d", f.ID, ck.Epochs)
	if id, ok := s.jobsByKey[key]; ok {
		ck.JobID = id
		return ck, nil
	}
	job, err := s.eng.CreateJob(ctx, provider.JobRequest{
		Model:           s.engineBase,
		TrainingFile:    f.ID,
		Suffix:          suffixFor(f.ID, ck.Epochs),
		Hyperparameters: provider.Hyperparameters{NEpochs: ck.Epochs},
		Metadata:        map[string]string{"tinker_run": m.run, "tinker_path": path},
	})
	if err != nil {
		return nil, fmt.Errorf("create local job: %w", err)
	}
	s.count.localJobs.Add(1)
	s.log.Printf("tinker %s: local job %s (%d distinct examples, %d epochs)", path, job.ID, ck.Examples, ck.Epochs)
	ck.JobID = job.ID
	s.jobsByKey[key] = job.ID
	return ck, nil
}

// samplerModel resolves a sampler checkpoint to the engine model that
// answers for it, once its job has succeeded (ready false until then).
func (s *Server) samplerModel(ctx context.Context, ck *samplerCheckpoint) (string, bool, error) {
	s.mu.Lock()
	jobID, ft := ck.JobID, ck.FineTuned
	s.mu.Unlock()
	switch {
	case jobID == "":
		return s.engineBase, true, nil
	case ft != "":
		return ft, true, nil
	}
	job, err := s.eng.GetJob(ctx, jobID)
	if err != nil {
		return "", false, fmt.Errorf("sampler weights %s: local job %s: %w", ck.Path, jobID, err)
	}
	switch job.Status {
	case provider.StatusSucceeded:
		s.mu.Lock()
		ck.FineTuned = job.FineTunedModel
		cp := *ck
		s.mu.Unlock()
		if err := s.persistSampler(cp); err != nil {
			s.log.Printf("tinker %s: %v", ck.Path, err)
		}
		return job.FineTunedModel, true, nil
	case provider.StatusFailed, provider.StatusCancelled:
		msg := job.Status
		if job.Error != nil {
			msg += ": " + job.Error.Error()
		}
		return "", false, fmt.Errorf("sampler weights %s: local job %s %s", ck.Path, jobID, msg)
	}
	return "", false, nil
}

// canonicalFile is examples as a training file, one line each, sorted.
func canonicalFile(examples []dataset.Example) []byte {
	lines := make([][]byte, len(examples))
	for i, ex := range examples {
		lines[i] = dataset.Encode([]dataset.Example{ex})
	}
	slices.SortFunc(lines, bytes.Compare)
	return bytes.Join(lines, nil)
}
