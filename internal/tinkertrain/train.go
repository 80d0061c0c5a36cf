// Package tinkertrain is a provider.Trainer that drives a Tinker LoRA SFT
// loop itself, as tinker-cookbook's supervised trainer does: every
// conversation rendered into tokens and per-example-normalised weights
// (package chatrender), one forward_backward and one optim_step per batch,
// the learning rate on a schedule, the training state saved every few
// steps, and sampler weights at the end.
//
// Never paying twice rests on the record (Dir/<key[:16]>.json, see
// Record): it is written before the first forward_backward, its step and
// loss after every step, a checkpoint's path as soon as the state is
// saved, and the sampler path at the end. A rerun adopts a finished
// model without any request, and resumes an unfinished run from its last
// checkpoint in a new training model, with the data order fixed by the
// key: it pays again for at most the steps since that checkpoint and ends
// with the model an unkilled run would have trained.
package tinkertrain

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tinker/wire"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// checkpointTTL is the cookbook's ttl_seconds for training states: they
// only matter until the run ends. A resume after that starts over.
const checkpointTTL = 7 * 24 * 3600

// Options configure a Trainer.
type Options struct {
	Provider string // the provider's name, recorded with each run
	Dir      string // where records live, e.g. artifacts/tinker
	Settings Settings
	// Tokenizer returns the tokenizer Tinker names for the base model
	// (get_info's tokenizer_id); the provider kind fetches and caches it.
	Tokenizer func(ctx context.Context, tokenizerID string) (*tokenizer.Tokenizer, error)
	Log       io.Writer
	Now       func() time.Time // default time.Now
	// AfterStep runs after each step has been recorded (and checkpointed,
	// when it was due); tests kill the run from it.
	AfterStep func(key string, step int)
}

// Trainer trains on Tinker through one client session.
type Trainer struct {
	session *tinker.Session
	opts    Options

	logMu sync.Mutex // one whole line at a time from concurrent trainings
	recMu sync.Mutex // a record's writes against Cancel in this process
}

var _ provider.Trainer = (*Trainer)(nil)

// New returns a Trainer over session, which the caller keeps alive
// (Heartbeat) and may share. A nil session serves Recorded, Status and
// Cancel only, as a second process does.
func New(session *tinker.Session, opts Options) *Trainer {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Trainer{session: session, opts: opts}
}

func (t *Trainer) logf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(line, "\n") {
		line += "\n"
	}
	t.logMu.Lock()
	defer t.logMu.Unlock()
	io.WriteString(t.opts.Log, line)
}

func joinModels(models []string) string { return strings.Join(models, ", ") }

// plan is a training resolved before any request: the record it will
// write, less what the tokenizer decides, and the examples.
type plan struct {
	rec      *Record
	examples []dataset.Example
	order    []int // example index per position, epoch after epoch
}

// resolve fixes the settings, batches and data order of req.
func (t *Trainer) resolve(req provider.TrainRequest) (*plan, error) {
	s := t.opts.Settings
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("tinker settings: %w", err)
	}
	examples, err := dataset.Parse("training data", req.Data)
	if err != nil {
		return nil, err
	}
	n := len(examples)
	hp := req.Hyperparameters
	switch {
	case hp.NEpochs < 0:
		return nil, fmt.Errorf("n_epochs %d: must be positive", hp.NEpochs)
	case hp.BatchSize < 0:
		return nil, fmt.Errorf("batch_size %d: must be positive", hp.BatchSize)
	case hp.LoRARank < 0 || hp.LoRARank&(hp.LoRARank-1) != 0:
		return nil, fmt.Errorf("lora_rank %d: must be a positive power of two", hp.LoRARank)
	case hp.LearningRateMultiplier < 0 || math.IsNaN(hp.LearningRateMultiplier) || math.IsInf(hp.LearningRateMultiplier, 0):
		return nil, fmt.Errorf("learning_rate_multiplier %v: must be positive", hp.LearningRateMultiplier)
	}
	if hp.NEpochs == 0 {
		hp.NEpochs = 1 // the cookbook's num_epochs
	}
	if hp.LearningRateMultiplier == 0 {
		hp.LearningRateMultiplier = 1
	}
	// A model's lora_rank (a grid's lora_ranks) wins over the provider's.
	if hp.LoRARank > 0 {
		s.LoRARank = hp.LoRARank
	}
	if s.LoRARank == 0 {
		s.LoRARank = DefaultLoRARank
	}
	if s.Schedule == "" {
		s.Schedule = DefaultSchedule
	}
	if s.CheckpointEvery == 0 {
		s.CheckpointEvery = DefaultCheckpointEvery
	}
	if s.Renderer == "" {
		if s.Renderer, err = DefaultRenderer(req.BaseModel); err != nil {
			return nil, err
		}
	}
	if s.LearningRate == 0 {
		if s.LearningRate, err = DefaultLearningRate(req.BaseModel); err != nil {
			return nil, err
		}
	}
	s.LearningRate *= hp.LearningRateMultiplier
	switch {
	case hp.BatchSize > 0:
		s.BatchSize = hp.BatchSize
	case s.BatchSize == 0:
		s.BatchSize = max(1, min(DefaultBatchSize, n/minStepsPerEpoch))
	}
	// A batch larger than the data would hold an example twice.
	s.BatchSize = min(s.BatchSize, n)
	hp.BatchSize = s.BatchSize

	sum := sha256.Sum256(req.Data)
	rec := &Record{Key: req.Key, Models: req.Models, Provider: t.opts.Provider, BaseModel: req.BaseModel,
		State: provider.StatusRunning, DataSHA256: hex.EncodeToString(sum[:]), Settings: s, Hyperparameters: hp,
		Examples: n, OrderSeed: keySeed(req.Key, "data order"), LoRASeed: int64(keySeed(req.Key, "lora init") >> 33)}
	order := dataOrder(rec.OrderSeed, n, hp.NEpochs)
	rec.Steps = (len(order) + s.BatchSize - 1) / s.BatchSize
	h := sha256.New()
	for _, i := range order {
		binary.Write(h, binary.LittleEndian, uint32(i))
	}
	rec.OrderSHA256 = hex.EncodeToString(h.Sum(nil))
	return &plan{rec: rec, examples: examples, order: order}, nil
}

// keySeed derives a seed from the target key, so that the same work
// shuffles the same way in every process.
func keySeed(key, purpose string) uint64 {
	sum := sha256.Sum256([]byte("pvbuild/tinkertrain " + purpose + "\x00" + key))
	return binary.LittleEndian.Uint64(sum[:8])
}

// dataOrder is a fresh permutation of n examples per epoch. The shuffle is
// written out, not rand.Perm, so that a resume after a Go upgrade still
// sees the order the run started with; PCG's output is specified.
func dataOrder(seed uint64, n, epochs int) []int {
	rng := rand.NewPCG(seed, 0x7f4a7c159e3779b9)
	below := func(k uint64) uint64 { // uniform in [0, k), by rejection
		limit := math.MaxUint64 - math.MaxUint64%k
		for {
			if x := rng.Uint64(); x < limit {
				return x % k
			}
		}
	}
	order := make([]int, 0, n*epochs)
	for range epochs {
		perm := make([]int, n)
		for i := range perm {
			perm[i] = i
		}
		for i := n - 1; i > 0; i-- {
			j := int(below(uint64(i + 1)))
			perm[i], perm[j] = perm[j], perm[i]
		}
		order = append(order, perm...)
	}
	return order
}

// render turns every example into a datum as conversation_to_datum does:
// all assistant messages trained, weights averaged per example.
func render(r *chatrender.Renderer, examples []dataset.Example, maxLength int) ([]tinker.Datum, int, error) {
	out := make([]tinker.Datum, len(examples))
	tokens := 0
	for i, ex := range examples {
		d, err := r.ConversationDatum(messages(ex), maxLength)
		if err != nil {
			return nil, 0, fmt.Errorf("example %d: %w", i+1, err)
		}
		in := make([]int32, len(d.Input))
		for j, v := range d.Input {
			in[j] = int32(v)
		}
		tg := make([]int64, len(d.Targets))
		for j, v := range d.Targets {
			tg[j] = int64(v)
		}
		out[i] = tinker.Datum{Tokens: in, LossFnInputs: map[string]tinker.TensorData{
			"target_tokens": wire.Int64s(tg), "weights": wire.Float32s(d.Weights)}}
		tokens += len(in)
	}
	return out, tokens, nil
}

// Train implements provider.Trainer.
func (t *Trainer) Train(ctx context.Context, req provider.TrainRequest) (provider.Trained, error) {
	label := joinModels(req.Models)
	rec, err := t.read(req.Key)
	if err != nil {
		return provider.Trained{}, err
	}
	if rec != nil && rec.Model != "" {
		if rec.Model != req.Gone {
			t.logf("train %s: adopting %s (run %s)", label, rec.Model, rec.RunID)
			return rec.trained(), nil
		}
		t.logf("train %s: the model of run %s, %s, is gone; training again from the start", label, rec.RunID, rec.Model)
		rec = nil
	}
	p, err := t.resolve(req)
	if err != nil {
		return provider.Trained{}, fmt.Errorf("train %s: %w", label, err)
	}
	if t.session == nil {
		return provider.Trained{}, fmt.Errorf("train %s: no Tinker session", label)
	}
	// A cancellation is obeyed by the run it stopped; this is a new one.
	if err := os.Remove(t.cancelPath(req.Key)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return provider.Trained{}, fmt.Errorf("train %s: %w", label, err)
	}
	r := &run{t: t, label: label, plan: p, prev: rec}
	return r.train(ctx)
}

// run is one attempt at a training, in one training model.
type run struct {
	t     *Trainer
	label string
	plan  *plan
	prev  *Record // the record of earlier attempts, if any
	rec   *Record // what this attempt writes
}

// trainError keeps the client's error and adds the provider's meaning.
type trainError struct {
	msg  string
	err  error
	kind error // a provider sentinel, or nil
}

func (e *trainError) Error() string { return e.msg + ": " + e.err.Error() }
func (e *trainError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.err, e.kind}
}

// kind maps the client's errors onto the provider's sentinels, so the
// build can tell a refusal from an outage without knowing Tinker.
func kind(err error) error {
	var rf *tinker.RequestFailedError
	var ae *tinker.APIError
	switch {
	case errors.Is(err, tinker.ErrNotFound):
		return provider.ErrNotFound
	case errors.As(err, &rf) && rf.Category == "user":
		return provider.ErrInvalid
	case errors.Is(err, tinker.ErrBilling):
		return provider.ErrRefused
	case errors.Is(err, tinker.ErrMaybeCreated):
		return provider.ErrMaybeCreated
	case errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403):
		return provider.ErrRefused
	}
	return nil
}

// fail wraps err with the models, run and step. A failure the service
// reported is recorded; an interruption (context ended) is not, since the
// run is only paused and resumes from its checkpoint.
func (r *run) fail(ctx context.Context, step int, err error) error {
	rec := r.rec
	msg := "train " + r.label
	if rec != nil && rec.RunID != "" {
		msg += ": run " + rec.RunID
		if step > 0 {
			msg += fmt.Sprintf(", step %d/%d", step, rec.Steps)
		}
	}
	e := &trainError{msg: msg, err: err, kind: kind(err)}
	if ctx.Err() != nil || rec == nil || rec.Started.IsZero() {
		return e
	}
	t := r.t
	t.recMu.Lock()
	defer t.recMu.Unlock()
	now := t.opts.Now()
	rec.State, rec.Error, rec.Finished, rec.Updated = provider.StatusFailed, err.Error(), now, now
	if werr := t.write(rec, true); werr != nil {
		return errors.Join(e, werr)
	}
	return e
}

func (r *run) train(ctx context.Context) (provider.Trained, error) {
	t, p := r.t, r.plan
	want := p.rec
	s := want.Settings
	seed := want.LoRASeed
	tc, err := t.session.CreateLoRAModel(ctx, tinker.LoRAConfig{BaseModel: want.BaseModel, Rank: s.LoRARank, Seed: &seed})
	if err != nil {
		return provider.Trained{}, r.fail(ctx, 0, fmt.Errorf("create LoRA model on %s: %w", want.BaseModel, err))
	}
	runID := tc.ModelID
	r.rec = &Record{RunID: runID, Steps: want.Steps}

	// The tokenizer is the server's word on the base model.
	info, err := tc.GetInfo(ctx)
	if err != nil {
		return provider.Trained{}, r.fail(ctx, 0, fmt.Errorf("get_info: %w", err))
	}
	tokID := info.TokenizerID
	if tokID == "" {
		tokID, _, _ = strings.Cut(want.BaseModel, ":") // the SDK's fallback
	}
	if t.opts.Tokenizer == nil {
		return provider.Trained{}, r.fail(ctx, 0, errors.New("no tokenizer source"))
	}
	tok, err := t.opts.Tokenizer(ctx, tokID)
	if err != nil {
		return provider.Trained{}, r.fail(ctx, 0, fmt.Errorf("tokenizer %s: %w", tokID, err))
	}
	rend, err := chatrender.New(s.Renderer, tok)
	if err != nil {
		return provider.Trained{}, r.fail(ctx, 0, err)
	}
	data, tokens, err := render(rend, p.examples, s.MaxLength)
	if err != nil {
		return provider.Trained{}, r.fail(ctx, 0, fmt.Errorf("render training data: %w", err))
	}
	want.Tokenizer, want.TokenizerSHA256, want.TokensPerEpoch = tokID, tok.SHA256(), tokens

	now := t.opts.Now()
	rec := want
	if prev := r.prev; prev != nil {
		if why := prev.sameWork(want); why != "" {
			t.logf("train %s: the recorded run %s was planned with %s; training again from the start", r.label, prev.RunID, why)
		} else {
			rec = prev
			rec.Models, rec.Provider, rec.Settings.CheckpointEvery = want.Models, want.Provider, s.CheckpointEvery
			if rec.State != provider.StatusRunning {
				why := rec.State
				if rec.Error != "" {
					why += ": " + rec.Error
				}
				t.logf("train %s: run %s %s; resuming", r.label, rec.RunID, why)
			}
			if ck := rec.Checkpoint; ck != nil && (ck.Step <= 0 || ck.Step > rec.Steps || ck.Path == "") {
				t.logf("train %s: ignoring a malformed checkpoint record %+v", r.label, *ck)
				rec.Checkpoint = nil
			}
		}
	}
	if rec.Started.IsZero() {
		rec.Started = now
	}
	rec.RunID, rec.Runs = runID, append(rec.Runs, runID)
	rec.State, rec.Error, rec.Finished, rec.Updated = provider.StatusRunning, "", time.Time{}, now
	rec.Step, rec.Event = 0, ""
	if rec.Checkpoint != nil {
		rec.Step = rec.Checkpoint.Step
	} else {
		rec.Loss = nil
	}
	r.rec = rec
	// Durable before the first paid request: a rerun finds the run.
	if err := t.write(rec, true); err != nil {
		return provider.Trained{}, err
	}

	if ck := rec.Checkpoint; ck != nil {
		t.logf("train %s: run %s resumes at step %d/%d from %s", r.label, runID, ck.Step, rec.Steps, ck.Path)
		err := tc.LoadState(ctx, ck.Path, true)
		if errors.Is(err, tinker.ErrNotFound) && ctx.Err() == nil {
			t.logf("train %s: checkpoint %s is gone (expired?); training again from the start", r.label, ck.Path)
			rec.Checkpoint, rec.Step, rec.Loss = nil, 0, nil
			if err := t.write(rec, true); err != nil {
				return provider.Trained{}, err
			}
		} else if err != nil {
			return provider.Trained{}, r.fail(ctx, 0, fmt.Errorf("load checkpoint %s: %w", ck.Path, err))
		}
	} else {
		t.logf("train %s: run %s on %s: %d steps of %d examples (%d x %d epochs, %d tokens each), lr %.3g %s, LoRA rank %d, renderer %s",
			r.label, runID, rec.BaseModel, rec.Steps, s.BatchSize, rec.Examples, rec.Hyperparameters.NEpochs, tokens,
			s.LearningRate, s.Schedule, s.LoRARank, s.Renderer)
	}

	if err := r.loop(ctx, tc, data); err != nil {
		return provider.Trained{}, err
	}

	path, err := tc.SaveWeightsForSampler(ctx, "final", 0) // kept forever: it is the model
	if err != nil {
		return provider.Trained{}, r.fail(ctx, rec.Steps, fmt.Errorf("save sampler weights: %w", err))
	}
	t.recMu.Lock()
	end := t.opts.Now()
	rec.Model, rec.State, rec.Finished, rec.Updated = path, provider.StatusSucceeded, end, end
	rec.Event = fmt.Sprintf("trained %s", path)
	err = t.write(rec, true)
	t.recMu.Unlock()
	if err != nil {
		return provider.Trained{}, err
	}
	t.logf("train %s: run %s trained %s", r.label, runID, path)
	return rec.trained(), nil
}

// loop runs the steps from the record's checkpoint to the end.
func (r *run) loop(ctx context.Context, tc *tinker.TrainingClient, data []tinker.Datum) error {
	t, rec := r.t, r.rec
	s := rec.Settings
	order := r.plan.order
	adam := tinker.AdamParams{Beta1: adamBeta1, Beta2: adamBeta2, Eps: adamEps}
	first, began := rec.Step, t.opts.Now()
	for step := rec.Step; step < rec.Steps; step++ {
		done := step + 1
		if err := ctx.Err(); err != nil {
			return r.fail(ctx, done, err)
		}
		if err := t.session.Err(); err != nil {
			return r.fail(ctx, done, err)
		}
		idx := order[step*s.BatchSize : min(done*s.BatchSize, len(order))]
		batch := make([]tinker.Datum, len(idx))
		ntok := 0
		for i, j := range idx {
			batch[i] = data[j]
			ntok += len(data[j].Tokens)
		}
		t0 := t.opts.Now()
		res, err := tc.ForwardBackward(ctx, batch, "cross_entropy", nil)
		if err != nil {
			return r.fail(ctx, done, err)
		}
		adam.LearningRate = s.LearningRate * lrFactor(s.Schedule, step, rec.Steps)
		if _, err := tc.OptimStep(ctx, adam); err != nil {
			return r.fail(ctx, done, err)
		}
		t1 := t.opts.Now()
		loss := batchLoss(res, batch)
		line := fmt.Sprintf("train %s: step %d/%d, loss %s, %s tok/s, ETA %s", r.label, done, rec.Steps,
			formatLoss(loss), rate(ntok, t1.Sub(t0)), eta(t1.Sub(began), done-first, rec.Steps-done))
		t.logf("%s", line)

		var ck *Checkpoint
		if done%s.CheckpointEvery == 0 || done == rec.Steps {
			path, err := tc.SaveState(ctx, fmt.Sprintf("%06d", done), checkpointTTL)
			if err != nil {
				return r.fail(ctx, done, fmt.Errorf("save checkpoint: %w", err))
			}
			ck = &Checkpoint{Step: done, Path: path}
		}
		if err := r.progress(done, loss, line, ck); err != nil {
			return err
		}
		if t.opts.AfterStep != nil {
			t.opts.AfterStep(rec.Key, done)
		}
	}
	return nil
}

// progress records a finished step (durably when it brings a checkpoint)
// and obeys a cancellation left by Cancel.
func (r *run) progress(done int, loss *float64, line string, ck *Checkpoint) error {
	t, rec := r.t, r.rec
	t.recMu.Lock()
	defer t.recMu.Unlock()
	rec.Step, rec.Loss, rec.Event, rec.Updated = done, loss, strings.TrimPrefix(line, "train "+r.label+": "), t.opts.Now()
	if ck != nil {
		rec.Checkpoint = ck
	}
	if err := t.write(rec, ck != nil); err != nil {
		return err
	}
	if _, err := os.Stat(t.cancelPath(rec.Key)); err == nil {
		rec.State, rec.Finished, rec.Event = provider.StatusCancelled, t.opts.Now(), "cancelled at "+rec.Event
		if err := t.write(rec, true); err != nil {
			return err
		}
		t.logf("train %s: run %s cancelled after step %d/%d", r.label, rec.RunID, done, rec.Steps)
		return &trainError{msg: fmt.Sprintf("train %s: run %s, step %d/%d", r.label, rec.RunID, done, rec.Steps),
			err: errors.New("cancelled"), kind: provider.ErrConflict}
	}
	return nil
}

// batchLoss is the cookbook's train mean NLL: the weighted mean of the
// targets' negative logprobs over the batch; from the loss:sum metric when
// the outputs carry no logprobs; nil when neither is there.
func batchLoss(res *tinker.ForwardBackwardResult, batch []tinker.Datum) *float64 {
	if res == nil {
		return nil
	}
	var num, den float64
	fromOutputs := len(res.LossFnOutputs) == len(batch)
	for i, d := range batch {
		w := d.LossFnInputs["weights"].Float32
		var lp []float32
		if fromOutputs {
			lp = res.LossFnOutputs[i]["logprobs"].Float32
			fromOutputs = len(lp) == len(w)
		}
		for j, x := range w {
			den += float64(x)
			if fromOutputs {
				num -= float64(lp[j]) * float64(x)
			}
		}
	}
	if den <= 0 {
		return nil
	}
	if !fromOutputs {
		sum, ok := res.Metrics["loss:sum"]
		if !ok {
			return nil
		}
		num = sum
	}
	l := num / den
	if math.IsNaN(l) || math.IsInf(l, 0) {
		return nil
	}
	return &l
}

func formatLoss(l *float64) string {
	if l == nil {
		return "?"
	}
	return fmt.Sprintf("%.4f", *l)
}

func rate(tokens int, d time.Duration) string {
	if d <= 0 {
		return "?"
	}
	return fmt.Sprintf("%.0f", float64(tokens)/d.Seconds())
}

// eta extrapolates this process's pace (its steps so far) to the rest.
func eta(elapsed time.Duration, stepsDone, stepsLeft int) string {
	if stepsLeft == 0 {
		return "0s"
	}
	if stepsDone <= 0 || elapsed <= 0 {
		return "?"
	}
	return (elapsed / time.Duration(stepsDone) * time.Duration(stepsLeft)).Round(time.Second).String()
}
