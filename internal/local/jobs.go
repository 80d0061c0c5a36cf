package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// Hyperparameter defaults, as OpenAI resolves "auto" for small files.
const (
	defaultEpochs    = 3
	defaultLRMult    = 1.0
	defaultBatchSize = 1
	minExamples      = provider.OpenAIMinTrainingExamples
)

// Fractions of a job's duration spent validating and queued.
const (
	validatingUntil = 0.15
	queuedUntil     = 0.35
)

// UploadFile stores training data. The id derives from the content, so
// identical bytes return the file uploaded first.
func (e *Engine) UploadFile(ctx context.Context, name string, data []byte) (provider.File, error) {
	if err := ctx.Err(); err != nil {
		return provider.File{}, err
	}
	sum := sha256.Sum256(data)
	id := "file-" + hex.EncodeToString(sum[:12])
	e.uploadMu.Lock()
	defer e.uploadMu.Unlock()
	if m, err := e.readFileMeta(id); err == nil {
		return provider.File{ID: m.ID, Name: m.Name, Bytes: m.Bytes}, nil
	}
	// Content first, metadata last: metadata marks a complete upload.
	if err := atomicfile.Write(e.filePath(id, ".jsonl"), data, 0o644); err != nil {
		return provider.File{}, fmt.Errorf("upload %s: %w", name, err)
	}
	m := fileMeta{ID: id, Name: name, Bytes: int64(len(data)), CreatedAt: e.now().Round(0)}
	b, err := json.Marshal(m)
	if err != nil {
		return provider.File{}, fmt.Errorf("upload %s: %w", name, err)
	}
	if err := atomicfile.Write(e.filePath(id, ".json"), b, 0o644); err != nil {
		return provider.File{}, fmt.Errorf("upload %s: %w", name, err)
	}
	return provider.File{ID: id, Name: name, Bytes: m.Bytes}, nil
}

// trainingExamples reads and parses an uploaded file.
func (e *Engine) trainingExamples(id string) ([]dataset.Example, error) {
	m, err := e.readFileMeta(id)
	if err != nil {
		return nil, err
	}
	path := e.filePath(id, ".jsonl")
	// Many models train on one uploaded file (a sweep's cells share nine
	// datasets): its examples are parsed once while the file is the one
	// parsed. The engine never rewrites a file's bytes.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	e.exMu.Lock()
	c, ok := e.examples[id]
	e.exMu.Unlock()
	if ok && sameFile(c.fi, fi) {
		return c.examples, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	ex, err := dataset.Parse(m.Name, data)
	if err != nil {
		return nil, err
	}
	e.exMu.Lock()
	e.examples[id] = parsedFile{examples: ex, fi: fi}
	e.exMu.Unlock()
	return ex, nil
}

// parsedFile is a training file's examples, as parsed from the file fi
// describes. Readers share them and must not change them.
type parsedFile struct {
	examples []dataset.Example
	fi       os.FileInfo
}

// CreateJob records a fine-tune. The training file is validated now (its
// bytes never change) but the verdict shows only once validation is due.
func (e *Engine) CreateJob(ctx context.Context, req provider.JobRequest) (provider.Job, error) {
	if err := ctx.Err(); err != nil {
		return provider.Job{}, err
	}
	if req.Model == "" {
		return provider.Job{}, fmt.Errorf("create job: %w: no model", ErrBadRequest)
	}
	hp := req.Hyperparameters
	if hp.NEpochs < 0 || hp.LearningRateMultiplier < 0 || hp.BatchSize < 0 {
		return provider.Job{}, fmt.Errorf("create job: %w: negative hyperparameter %+v", ErrBadRequest, hp)
	}
	if hp.NEpochs == 0 {
		hp.NEpochs = defaultEpochs
	}
	if hp.LearningRateMultiplier == 0 {
		hp.LearningRateMultiplier = defaultLRMult
	}
	if hp.BatchSize == 0 {
		hp.BatchSize = defaultBatchSize
	}
	if _, err := e.readFileMeta(req.TrainingFile); err != nil {
		return provider.Job{}, fmt.Errorf("create job: %w", &provider.ParamError{Param: "training_file", Err: err})
	}
	if strings.HasPrefix(req.Model, "ft:") {
		// Fine-tuning a fine-tuned model is allowed, as upstream, if it exists.
		if _, err := e.findModel(req.Model); err != nil {
			return provider.Job{}, fmt.Errorf("create job: %w", &provider.ParamError{Param: "model", Err: err})
		}
	}
	var invalid *provider.JobError
	examples, err := e.trainingExamples(req.TrainingFile)
	var lineErr *dataset.LineError
	switch {
	case errors.As(err, &lineErr):
		invalid = &provider.JobError{
			Code:    "invalid_file_format",
			Message: fmt.Sprintf("Invalid file format: line %d: %s", lineErr.Line, lineErr.Msg),
			Param:   "training_file",
		}
	case err != nil:
		return provider.Job{}, fmt.Errorf("create job: training file %s: %w", req.TrainingFile, err)
	case len(examples) < minExamples:
		invalid = &provider.JobError{
			Code:    "invalid_n_examples",
			Message: fmt.Sprintf("Training file has %d example(s), but must have at least %d examples", len(examples), minExamples),
			Param:   "training_file",
		}
	}

	// The id is taken under the lock, the record written outside it: the
	// write waits on a sync, and concurrent creates then share theirs.
	e.mu.Lock()
	hexID := e.jobID(req, hp)
	e.creating[hexID] = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.creating, hexID)
		e.mu.Unlock()
	}()
	var meta map[string]string // nil when empty, as it reads back from disk
	if len(req.Metadata) > 0 {
		meta = make(map[string]string, len(req.Metadata))
		for k, v := range req.Metadata {
			meta[k] = v
		}
	}
	rec := jobRecord{
		Job: provider.Job{
			ID:              "ftjob-" + hexID,
			Status:          provider.StatusValidatingFiles,
			Model:           req.Model,
			TrainingFile:    req.TrainingFile,
			Suffix:          req.Suffix,
			Seed:            req.Seed,
			Hyperparameters: hp,
			Metadata:        meta,
			CreatedAt:       e.now().Round(0),
		},
		Duration:     e.duration,
		PlannedModel: fmt.Sprintf("ft:%s:local:%s:%s", rootModel(req.Model), cleanSuffix(req.Suffix), hexID[:8]),
		Invalid:      invalid,
	}
	if err := e.writeJob(rec); err != nil {
		return provider.Job{}, fmt.Errorf("create job: %w", err)
	}
	return e.view(rec, e.now()), nil
}

// jobID derives a job's id from what it trains (model, data, suffix, seed,
// hyperparameters) and from how many identical jobs came before, instead of
// drawing it at random: the same experiment then gets the same job and model
// names, and so the same seeded samples, whether the engine runs in-process
// or behind `mage serve`. Metadata is left out: it labels a job, it does not
// change what is trained. An id another CreateJob is still writing is
// taken. Callers hold e.mu.
func (e *Engine) jobID(req provider.JobRequest, hp provider.Hyperparameters) string {
	base := fmt.Appendf(nil, "%q %q %q %d %d %g %d", req.Model, req.TrainingFile, req.Suffix, req.Seed, hp.NEpochs, hp.LearningRateMultiplier, hp.BatchSize)
	for n := 0; ; n++ {
		sum := sha256.Sum256(fmt.Appendf(base, "#%d", n))
		id := hex.EncodeToString(sum[:12])
		if e.creating[id] {
			continue
		}
		if _, err := os.Stat(e.jobPath("ftjob-" + id)); errors.Is(err, fs.ErrNotExist) {
			return id
		}
	}
}

// rootModel is the base model at the bottom of a chain of fine-tunes.
func rootModel(model string) string {
	if rest, ok := strings.CutPrefix(model, "ft:"); ok {
		base, _, _ := strings.Cut(rest, ":")
		return base
	}
	return model
}

// cleanSuffix keeps the model name parseable: ':' separates its fields.
func cleanSuffix(s string) string {
	return strings.ReplaceAll(s, ":", "-")
}

// view derives a job's live state at now.
func (e *Engine) view(r jobRecord, now time.Time) provider.Job {
	j := r.Job
	if len(r.Metadata) > 0 {
		j.Metadata = make(map[string]string, len(r.Metadata))
		for k, v := range r.Metadata {
			j.Metadata[k] = v
		}
	}
	if j.Error != nil {
		jerr := *j.Error // records are shared with the engine's cache
		j.Error = &jerr
	}
	if provider.Terminal(j.Status) {
		return j
	}
	d := r.Duration
	if d <= 0 {
		d = DefaultJobDuration
	}
	at := func(f float64) time.Time { return r.CreatedAt.Add(time.Duration(f * float64(d))) }
	switch {
	case now.Before(at(validatingUntil)):
		j.Status = provider.StatusValidatingFiles
	case r.Invalid != nil:
		j.Status = provider.StatusFailed
		j.FinishedAt = at(validatingUntil)
		jerr := *r.Invalid
		j.Error = &jerr
	case now.Before(at(queuedUntil)):
		j.Status = provider.StatusQueued
	case now.Before(at(1)):
		j.Status = provider.StatusRunning
	default:
		j.Status = provider.StatusSucceeded
		j.FinishedAt = at(1)
		j.FineTunedModel = r.PlannedModel
	}
	return j
}

// GetJob returns a job's current state.
func (e *Engine) GetJob(ctx context.Context, id string) (provider.Job, error) {
	if err := ctx.Err(); err != nil {
		return provider.Job{}, err
	}
	r, err := e.readJob(id)
	if err != nil {
		return provider.Job{}, fmt.Errorf("get job: %w", err)
	}
	return e.view(r, e.now()), nil
}

// ListJobs returns, newest first, the jobs whose metadata holds every pair.
func (e *Engine) ListJobs(ctx context.Context, metadata map[string]string) ([]provider.Job, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ids, err := e.jobFiles()
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	now := e.now()
	var out []provider.Job
	for _, id := range ids {
		if len(metadata) > 0 && e.knownNotMatching(id, metadata) {
			continue
		}
		r, err := e.readJob(id)
		if errors.Is(err, ErrJobNotFound) {
			continue // removed by someone else since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("list jobs: %w", err)
		}
		if matches(r.Metadata, metadata) {
			out = append(out, e.view(r, now))
		}
	}
	sort.Slice(out, func(i, k int) bool {
		if !out[i].CreatedAt.Equal(out[k].CreatedAt) {
			return out[i].CreatedAt.After(out[k].CreatedAt)
		}
		return out[i].ID > out[k].ID
	})
	return out, nil
}

// knownNotMatching reports that the job's record, as last read, lacks one
// of the pairs. The engine writes a job's metadata once, at creation, so
// the check needs no stat: a build looking for its key among a thousand
// jobs reads only the jobs that carry it.
func (e *Engine) knownNotMatching(id string, metadata map[string]string) bool {
	e.recMu.Lock()
	c, ok := e.recs[id]
	e.recMu.Unlock()
	return ok && !matches(c.rec.Metadata, metadata)
}

func matches(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// CancelJob stops a job that has not finished. Cancelling a finished job is
// an error wrapping ErrJobFinished, as upstream; the job is returned as is.
func (e *Engine) CancelJob(ctx context.Context, id string) (provider.Job, error) {
	if err := ctx.Err(); err != nil {
		return provider.Job{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.readJob(id)
	if err != nil {
		return provider.Job{}, fmt.Errorf("cancel job: %w", err)
	}
	now := e.now()
	j := e.view(r, now)
	if provider.Terminal(j.Status) {
		return j, fmt.Errorf("cancel job %s (%s): %w", id, j.Status, ErrJobFinished)
	}
	r.Status = provider.StatusCancelled
	r.FinishedAt = now.Round(0)
	if err := e.writeJob(r); err != nil {
		return provider.Job{}, fmt.Errorf("cancel job %s: %w", id, err)
	}
	return e.view(r, now), nil
}

// findModel returns the succeeded job that produced a fine-tuned model. The
// model name ends in the job's short id, which narrows the search.
func (e *Engine) findModel(model string) (jobRecord, error) {
	short := model[strings.LastIndexByte(model, ':')+1:]
	ids, err := e.jobFiles()
	if err != nil {
		return jobRecord{}, fmt.Errorf("model %q: %w", model, err)
	}
	now := e.now()
	for _, id := range ids {
		if short == "" || !strings.HasPrefix(id, "ftjob-"+short) {
			continue
		}
		r, err := e.readJob(id)
		if err != nil {
			continue // a job we cannot read is not this model
		}
		if r.PlannedModel != model {
			continue
		}
		if j := e.view(r, now); j.Status != provider.StatusSucceeded {
			return jobRecord{}, fmt.Errorf("model %q (job %s is %s): %w", model, id, j.Status, ErrModelNotFound)
		}
		return r, nil
	}
	return jobRecord{}, fmt.Errorf("model %q: %w", model, ErrModelNotFound)
}

// JobFiles lists the files a job's fine-tuned model is served from: its
// record and its training file. Without them the model is gone.
func (e *Engine) JobFiles(jobID string) ([]string, error) {
	r, err := e.readJob(jobID)
	if err != nil {
		return nil, fmt.Errorf("job files: %w", err)
	}
	return []string{e.jobPath(r.ID), e.filePath(r.TrainingFile, ".json"), e.filePath(r.TrainingFile, ".jsonl")}, nil
}
