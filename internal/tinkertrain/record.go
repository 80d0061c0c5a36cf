package tinkertrain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// Record is the durable note of one training, Dir/<key[:16]>.json. It is
// written before the first paid request, cheaply after every step, durably
// at every checkpoint and at the end; a rerun resumes from it and status
// in another process reads it.
type Record struct {
	Key       string   `json:"key"`
	Models    []string `json:"models"`
	Provider  string   `json:"provider"`
	BaseModel string   `json:"base_model"`
	// State is running, succeeded, failed or cancelled (provider.Status*).
	State string `json:"state"`
	// RunID is the training model of the latest attempt
	// ("<session>:train:<n>"); Runs lists every attempt's, oldest first.
	RunID string   `json:"run_id,omitempty"`
	Runs  []string `json:"runs,omitempty"`

	// What fixes the trained model; a resume checks it is unchanged.
	Tokenizer       string                   `json:"tokenizer"`
	TokenizerSHA256 string                   `json:"tokenizer_sha256"`
	DataSHA256      string                   `json:"data_sha256"`
	Settings        Settings                 `json:"settings"` // resolved; learning_rate is the peak rate used
	Hyperparameters provider.Hyperparameters `json:"hyperparameters"`
	Examples        int                      `json:"examples"`
	TokensPerEpoch  int                      `json:"tokens_per_epoch"`
	Steps           int                      `json:"steps"`
	OrderSeed       uint64                   `json:"order_seed"`   // the data order's shuffle seed, from the key
	OrderSHA256     string                   `json:"order_sha256"` // of the order it gave, in case the shuffle changes
	LoRASeed        int64                    `json:"lora_seed"`

	// Progress.
	Step       int         `json:"step"` // steps done (the last may be lost: see Checkpoint)
	Loss       *float64    `json:"loss,omitempty"`
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"` // what a resume loads
	Model      string      `json:"model,omitempty"`      // tinker://…/sampler_weights/final once done
	Event      string      `json:"event,omitempty"`      // the newest log line
	Error      string      `json:"error,omitempty"`
	Started    time.Time   `json:"started"`
	Updated    time.Time   `json:"updated"`
	Finished   time.Time   `json:"finished,omitzero"`
}

// Checkpoint is a saved training state (weights and Adam moments).
type Checkpoint struct {
	Step int    `json:"step"` // steps it holds
	Path string `json:"path"` // tinker://<run>/weights/<name>
}

// sameWork says why rec was planned differently from want, or "".
func (rec *Record) sameWork(want *Record) string {
	a, b := rec.Settings, want.Settings
	a.CheckpointEvery, b.CheckpointEvery = 0, 0 // how often to save does not change the model
	switch {
	case rec.BaseModel != want.BaseModel:
		return "base model " + rec.BaseModel
	case rec.DataSHA256 != want.DataSHA256 || rec.Examples != want.Examples:
		return "other training data"
	case rec.TokenizerSHA256 != want.TokenizerSHA256:
		return "another tokenizer (" + rec.TokenizerSHA256 + ")"
	case a != b || rec.Hyperparameters != want.Hyperparameters:
		return fmt.Sprintf("other settings (%+v, %+v)", rec.Settings, rec.Hyperparameters)
	case rec.Steps != want.Steps || rec.OrderSeed != want.OrderSeed || rec.OrderSHA256 != want.OrderSHA256 || rec.LoRASeed != want.LoRASeed:
		return "another data order"
	}
	return ""
}

func (rec *Record) progress() provider.Progress {
	p := provider.Progress{Key: rec.Key, Models: rec.Models, Provider: rec.Provider, JobID: rec.RunID, State: rec.State,
		Step: rec.Step, Steps: rec.Steps, Model: rec.Model, Event: rec.Event, Error: rec.Error,
		Started: rec.Started, Finished: rec.Finished}
	if rec.Loss != nil {
		l := *rec.Loss
		p.Loss = &l
	}
	return p
}

func (rec *Record) trained() provider.Trained {
	return provider.Trained{Model: rec.Model, JobID: rec.RunID, BaseModel: rec.BaseModel, Hyperparameters: rec.Hyperparameters}
}

func prefix(key string) string { return key[:min(16, len(key))] }

func (t *Trainer) recordPath(key string) string {
	return filepath.Join(t.opts.Dir, prefix(key)+".json")
}

// cancelPath is the marker Cancel leaves for a loop running in another
// process: the loop rewrites its record every step, so the record alone
// could lose the cancellation.
func (t *Trainer) cancelPath(key string) string {
	return filepath.Join(t.opts.Dir, prefix(key)+".cancel")
}

func (t *Trainer) read(key string) (*Record, error) {
	return readRecord(t.recordPath(key))
}

func readRecord(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("tinker training record: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("tinker training record %s: %w", path, err)
	}
	return &rec, nil
}

// write replaces the record; durable syncs it, for what a resume or an
// adoption depends on (the run, a checkpoint, the model). Per-step progress
// is only for status and goes without the syncs.
func (t *Trainer) write(rec *Record, durable bool) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	write := atomicfile.WriteCache
	if durable {
		write = atomicfile.Write
	}
	if err := write(t.recordPath(rec.Key), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record tinker run %s: %w", rec.RunID, err)
	}
	return nil
}

// records lists every record in Dir, oldest first.
func (t *Trainer) records() ([]*Record, error) {
	paths, err := filepath.Glob(filepath.Join(t.opts.Dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var recs []*Record
	for _, path := range paths {
		rec, err := readRecord(path)
		if err != nil {
			return nil, err
		}
		if rec != nil {
			recs = append(recs, rec)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].Started.Before(recs[j].Started) })
	return recs, nil
}

// Recorded implements provider.Trainer.
func (t *Trainer) Recorded(key string) (*provider.Progress, error) {
	rec, err := t.read(key)
	if rec == nil || err != nil {
		return nil, err
	}
	p := rec.progress()
	return &p, nil
}

// Status implements provider.Trainer from the records alone: the loop that
// trains is the only one who knows more, and it writes its progress there
// after every step. A record left "running" by a killed process stays so
// until a rerun resumes it; Event's step line tells how old it is.
func (t *Trainer) Status(ctx context.Context) ([]provider.Progress, error) {
	recs, err := t.records()
	if err != nil {
		return nil, err
	}
	out := make([]provider.Progress, 0, len(recs))
	for _, rec := range recs {
		p := rec.progress()
		if rec.Provider != t.opts.Provider && p.Error == "" {
			p.Error = fmt.Sprintf("trained on provider %q", rec.Provider)
		}
		out = append(out, p)
	}
	return out, nil
}

// Cancel implements provider.Trainer: it marks every running record
// cancelled and leaves a marker that the training loop, in this process
// or another, checks after every step and stops at. Nothing remote is
// stopped: the Tinker client has no call to stop a model, and an idle
// training model costs nothing; its session ends when the process does.
// A later Train resumes from the last checkpoint.
func (t *Trainer) Cancel(ctx context.Context) ([]provider.Progress, error) {
	recs, err := t.records()
	if err != nil {
		return nil, err
	}
	var out []provider.Progress
	var errs []error
	for _, rec := range recs {
		if rec.State != provider.StatusRunning {
			continue
		}
		if rec.Provider != t.opts.Provider {
			errs = append(errs, fmt.Errorf("model %s: run %s was trained on provider %q, not %q; run cancel with PROVIDER=%s",
				joinModels(rec.Models), rec.RunID, rec.Provider, t.opts.Provider, rec.Provider))
			continue
		}
		p, err := t.cancelOne(rec.Key)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if p != nil {
			out = append(out, *p)
		}
	}
	return out, errors.Join(errs...)
}

func (t *Trainer) cancelOne(key string) (*provider.Progress, error) {
	t.recMu.Lock()
	defer t.recMu.Unlock()
	// Marker first: a loop that overwrites the record after this still
	// sees the marker before its next step.
	if err := atomicfile.Write(t.cancelPath(key), []byte("cancelled\n"), 0o644); err != nil {
		return nil, err
	}
	rec, err := t.read(key)
	if err != nil || rec == nil || rec.State != provider.StatusRunning {
		return nil, err
	}
	rec.State, rec.Finished, rec.Event = provider.StatusCancelled, t.opts.Now(), "cancelled"
	if err := t.write(rec, true); err != nil {
		return nil, err
	}
	p := rec.progress()
	return &p, nil
}
