package tinker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
)

// Datum and TensorData are the training example types of the wire codec.
type (
	Datum      = wire.Example
	TensorData = wire.TensorData
)

// LoRAConfig describes a new LoRA training model.
type LoRAConfig struct {
	BaseModel string // e.g. "Qwen/Qwen3-8B"
	Rank      int    // power of two; 0 means the SDK default 32
	Seed      *int64 // nil: the server picks
	// Which parts to train; nil means true (the SDK defaults). At least one
	// must be true.
	TrainUnembed, TrainMLP, TrainAttn *bool
}

// TrainingClient drives one training model. Its methods may be called
// from several goroutines; submissions are serialised so seq_ids reach the
// server in order, waiting for results is not.
type TrainingClient struct {
	c       *Client
	ModelID string

	submitMu sync.Mutex // held while taking seq_ids and posting
	seq      int        // last seq_id handed out
}

func boolOr(p *bool) bool { return p == nil || *p }

// CreateLoRAModel creates a LoRA training model in the session (POST
// /api/v1/create_model) and waits for it. The model id is
// "<session>:train:<model_seq_id>". A failure after an unanswered attempt
// wraps ErrMaybeCreated: the model may exist under that id.
func (s *Session) CreateLoRAModel(ctx context.Context, cfg LoRAConfig) (*TrainingClient, error) {
	if cfg.BaseModel == "" {
		return nil, errors.New("tinker create_model: no base model")
	}
	if cfg.Rank == 0 {
		cfg.Rank = 32
	}
	if cfg.Rank < 0 || cfg.Rank&(cfg.Rank-1) != 0 {
		return nil, fmt.Errorf("tinker create_model: LoRA rank %d is not a positive power of two", cfg.Rank)
	}
	lora := map[string]any{"rank": cfg.Rank, "train_unembed": boolOr(cfg.TrainUnembed), "train_mlp": boolOr(cfg.TrainMLP), "train_attn": boolOr(cfg.TrainAttn)}
	if !boolOr(cfg.TrainUnembed) && !boolOr(cfg.TrainMLP) && !boolOr(cfg.TrainAttn) {
		return nil, errors.New("tinker create_model: at least one of train_unembed, train_mlp, train_attn must be true")
	}
	if cfg.Seed != nil {
		lora["seed"] = *cfg.Seed
	}
	seq := s.nextModelSeq()
	expected := fmt.Sprintf("%s:train:%d", s.ID, seq)
	req := map[string]any{"session_id": s.ID, "model_seq_id": seq, "base_model": cfg.BaseModel,
		"user_metadata": map[string]any{}, "lora_config": lora, "type": "create_model"}
	const route = "/api/v1/create_model"
	ambiguous := false
	fut, err := newFuture(ctx, s.c, route, expected, "CreateModel", false,
		s.c.submitJSON(route, req, reqInfo{modelID: expected}, &ambiguous), decodeJSON[struct {
			ModelID string `json:"model_id"`
		}])
	var res struct {
		ModelID string `json:"model_id"`
	}
	if err == nil {
		res, err = fut.Wait(ctx)
	}
	if err != nil {
		var conflict errConflictAfterRetry
		if ambiguous || errors.As(err, &conflict) {
			return nil, fmt.Errorf("%w: model %s (base %s): %w", ErrMaybeCreated, expected, cfg.BaseModel, err)
		}
		return nil, err
	}
	id := res.ModelID
	if id == "" {
		id = expected
	}
	return &TrainingClient{c: s.c, ModelID: id}, nil
}

// Model returns a TrainingClient for an existing model id whose last
// used seq_id is lastSeq (0 for a model that has only been created or
// loaded via create-from-state).
func (c *Client) Model(modelID string, lastSeq int) *TrainingClient {
	return &TrainingClient{c: c, ModelID: modelID, seq: lastSeq}
}

// LastSeqID is the seq_id of the latest submitted request.
func (t *TrainingClient) LastSeqID() int {
	t.submitMu.Lock()
	defer t.submitMu.Unlock()
	return t.seq
}

// next takes the next seq_id; callers hold submitMu.
func (t *TrainingClient) next() int {
	t.seq++
	return t.seq
}

// submitJSON takes a seq_id and submits a JSON request in order; body gets
// the seq_id filled in. A 410 resubmission re-sends the same body.
func submitTrainingJSON[T any](ctx context.Context, t *TrainingClient, route, reqType string, body map[string]any, decode func([]byte) (T, error), ambiguous *bool) (*Future[T], error) {
	t.submitMu.Lock()
	defer t.submitMu.Unlock()
	body["seq_id"] = t.next()
	body["model_id"] = t.ModelID
	return newFuture(ctx, t.c, route, t.ModelID, reqType, false, t.c.submitJSON(route, body, reqInfo{modelID: t.ModelID}, ambiguous), decode)
}

// ForwardBackwardResult is the combined result of one forward_backward
// call (all its chunks).
type ForwardBackwardResult = wire.ForwardBackwardResult

// ForwardBackward runs forward and backward passes on data with loss lossFn
// (e.g. "cross_entropy" with target_tokens int64 and weights float32),
// accumulating gradients for the next OptimStep.
func (t *TrainingClient) ForwardBackward(ctx context.Context, data []Datum, lossFn string, lossCfg map[string]float64) (*ForwardBackwardResult, error) {
	return t.forwardBackward(ctx, data, lossFn, lossCfg, false)
}

// Forward is ForwardBackward without gradients (forward_only).
func (t *TrainingClient) Forward(ctx context.Context, data []Datum, lossFn string, lossCfg map[string]float64) (*ForwardBackwardResult, error) {
	return t.forwardBackward(ctx, data, lossFn, lossCfg, true)
}

// chunkData splits data as the SDK does: a new request once the current
// one holds maxLen datums or the next datum would push its estimated size
// past maxBytes.
func chunkData(data []Datum, maxLen, maxBytes int) [][]Datum {
	var out [][]Datum
	var cur []Datum
	size := 0
	for _, d := range data {
		n := d.EstimateBytes()
		if len(cur) > 0 && (len(cur) >= maxLen || size+n > maxBytes) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, d)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

func (t *TrainingClient) forwardBackward(ctx context.Context, data []Datum, lossFn string, lossCfg map[string]float64, forwardOnly bool) (*ForwardBackwardResult, error) {
	const route = "/api/v1/forward_backward"
	if len(data) == 0 {
		return nil, fmt.Errorf("tinker %s (model %s): no data", route, t.ModelID)
	}
	reqType := "ForwardBackward"
	if forwardOnly {
		reqType = "Forward"
	}
	cfg := t.c.Config()
	chunks := chunkData(data, cfg.FwdbwdMaxChunkLen, cfg.FwdbwdMaxChunkBytesCount)
	futs := make([]*Future[*wire.ForwardBackwardResult], 0, len(chunks))

	// Every chunk takes its own seq_id; all are posted in seq order before
	// any result is awaited.
	err := func() error {
		t.submitMu.Lock()
		defer t.submitMu.Unlock()
		for _, chunk := range chunks {
			seq := t.next()
			if seq > math.MaxInt32 {
				return fmt.Errorf("tinker %s (model %s): seq_id %d overflows int32", route, t.ModelID, seq)
			}
			body, err := wire.ForwardBackward{ModelID: t.ModelID, SeqID: int32(seq), Examples: chunk,
				LossFn: lossFn, LossFnConfig: lossCfg, ForwardOnly: forwardOnly}.Encode()
			if err != nil {
				return fmt.Errorf("tinker %s: %w", route, err)
			}
			submit := func(ctx context.Context) (string, error) {
				r, _, err := t.c.do(ctx, "POST", route, protoType, body, reqInfo{modelID: t.ModelID})
				if err != nil {
					return "", err
				}
				fut, err := decodeJSON[untypedFuture](r.body)
				if err != nil || fut.RequestID == "" {
					return "", fmt.Errorf("tinker %s (model %s): answer has no request_id", route, t.ModelID)
				}
				return fut.RequestID, nil
			}
			f, err := newFuture(ctx, t.c, route, t.ModelID, reqType, true, submit, wire.DecodeForwardBackwardOutput)
			if err != nil {
				return fmt.Errorf("seq_id %d: %w", seq, err)
			}
			futs = append(futs, f)
		}
		return nil
	}()
	if err != nil {
		return nil, err
	}
	results := make([]*wire.ForwardBackwardResult, len(futs))
	for i, f := range futs {
		if results[i], err = f.Wait(ctx); err != nil {
			return nil, err
		}
	}
	return combine(results), nil
}

// combine merges chunk results as the SDK does: outputs concatenated,
// metrics "<name>:<reduction>" reduced by their reduction, weighted by
// datums per chunk for mean and slack; "unique" keeps every value
// (key, key_2, ...). Keys missing from any chunk, unknown reductions and
// hash_unordered (a Python hash, not reproducible) over several chunks are
// dropped.
func combine(rs []*wire.ForwardBackwardResult) *wire.ForwardBackwardResult {
	if len(rs) == 1 {
		return rs[0]
	}
	out := &wire.ForwardBackwardResult{LossFnOutputType: rs[0].LossFnOutputType, Metrics: map[string]float64{}}
	weights := make([]float64, len(rs))
	total := 0.0
	for i, r := range rs {
		out.LossFnOutputs = append(out.LossFnOutputs, r.LossFnOutputs...)
		weights[i] = float64(len(r.LossFnOutputs))
		total += weights[i]
	}
	for key := range rs[0].Metrics {
		name, red, ok := strings.Cut(key, ":")
		if !ok || name == "" {
			continue
		}
		vals := make([]float64, 0, len(rs))
		for _, r := range rs {
			v, ok := r.Metrics[key]
			if !ok {
				break
			}
			vals = append(vals, v)
		}
		if len(vals) != len(rs) {
			continue
		}
		mean := func() float64 {
			if total == 0 {
				return math.NaN()
			}
			s := 0.0
			for i, v := range vals {
				s += v * weights[i]
			}
			return s / total
		}
		switch red {
		case "sum":
			s := 0.0
			for _, v := range vals {
				s += v
			}
			out.Metrics[key] = s
		case "mean":
			out.Metrics[key] = mean()
		case "min", "max", "slack":
			m := vals[0]
			for _, v := range vals[1:] {
				if (red == "min") == (v < m) {
					m = v
				}
			}
			if red == "slack" {
				m -= mean()
			}
			out.Metrics[key] = m
		case "unique":
			out.Metrics[key] = vals[0]
			for i, v := range vals[1:] {
				out.Metrics[fmt.Sprintf("%s_%d", key, i+2)] = v
			}
		}
	}
	return out
}

// AdamParams are optim_step's optimizer settings (PyTorch AdamW semantics,
// decoupled weight decay). Start from DefaultAdam.
type AdamParams struct {
	LearningRate float64 `json:"learning_rate"`
	Beta1        float64 `json:"beta1"`
	Beta2        float64 `json:"beta2"`
	Eps          float64 `json:"eps"`
	WeightDecay  float64 `json:"weight_decay"`
	GradClipNorm float64 `json:"grad_clip_norm"` // 0 = no clipping
}

// DefaultAdam is the API's defaults.
func DefaultAdam() AdamParams {
	return AdamParams{LearningRate: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-12}
}

// OptimStep applies the accumulated gradients (POST /api/v1/optim_step) and
// returns the server's metrics, if any.
func (t *TrainingClient) OptimStep(ctx context.Context, p AdamParams) (map[string]float64, error) {
	type result struct {
		Metrics map[string]float64 `json:"metrics"`
	}
	f, err := submitTrainingJSON(ctx, t, "/api/v1/optim_step", "OptimStep",
		map[string]any{"adam_params": p, "type": "optim_step"}, decodeJSON[result], nil)
	if err != nil {
		return nil, err
	}
	r, err := f.Wait(ctx)
	return r.Metrics, err
}

type pathResult struct {
	Path string `json:"path"`
}

func checkName(route, name string) error {
	if name == "" || strings.ContainsAny(name, "/") {
		return fmt.Errorf("tinker %s: checkpoint name %q must be non-empty and contain no '/'", route, name)
	}
	return nil
}

// SaveState saves weights and optimizer state under name (POST
// /api/v1/save_weights) and returns "tinker://<run>/weights/<name>".
// ttlSeconds 0 keeps it forever. A 409 that answers a retry of an
// unanswered attempt is taken as "already saved".
func (t *TrainingClient) SaveState(ctx context.Context, name string, ttlSeconds int) (string, error) {
	const route = "/api/v1/save_weights"
	if err := checkName(route, name); err != nil {
		return "", err
	}
	body := map[string]any{"path": name, "overwrite": false, "type": "save_weights"}
	if ttlSeconds > 0 {
		body["ttl_seconds"] = ttlSeconds
	}
	f, err := submitTrainingJSON(ctx, t, route, "SaveWeights", body, decodeJSON[pathResult], nil)
	var r pathResult
	if err == nil {
		r, err = f.Wait(ctx)
	}
	var conflict errConflictAfterRetry
	if errors.As(err, &conflict) {
		t.c.log.Warn("tinker: save answered 409 after a retry; taking it as saved", "model", t.ModelID, "name", name)
		return "tinker://" + t.ModelID + "/weights/" + name, nil
	}
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(r.Path, "tinker://") {
		return "", fmt.Errorf("tinker %s (model %s): unexpected path %q", route, t.ModelID, r.Path)
	}
	return r.Path, nil
}

// LoadState loads a "tinker://<run>/weights/<name>" state into this model
// (POST /api/v1/load_weights); withOptimizer restores the Adam moments too.
func (t *TrainingClient) LoadState(ctx context.Context, path string, withOptimizer bool) error {
	const route = "/api/v1/load_weights"
	if !strings.HasPrefix(path, "tinker://") || !strings.Contains(path, "/weights/") {
		return fmt.Errorf("tinker %s: %q is not a tinker://<run>/weights/<name> path", route, path)
	}
	f, err := submitTrainingJSON(ctx, t, route, "LoadWeights",
		map[string]any{"path": path, "optimizer": withOptimizer, "type": "load_weights"}, decodeJSON[map[string]any], nil)
	if err != nil {
		return err
	}
	_, err = f.Wait(ctx)
	return err
}

// SaveWeightsForSampler saves sampling weights under name (POST
// /api/v1/save_weights_for_sampler) and returns
// "tinker://<run>/sampler_weights/<name>", usable for sampling sessions,
// downloads and the OpenAI-compatible endpoint.
func (t *TrainingClient) SaveWeightsForSampler(ctx context.Context, name string, ttlSeconds int) (string, error) {
	const route = "/api/v1/save_weights_for_sampler"
	if err := checkName(route, name); err != nil {
		return "", err
	}
	body := map[string]any{"path": name, "type": "save_weights_for_sampler"}
	if ttlSeconds > 0 {
		body["ttl_seconds"] = ttlSeconds
	}
	f, err := submitTrainingJSON(ctx, t, route, "SaveWeightsForSampler", body, decodeJSON[pathResult], nil)
	var r pathResult
	if err == nil {
		r, err = f.Wait(ctx)
	}
	var conflict errConflictAfterRetry
	if errors.As(err, &conflict) {
		return "tinker://" + t.ModelID + "/sampler_weights/" + name, nil
	}
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(r.Path, "tinker://") {
		return "", fmt.Errorf("tinker %s (model %s): unexpected path %q", route, t.ModelID, r.Path)
	}
	return r.Path, nil
}

// ModelInfo is get_info's answer.
type ModelInfo struct {
	ModelID   string
	ModelName string
	Arch      string
	IsLoRA    bool
	LoRARank  int
	// TokenizerID is the Hugging Face tokenizer, cut at the first ':' as
	// the SDK does.
	TokenizerID string
}

// GetInfo asks for the model's metadata (POST /api/v1/get_info; a direct
// answer, no seq_id).
func (t *TrainingClient) GetInfo(ctx context.Context) (*ModelInfo, error) {
	var out struct {
		ModelData struct {
			Arch        string `json:"arch"`
			ModelName   string `json:"model_name"`
			TokenizerID string `json:"tokenizer_id"`
		} `json:"model_data"`
		ModelID   string `json:"model_id"`
		IsLoRA    *bool  `json:"is_lora"`
		LoRARank  *int   `json:"lora_rank"`
		ModelName string `json:"model_name"`
	}
	if err := t.c.postJSON(ctx, "/api/v1/get_info", map[string]any{"model_id": t.ModelID, "type": "get_info"}, &out, reqInfo{modelID: t.ModelID}); err != nil {
		return nil, err
	}
	info := &ModelInfo{ModelID: out.ModelID, ModelName: out.ModelName, Arch: out.ModelData.Arch}
	if info.ModelName == "" {
		info.ModelName = out.ModelData.ModelName
	}
	if out.IsLoRA != nil {
		info.IsLoRA = *out.IsLoRA
	}
	if out.LoRARank != nil {
		info.LoRARank = *out.LoRARank
	}
	info.TokenizerID, _, _ = strings.Cut(out.ModelData.TokenizerID, ":")
	return info, nil
}
