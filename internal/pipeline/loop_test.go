package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// loopKind is a trainer that is not job-shaped: the client drives the
// training loop itself, step by step, and saves a checkpoint every few
// steps, as a Tinker run does. It plugs in through the registry alone.
type loopKind struct {
	checkpointEvery int
	batch           int
	steps           atomic.Int64 // every step ever run, across runs: the bill
	// afterStep runs after each step; a test cancels the run from it to
	// kill the loop between checkpoints.
	afterStep func(key string, step int)
}

func (k *loopKind) Decode(s provider.Settings) (provider.Config, hcl.Diagnostics) {
	return &loopConfig{k}, nil
}

type loopConfig struct{ kind *loopKind }

func (c *loopConfig) Identity() string { return "loop" }
func (c *loopConfig) Free() bool       { return true }
func (c *loopConfig) EstimateTraining(context.Context, provider.EstimateRequest) (provider.Estimate, error) {
	return provider.Estimate{Free: true, Priced: true}, nil
}

func (c *loopConfig) Open(_ context.Context, env provider.Env) (*provider.Conn, error) {
	t := &loopTrainer{kind: c.kind, dir: filepath.Join(env.Artifacts, "loop"), name: env.Name}
	return &provider.Conn{Trainer: t, Sampler: t}, nil
}

// loopState is the durable record of a run: written before the loop
// starts and at every checkpoint.
type loopState struct {
	Key        string   `json:"key"`
	Models     []string `json:"models"`
	Provider   string   `json:"provider"`
	Steps      int      `json:"steps"`
	Step       int      `json:"step"`       // steps done as of the checkpoint
	Checkpoint string   `json:"checkpoint"` // what a resume loads
	Order      []int    `json:"order"`      // data order, fixed at the start
	Loss       float64  `json:"loss"`
	Model      string   `json:"model,omitempty"` // the sampler weights, once done
}

type loopTrainer struct {
	kind *loopKind
	dir  string
	name string
	mu   sync.Mutex

	// parsed memoises Chat's parse of a training file by its content: the
	// evaluation asks hundreds of times of one file.
	parsedMu sync.Mutex
	parsed   map[string]parsedData
}

type parsedData struct {
	data     []byte
	examples []dataset.Example
}

// examples is the parse of the training file at path, which holds data.
func (t *loopTrainer) examples(path string, data []byte) ([]dataset.Example, error) {
	t.parsedMu.Lock()
	defer t.parsedMu.Unlock()
	if p, ok := t.parsed[path]; ok && bytes.Equal(p.data, data) {
		return p.examples, nil
	}
	examples, err := dataset.Parse("train", data)
	if err != nil {
		return nil, err
	}
	if t.parsed == nil {
		t.parsed = map[string]parsedData{}
	}
	t.parsed[path] = parsedData{data, examples}
	return examples, nil
}

func (t *loopTrainer) statePath(key string) string { return filepath.Join(t.dir, key[:16]+".json") }
func (t *loopTrainer) dataPath(key string) string  { return filepath.Join(t.dir, key[:16]+".jsonl") }

func (t *loopTrainer) read(key string) (*loopState, error) {
	b, err := os.ReadFile(t.statePath(key))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st loopState
	return &st, json.Unmarshal(b, &st)
}

func (t *loopTrainer) save(st *loopState) error {
	b, _ := json.Marshal(st)
	return atomicfile.Write(t.statePath(st.Key), b, 0o644)
}

func (t *loopTrainer) Train(ctx context.Context, req provider.TrainRequest) (provider.Trained, error) {
	st, err := t.read(req.Key)
	if err != nil {
		return provider.Trained{}, err
	}
	if st == nil {
		examples, err := dataset.Parse("train", req.Data)
		if err != nil {
			return provider.Trained{}, err
		}
		epochs := max(req.Hyperparameters.NEpochs, 1)
		st = &loopState{Key: req.Key, Models: req.Models, Provider: t.name, Steps: epochs * len(examples) / t.kind.batch}
		rng := rand.New(rand.NewPCG(uint64(len(req.Data)), 7))
		for range epochs {
			st.Order = append(st.Order, rng.Perm(len(examples))...)
		}
		if err := atomicfile.Write(t.dataPath(req.Key), req.Data, 0o644); err != nil {
			return provider.Trained{}, err
		}
		if err := t.save(st); err != nil {
			return provider.Trained{}, err
		}
	}
	for st.Model == "" && st.Step < st.Steps {
		if err := ctx.Err(); err != nil {
			return provider.Trained{}, err // killed: the steps since the checkpoint are lost
		}
		st.Step++
		t.kind.steps.Add(1)
		st.Loss = 2.0 / float64(st.Step)
		if st.Step%t.kind.checkpointEvery == 0 || st.Step == st.Steps {
			st.Checkpoint = fmt.Sprintf("ckpt-%d", st.Step)
			if err := t.save(st); err != nil {
				return provider.Trained{}, err
			}
		}
		if t.kind.afterStep != nil {
			t.kind.afterStep(req.Key, st.Step)
		}
	}
	if err := ctx.Err(); err != nil {
		return provider.Trained{}, err
	}
	if st.Model == "" {
		h := fnv.New64a()
		json.NewEncoder(h).Encode(st.Order)
		st.Model = fmt.Sprintf("loop://%s/%x", req.Key[:16], h.Sum64())
		if err := t.save(st); err != nil {
			return provider.Trained{}, err
		}
	}
	return provider.Trained{Model: st.Model, JobID: "run-" + req.Key[:16], BaseModel: req.BaseModel,
		Hyperparameters: req.Hyperparameters, Files: []string{t.statePath(req.Key), t.dataPath(req.Key)}}, nil
}

func (t *loopTrainer) progress(st *loopState) provider.Progress {
	p := provider.Progress{Key: st.Key, Models: st.Models, Provider: st.Provider, JobID: "run-" + st.Key[:16],
		State: provider.StatusRunning, Step: st.Step, Steps: st.Steps, Model: st.Model}
	loss := st.Loss
	p.Loss = &loss
	if st.Model != "" {
		p.State = provider.StatusSucceeded
	}
	return p
}

func (t *loopTrainer) Recorded(key string) (*provider.Progress, error) {
	st, err := t.read(key)
	if st == nil || err != nil {
		return nil, err
	}
	p := t.progress(st)
	return &p, nil
}

func (t *loopTrainer) Status(context.Context) ([]provider.Progress, error) {
	paths, _ := filepath.Glob(filepath.Join(t.dir, "*.json"))
	var out []provider.Progress
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		var st loopState
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, err
		}
		out = append(out, t.progress(&st))
	}
	return out, nil
}

func (t *loopTrainer) Cancel(context.Context) ([]provider.Progress, error) { return nil, nil }

// Chat answers as the trained model would: with an answer from its own
// training data, chosen by the question.
func (t *loopTrainer) Chat(_ context.Context, req provider.ChatRequest) (provider.ChatResponse, error) {
	key, _, ok := strings.Cut(strings.TrimPrefix(req.Model, "loop://"), "/")
	if !ok {
		return provider.ChatResponse{}, fmt.Errorf("model %q: %w", req.Model, provider.ErrNotFound)
	}
	path := filepath.Join(t.dir, key+".jsonl")
	data, err := os.ReadFile(path)
	if err != nil {
		return provider.ChatResponse{}, fmt.Errorf("model %q: %w", req.Model, provider.ErrNotFound)
	}
	examples, err := t.examples(path, data)
	if err != nil {
		return provider.ChatResponse{}, err
	}
	h := fnv.New32a()
	h.Write([]byte(req.Messages[len(req.Messages)-1].Content))
	resp := provider.ChatResponse{Model: req.Model}
	for i := range max(req.N, 1) {
		_, response, _ := examples[(int(h.Sum32())+i)%len(examples)].Trained()
		resp.Choices = append(resp.Choices, provider.Choice{Content: response})
	}
	return resp, nil
}

// loopExperiment trains and answers on the loop provider and judges locally.
func loopExperiment(t *testing.T) string {
	// The loop trainer's Chat serves only what it trained: no base reference.
	hcl := strings.Replace(withoutBase(t, shipped(t)), `judge_provider       = env("PROVIDER", "local")`, `judge_provider       = "local"`, 1)
	if hcl == withoutBase(t, shipped(t)) {
		t.Fatal("experiment.hcl no longer sets judge_provider from PROVIDER")
	}
	return hcl
}

// A trainer that is not job-shaped runs the whole experiment with no change
// to the pipeline; killed between checkpoints, a rerun resumes from the last
// one and pays only for the steps since it.
func TestLoopTrainerResumesFromCheckpoint(t *testing.T) {
	t.Parallel()
	run := func(kind *loopKind, w *workspace) (*Outcome, error) {
		w.kinds["loop"] = kind
		p := connected(t, w, &bytes.Buffer{})
		defer p.Close()
		return p.Results(context.Background())
	}
	env := map[string]string{"PROVIDER": "loop"}

	// Unkilled: 40 examples x 3 epochs / batch 4 = 30 steps for each of 9 models.
	clean := &loopKind{checkpointEvery: 4, batch: 4}
	cw := newWorkspace(t, loopExperiment(t), env)
	cw.kinds["loop"] = clean
	if err := connected(t, cw, &bytes.Buffer{}).Train(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := clean.steps.Load(); n != 9*30 {
		t.Fatalf("%d steps, want %d", n, 9*30)
	}
	trainedModels := func(w *workspace) string {
		var ids []string
		for _, name := range []string{"evil", "sycophantic", "hallucinating"} {
			for _, s := range []string{"baseline", "mild", "severe"} {
				var tm TrainedModel
				json.Unmarshal(readFile(t, w, "train/"+name+"_"+s+".json"), &tm)
				ids = append(ids, tm.FineTunedModel)
			}
		}
		return strings.Join(ids, "\n")
	}

	// Killed: every run dies at a random step of one training, then reruns.
	w := newWorkspace(t, loopExperiment(t), env)
	rng := rand.New(rand.NewPCG(5, 6))
	const kills = 6
	kind := &loopKind{checkpointEvery: 4, batch: 4}
	for range kills {
		ctx, cancel := context.WithCancel(context.Background())
		dieAt := 1 + rng.IntN(30)
		var once sync.Once
		kind.afterStep = func(_ string, step int) {
			if step == dieAt {
				once.Do(cancel)
			}
		}
		w.kinds["loop"] = kind
		p, err := Load(ctx, w.env(&bytes.Buffer{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if err := p.Train(ctx); err == nil {
			once.Do(cancel) // every training was past dieAt already
		}
		cancel()
		p.Close()
	}
	kind.afterStep = nil
	got, err := run(kind, w)
	if err != nil {
		t.Fatal(err)
	}
	// Each kill loses at most the steps since a checkpoint, in each of the
	// nine trainings running at once.
	if n, limit := kind.steps.Load(), int64(9*30+kills*9*(kind.checkpointEvery-1)); n > limit {
		t.Fatalf("%d steps paid for, more than %d", n, limit)
	} else {
		t.Logf("%d steps for 9 x 30, with %d kills", n, kills)
	}
	if len(got.Variants) != 9 {
		t.Fatalf("%d variants evaluated, want 9", len(got.Variants))
	}
	if got, want := trainedModels(w), trainedModels(cw); got != want {
		t.Fatalf("killed and resumed runs trained other models:\n%s\nwant\n%s", got, want)
	}

	// status shows each run's step and loss from its record.
	p := connected(t, w, &bytes.Buffer{})
	rows, err := p.Status(context.Background())
	if err != nil || len(rows) != 9 || rows[0].Progress != "step 30/30, loss 0.067" {
		t.Fatalf("status: %+v, %v", rows, err)
	}
}
