// Package jobs is a provider.Trainer over a job service (provider.JobAPI):
// OpenAI's fine-tuning API, or the local engine that speaks its shape.
//
// Never paying twice rests on three habits. Every job is tagged with its
// target's key in the service's metadata. A job is recorded on disk
// (Dir/<key prefix>.json) before anything waits on it. And before creating a
// job the trainer looks for one: first in its record, then at the service by
// the key, so a run killed between creating a job and recording it adopts
// the job instead of creating another.
//
// Records are checked, not trusted: an unparseable record, or one that is
// not its key's, is reported as damaged and its key looked up at the
// service; a recorded job is adopted, resumed or cancelled only if its
// metadata carries the record's key. After an ambiguous create the trainer
// asks the service, through outages, and creates again only once the
// service has answered that no job carries the key.
package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// MetadataKey tags every submitted job with its target's key.
const MetadataKey = "pvbuild_key"

// Options configure a Trainer.
type Options struct {
	Provider string // the provider's name, recorded with each job
	Dir      string // where job records live
	// Limiter bounds the calls in flight; shared with the provider's chat.
	Limiter provider.Limiter
	// PollInterval is the first wait between polls; it grows by half each
	// time up to MaxPollInterval. Defaults 200ms and 30s.
	PollInterval, MaxPollInterval time.Duration
	// AliveEvery is how often a job that keeps its state is said to be
	// alive; default 5 minutes.
	AliveEvery time.Duration
	Log        io.Writer
	// Outage is the provider's outage policy, shared with its chat calls:
	// a lookup or poll that fails transiently is tried again while the
	// provider has been failing for less than its maximum. Default: one of
	// its own with the default policy.
	Outage *provider.Outage
	// Sleep is the wait between polls, with jitter added; default the
	// outage policy's (OutagePolicy.Sleep), so that a test on a virtual
	// clock does not poll in wall time. A test whose jobs run in wall
	// time polls with provider.Sleep.
	Sleep func(ctx context.Context, d time.Duration) error
	// AfterCreate runs between creating a job and recording it; tests use
	// it to die at the worst moment.
	AfterCreate func()
}

// Trainer trains by submitting jobs and waiting on them.
type Trainer struct {
	api  provider.JobAPI
	opts Options
}

var _ provider.Trainer = (*Trainer)(nil)

// New returns a Trainer over api.
func New(api provider.JobAPI, opts Options) *Trainer {
	if opts.PollInterval <= 0 {
		opts.PollInterval = 200 * time.Millisecond
	}
	if opts.MaxPollInterval <= 0 {
		opts.MaxPollInterval = 30 * time.Second
	}
	if opts.AliveEvery <= 0 {
		opts.AliveEvery = 5 * time.Minute
	}
	if opts.Limiter == nil {
		opts.Limiter = provider.NewLimiter(8)
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.AfterCreate == nil {
		opts.AfterCreate = func() {}
	}
	if opts.Outage == nil {
		opts.Outage = provider.NewOutage(opts.Provider, provider.OutagePolicy{}, opts.Log)
	}
	if opts.Sleep == nil {
		opts.Sleep = opts.Outage.Sleep
	}
	return &Trainer{api: api, opts: opts}
}

// Record is the durable note of a submitted job, written before waiting.
type Record struct {
	Key            string             `json:"key"`
	Provider       string             `json:"provider"`
	JobID          string             `json:"job_id"`
	Models         []string           `json:"models"`
	BaseModel      string             `json:"base_model"`
	SubmittedAt    time.Time          `json:"submitted_at"`
	Status         string             `json:"status"`
	FineTunedModel string             `json:"fine_tuned_model,omitempty"`
	FinishedAt     time.Time          `json:"finished_at,omitzero"`
	Error          *provider.JobError `json:"error,omitempty"`
}

func (t *Trainer) recordPath(key string) string {
	return filepath.Join(t.opts.Dir, provider.RecordName(key))
}

// DamagedError is a job record that cannot be trusted: unparseable, or not
// naming a job for the key its file is named after.
type DamagedError struct {
	Path string
	Err  error
}

func (e *DamagedError) Error() string {
	return fmt.Sprintf("job record %s is damaged: %v", e.Path, e.Err)
}

func (e *DamagedError) Unwrap() error { return e.Err }

// read returns key's record; nil if there is none. A damaged record comes
// back as a *DamagedError.
func (t *Trainer) read(key string) (*Record, error) {
	rec, err := t.load(t.recordPath(key))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err == nil && rec.Key != key {
		return nil, &DamagedError{Path: t.recordPath(key), Err: errors.New("it is the record of another key")}
	}
	return rec, err
}

// load reads and checks one record file.
func (t *Trainer) load(path string) (*Record, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("job record: %w", err)
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, &DamagedError{Path: path, Err: err}
	}
	switch {
	case rec.Key == "" || rec.JobID == "":
		return nil, &DamagedError{Path: path, Err: errors.New("it names no key or no job")}
	case t.recordPath(rec.Key) != path:
		return nil, &DamagedError{Path: path, Err: fmt.Errorf("its key %.16s does not match its file name", rec.Key)}
	}
	return &rec, nil
}

func (t *Trainer) write(rec *Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(t.recordPath(rec.Key), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record job %s: %w", rec.JobID, err)
	}
	return nil
}

// records lists the recorded jobs, oldest first, and the records that are
// damaged, so that one bad file does not hide the others.
func (t *Trainer) records() ([]Record, []*DamagedError, error) {
	paths, err := filepath.Glob(filepath.Join(t.opts.Dir, "*.json"))
	if err != nil {
		return nil, nil, err
	}
	var recs []Record
	var damaged []*DamagedError
	for _, path := range paths {
		rec, err := t.load(path)
		var de *DamagedError
		switch {
		case errors.As(err, &de):
			damaged = append(damaged, de)
			continue
		case errors.Is(err, fs.ErrNotExist):
			continue // removed meanwhile
		case err != nil:
			return nil, nil, err
		}
		recs = append(recs, *rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].SubmittedAt.Before(recs[j].SubmittedAt) })
	return recs, damaged, nil
}

// damagedProgress is the status row of a damaged record.
func damagedProgress(de *DamagedError) provider.Progress {
	return provider.Progress{Key: strings.TrimSuffix(filepath.Base(de.Path), ".json"), Error: de.Error()}
}

// retry runs call until it succeeds or fails in a way another try cannot
// cure: a permanent error (provider.Permanent, which includes what the
// provider's own transport refused to retry), an outage past the policy's
// maximum, or ctx's end. Anything else waits as the outage policy says,
// as long as the server asked if it did.
func retry[T any](ctx context.Context, t *Trainer, call func() (T, error)) (T, error) {
	c := t.opts.Outage.Call()
	for {
		v, err := provider.Do(ctx, t.opts.Limiter, call)
		if err == nil {
			t.opts.Outage.OK()
			return v, nil
		}
		if ctx.Err() != nil || provider.Permanent(err) || errors.Is(err, provider.ErrUnreachable) {
			return v, err
		}
		if werr := c.Wait(ctx, provider.RetryAfter(err), err); werr != nil {
			return v, werr
		}
	}
}

// owns reports whether job carries key in its metadata: a record whose job
// id was changed (by hand, by a bad merge) names someone else's job.
func owns(job provider.Job, key string) bool {
	return job.Metadata[MetadataKey] == key
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func (rec *Record) progress() provider.Progress {
	p := provider.Progress{Key: rec.Key, Models: rec.Models, Provider: rec.Provider, JobID: rec.JobID,
		State: rec.Status, Model: rec.FineTunedModel, Started: rec.SubmittedAt, Finished: rec.FinishedAt}
	if rec.Error != nil {
		p.Error = rec.Error.Error()
	}
	return p
}

// ended reports a record whose job can no longer give a model.
func (rec *Record) ended() bool {
	return rec.Status == provider.StatusFailed || rec.Status == provider.StatusCancelled
}

// Recorded implements provider.Trainer.
// A damaged record counts as none: Train looks for the job by its key.
func (t *Trainer) Recorded(key string) (*provider.Progress, error) {
	rec, err := t.read(key)
	var de *DamagedError
	if errors.As(err, &de) {
		return nil, nil
	}
	if rec == nil || err != nil {
		return nil, err
	}
	p := rec.progress()
	return &p, nil
}

// Train implements provider.Trainer.
func (t *Trainer) Train(ctx context.Context, req provider.TrainRequest) (provider.Trained, error) {
	label := strings.Join(req.Models, ", ")
	rec, err := t.submitOrAdopt(ctx, req, label)
	if err != nil {
		return provider.Trained{}, err
	}
	job, err := t.await(ctx, rec, label)
	if err != nil {
		return provider.Trained{}, fmt.Errorf("job %s: %w", rec.JobID, err)
	}
	if job.Status != provider.StatusSucceeded {
		reason := job.Status
		if job.Error != nil {
			reason += ": " + job.Error.Error()
		}
		return provider.Trained{}, fmt.Errorf("job %s %s", rec.JobID, reason)
	}
	out := provider.Trained{Model: job.FineTunedModel, JobID: job.ID, BaseModel: job.Model, Hyperparameters: job.Hyperparameters}
	if sf, ok := t.api.(provider.StateFiles); ok {
		if out.Files, err = sf.JobFiles(job.ID); err != nil {
			return provider.Trained{}, fmt.Errorf("job %s: %w", job.ID, err)
		}
	}
	return out, nil
}

// Submit starts the job for req.Key, or adopts the one already started,
// and records it without waiting for it to end.
func (t *Trainer) Submit(ctx context.Context, req provider.TrainRequest) (provider.Progress, error) {
	rec, err := t.submitOrAdopt(ctx, req, strings.Join(req.Models, ", "))
	if err != nil {
		return provider.Progress{}, err
	}
	return rec.progress(), nil
}

// submitOrAdopt returns the job for the key: the one recorded, or one the
// service already holds for this key, or a new submission, recorded before
// anything waits on it.
func (t *Trainer) submitOrAdopt(ctx context.Context, req provider.TrainRequest, label string) (*Record, error) {
	rec, err := t.read(req.Key)
	var de *DamagedError
	if errors.As(err, &de) {
		// What it named cannot be trusted; the key at the service can.
		fmt.Fprintf(t.opts.Log, "train %s: %v; looking for its job by key at provider %s\n", label, de, t.opts.Provider)
		rec, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	if rec != nil && req.Gone != "" && rec.FineTunedModel == req.Gone {
		fmt.Fprintf(t.opts.Log, "train %s: the model of job %s, %s, is gone; submitting again\n", label, rec.JobID, req.Gone)
		rec.Status = provider.StatusFailed
	}
	if rec != nil && !rec.ended() {
		job, err := retry(ctx, t, func() (provider.Job, error) { return t.api.GetJob(ctx, rec.JobID) })
		switch {
		case err == nil && owns(job, req.Key):
			fmt.Fprintf(t.opts.Log, "train %s: resuming %s\n", label, rec.JobID)
			return rec, nil
		case err == nil:
			// Adopting it would train, or evaluate, another target's model.
			fmt.Fprintf(t.opts.Log, "train %s: recorded job %s does not carry this target's key (it is model %s's); not adopting it\n",
				label, rec.JobID, orUnknown(job.Metadata["pvbuild_model"]))
		case errors.Is(err, provider.ErrNotFound) || errors.Is(err, provider.ErrInvalid):
			// The service forgot the job (the local engine's state was
			// deleted), or the id was never one: the record vouches for
			// nothing.
			fmt.Fprintf(t.opts.Log, "train %s: recorded job %s is unknown to provider %s; looking for its job by key\n", label, rec.JobID, t.opts.Provider)
		default:
			return nil, fmt.Errorf("recorded job %s: %w", rec.JobID, err)
		}
		rec = nil
	}
	// Always ask the service first: a run may have died after creating a
	// job and before recording it, whether or not an earlier job failed.
	if job, ok, err := t.find(ctx, req.Key, req.Gone); err != nil {
		return nil, err
	} else if ok {
		fmt.Fprintf(t.opts.Log, "train %s: adopting %s found by its key\n", label, job.ID)
		return t.record(req, job)
	}
	if rec != nil && rec.ended() && rec.FineTunedModel != req.Gone {
		fmt.Fprintf(t.opts.Log, "train %s: previous job %s %s; submitting again\n", label, rec.JobID, rec.Status)
	}
	file, err := provider.Do(ctx, t.opts.Limiter, func() (provider.File, error) {
		// Named by content, so that the same data uploads once whatever it trains.
		sum := sha256.Sum256(req.Data)
		return t.api.UploadFile(ctx, "pvbuild-"+hex.EncodeToString(sum[:8])+".jsonl", req.Data)
	})
	if err != nil {
		return nil, fmt.Errorf("upload training file: %w", err)
	}
	jr := provider.JobRequest{
		Model:           req.BaseModel,
		TrainingFile:    file.ID,
		Suffix:          req.Suffix,
		Seed:            req.Seed,
		Hyperparameters: req.Hyperparameters,
		Metadata:        map[string]string{MetadataKey: req.Key, "pvbuild_model": req.Models[0]},
	}
	job, err := t.create(ctx, req, jr, label)
	if err != nil {
		return nil, err
	}
	t.opts.AfterCreate()
	fmt.Fprintf(t.opts.Log, "train %s: submitted %s\n", label, job.ID)
	return t.record(req, job)
}

// create submits jr once. When the outcome is unknown (the request may
// have reached the service) it asks the service, as long as the outage
// policy allows, whether a job carries the key, adopts it if so, and
// creates again only once the service has answered that none does.
func (t *Trainer) create(ctx context.Context, req provider.TrainRequest, jr provider.JobRequest, label string) (provider.Job, error) {
	// The lookups between attempts succeed, which ends the provider's
	// outage; the Call bounds this create's own failures all the same.
	call := t.opts.Outage.Call()
	for {
		job, err := provider.Do(ctx, t.opts.Limiter, func() (provider.Job, error) { return t.api.CreateJob(ctx, jr) })
		if err == nil {
			return job, nil
		}
		if !errors.Is(err, provider.ErrMaybeCreated) {
			return provider.Job{}, fmt.Errorf("create job: %w", err)
		}
		// Even when the caller gave up (Ctrl-C), look before leaving, for
		// a bounded time, so that a created job is recorded.
		lctx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			lctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		}
		found, ok, lerr := t.find(lctx, req.Key, req.Gone)
		cancel()
		switch {
		case lerr != nil:
			return provider.Job{}, fmt.Errorf("create job: %w; and looking it up failed: %w", err, lerr)
		case ok:
			return found, nil
		case ctx.Err() != nil:
			return provider.Job{}, fmt.Errorf("create job: %w", err)
		}
		// The service says no job carries the key: the request did not
		// take, and sending it again cannot pay twice.
		fmt.Fprintf(t.opts.Log, "train %s: creating the job failed (%v) and provider %s holds none for its key; creating it again\n",
			label, err, t.opts.Provider)
		if werr := call.Wait(ctx, provider.RetryAfter(err), err); werr != nil {
			return provider.Job{}, fmt.Errorf("create job: %w", werr)
		}
	}
}

// find looks for a job of key that may still give a model other than gone.
func (t *Trainer) find(ctx context.Context, key, gone string) (provider.Job, bool, error) {
	jobs, err := retry(ctx, t, func() ([]provider.Job, error) {
		return t.api.ListJobs(ctx, map[string]string{MetadataKey: key})
	})
	if err != nil {
		return provider.Job{}, false, fmt.Errorf("list jobs: %w", err)
	}
	for _, j := range jobs { // newest first
		if owns(j, key) && j.Status != provider.StatusFailed && j.Status != provider.StatusCancelled && (gone == "" || j.FineTunedModel != gone) {
			return j, true, nil
		}
	}
	return provider.Job{}, false, nil
}

func (t *Trainer) record(req provider.TrainRequest, job provider.Job) (*Record, error) {
	rec := &Record{Key: req.Key, Provider: t.opts.Provider, JobID: job.ID, Models: req.Models,
		BaseModel: job.Model, SubmittedAt: job.CreatedAt, Status: job.Status}
	if rec.SubmittedAt.IsZero() {
		rec.SubmittedAt = time.Now()
	}
	if err := t.write(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// sleep waits about d with Options.Sleep, with jitter so that many jobs do
// not poll in step.
func (t *Trainer) sleep(ctx context.Context, d time.Duration) error {
	return t.opts.Sleep(ctx, d+time.Duration(rand.Int64N(int64(d)/5+1)))
}

// await polls a job until it ends, with growing, jittered intervals, and
// keeps its record current. An outage is waited out as the provider's
// outage policy says; only an error that polling again cannot cure, or an
// outage longer than the policy's maximum, ends the wait.
func (t *Trainer) await(ctx context.Context, rec *Record, label string) (provider.Job, error) {
	interval := t.opts.PollInterval
	now := t.opts.Outage.Now
	last, lastSaid := "", now()
	for polls := 0; ; polls++ {
		job, err := retry(ctx, t, func() (provider.Job, error) { return t.api.GetJob(ctx, rec.JobID) })
		if err != nil {
			return job, err
		}
		// A run killed while its create request was in flight can leave
		// the service creating a second job for the key after the next run
		// looked and created its own. Looking once the job is under way,
		// and again as it ends, cancels such a twin while it is still
		// queued, before it trains.
		if polls == 0 || provider.Terminal(job.Status) {
			t.cancelTwins(ctx, rec, label)
		}
		// Say each change of state, and that a long job is still alive.
		if job.Status != last || now().Sub(lastSaid) > t.opts.AliveEvery {
			last, lastSaid = job.Status, now()
			fmt.Fprintf(t.opts.Log, "train %s: %s %s (%s)\n", label, job.ID, job.Status, now().Sub(rec.SubmittedAt).Round(100*time.Millisecond))
		}
		if provider.Terminal(job.Status) {
			rec.Status, rec.FineTunedModel, rec.Error, rec.FinishedAt = job.Status, job.FineTunedModel, job.Error, job.FinishedAt
			return job, t.write(rec)
		}
		if err := t.sleep(ctx, interval); err != nil {
			return job, err
		}
		interval = min(interval*3/2, t.opts.MaxPollInterval)
	}
}

// cancelTwins cancels the live jobs other than rec's that carry its key.
// It is best effort: a failure to look is said and the wait goes on.
func (t *Trainer) cancelTwins(ctx context.Context, rec *Record, label string) {
	jobs, err := retry(ctx, t, func() ([]provider.Job, error) {
		return t.api.ListJobs(ctx, map[string]string{MetadataKey: rec.Key})
	})
	if err != nil {
		fmt.Fprintf(t.opts.Log, "train %s: cannot look for duplicate jobs of %s: %v\n", label, rec.JobID, err)
		return
	}
	for _, j := range jobs {
		if j.ID == rec.JobID || !owns(j, rec.Key) || provider.Terminal(j.Status) {
			continue
		}
		if _, err := retry(ctx, t, func() (provider.Job, error) { return t.api.CancelJob(ctx, j.ID) }); err != nil {
			fmt.Fprintf(t.opts.Log, "train %s: job %s duplicates %s for the same key and could not be cancelled: %v; cancel it by hand\n", label, j.ID, rec.JobID, err)
			continue
		}
		fmt.Fprintf(t.opts.Log, "train %s: cancelled job %s, a duplicate of %s for the same key (left by an interrupted run's request)\n", label, j.ID, rec.JobID)
	}
}

// Status implements provider.Trainer: every recorded job as the service
// sees it now, with its newest event.
func (t *Trainer) Status(ctx context.Context) ([]provider.Progress, error) {
	recs, damaged, err := t.records()
	if err != nil {
		return nil, err
	}
	out := make([]provider.Progress, len(recs))
	done := make(chan struct{})
	for i := range recs {
		go func() {
			defer func() { done <- struct{}{} }()
			rec := &recs[i]
			p := rec.progress()
			if rec.Provider != t.opts.Provider {
				p.Error = fmt.Sprintf("submitted on provider %q; run status with PROVIDER=%s to see it now", rec.Provider, rec.Provider)
				out[i] = p
				return
			}
			job, err := provider.Do(ctx, t.opts.Limiter, func() (provider.Job, error) { return t.api.GetJob(ctx, rec.JobID) })
			if err != nil {
				p.Error = "cannot query provider: " + err.Error()
				out[i] = p
				return
			}
			if !owns(job, rec.Key) {
				p.Error = fmt.Sprintf("job %s does not carry this record's key (it is model %s's): the record %s was altered",
					rec.JobID, orUnknown(job.Metadata["pvbuild_model"]), t.recordPath(rec.Key))
				out[i] = p
				return
			}
			p.State, p.Model, p.Finished, p.Error = job.Status, job.FineTunedModel, job.FinishedAt, ""
			if job.Error != nil {
				p.Error = job.Error.Error()
			}
			p.Event = t.lastEvent(ctx, rec.JobID)
			out[i] = p
		}()
	}
	for range recs {
		<-done
	}
	for _, de := range damaged {
		out = append(out, damagedProgress(de))
	}
	return out, nil
}

// lastEvent is the newest line of a job's log, when the service keeps one.
func (t *Trainer) lastEvent(ctx context.Context, jobID string) string {
	el, ok := t.api.(provider.EventLister)
	if !ok {
		return ""
	}
	events, err := provider.Do(ctx, t.opts.Limiter, func() ([]provider.Event, error) { return el.JobEvents(ctx, jobID) })
	if err != nil || len(events) == 0 {
		return ""
	}
	return events[len(events)-1].Message
}

// Cancel implements provider.Trainer: it cancels every recorded job of this
// provider that has not ended.
//
// A damaged record is reported and the others are cancelled all the same;
// a record whose job does not carry its key is never acted on, so a
// tampered record cannot cancel someone else's job.
func (t *Trainer) Cancel(ctx context.Context) ([]provider.Progress, error) {
	recs, damaged, err := t.records()
	if err != nil {
		return nil, err
	}
	var cancelled []provider.Progress
	var errs []error
	for _, de := range damaged {
		errs = append(errs, fmt.Errorf("%w; its job, if any, was not cancelled", de))
	}
	for _, rec := range recs {
		if provider.Terminal(rec.Status) {
			continue
		}
		models := strings.Join(rec.Models, ", ")
		if rec.Provider != t.opts.Provider {
			errs = append(errs, fmt.Errorf("model %s: job %s was submitted on provider %q, not %q; run cancel with PROVIDER=%s",
				models, rec.JobID, rec.Provider, t.opts.Provider, rec.Provider))
			continue
		}
		job, err := retry(ctx, t, func() (provider.Job, error) { return t.api.GetJob(ctx, rec.JobID) })
		if err != nil {
			errs = append(errs, fmt.Errorf("model %s: job %s: %w", models, rec.JobID, err))
			continue
		}
		if !owns(job, rec.Key) {
			errs = append(errs, fmt.Errorf("model %s: job %s does not carry the key of record %s (it is model %s's); not cancelled",
				models, rec.JobID, t.recordPath(rec.Key), orUnknown(job.Metadata["pvbuild_model"])))
			continue
		}
		// The record may be behind: a job that ended meanwhile is not cancelled.
		if provider.Terminal(job.Status) {
			rec.Status, rec.FineTunedModel, rec.Error, rec.FinishedAt = job.Status, job.FineTunedModel, job.Error, job.FinishedAt
			if err := t.write(&rec); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		// Cancelling twice cancels once: a retry cannot do harm.
		job, err = retry(ctx, t, func() (provider.Job, error) { return t.api.CancelJob(ctx, rec.JobID) })
		if err != nil {
			errs = append(errs, fmt.Errorf("model %s: job %s: %w", models, rec.JobID, err))
			continue
		}
		rec.Status = job.Status
		if err := t.write(&rec); err != nil {
			errs = append(errs, err)
			continue
		}
		cancelled = append(cancelled, rec.progress())
	}
	return cancelled, errors.Join(errs...)
}
