package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/openai"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// MetadataKey tags every submitted job with its target's key, so a run that
// died between creating a job and recording it finds the job and adopts it.
const MetadataKey = "pvbuild_key"

// afterCreate runs between creating a job and recording it; tests use it to
// die at the worst moment.
var afterCreate = func() {}

// JobRecord is the durable note of a submitted job, written before waiting.
type JobRecord struct {
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

func jobRecordPath(key string) string { return "jobs/" + key[:16] + ".json" }

func (p *Pipeline) readJobRecord(key string) (*JobRecord, error) {
	var rec JobRecord
	err := readJSON(p.store.Path(jobRecordPath(key)), &rec)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &rec, nil
}

func (p *Pipeline) writeJobRecord(rec *JobRecord) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(p.store.Path(jobRecordPath(rec.Key)), append(b, '\n'), 0o644)
}

// JobRecords lists the recorded jobs, oldest first.
func (p *Pipeline) JobRecords() ([]JobRecord, error) {
	paths, err := filepath.Glob(p.store.Path("jobs/*.json"))
	if err != nil {
		return nil, err
	}
	var recs []JobRecord
	for _, path := range paths {
		var rec JobRecord
		if err := readJSON(path, &rec); err != nil {
			return nil, err
		}
		recs = append(recs, rec)
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].SubmittedAt.Before(recs[j].SubmittedAt) })
	return recs, nil
}

// buildDatasets writes every stale dataset target.
func (p *Pipeline) buildDatasets(ctx context.Context) error {
	for _, m := range p.exp.Models {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := p.datasets[m.Name]
		st, err := p.check(datasetID(m.Name), d.inputs)
		if err != nil {
			return err
		}
		if st.Fresh {
			continue
		}
		if _, err := p.store.Commit(datasetID(m.Name), d.inputs, map[string][]byte{datasetOut(m.Name): d.data}); err != nil {
			return fmt.Errorf("model %s: %w", m.Name, err)
		}
		fmt.Fprintf(p.log, "dataset %s: %d examples (%s)\n", m.Name, countLines(d.data), st.Reason)
	}
	return nil
}

// Train brings every training target up to date: all stale jobs are
// submitted at once and awaited together. A failed job does not stop the
// others; every failure is returned, each naming its model and job.
func (p *Pipeline) Train(ctx context.Context) error {
	if err := p.buildDatasets(ctx); err != nil {
		return err
	}
	type group struct {
		key    string
		inputs build.Inputs
		models []config.Model
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, m := range p.exp.Models {
		in := p.trainInputs(m)
		st, err := p.check(trainID(m.Name), in)
		if err != nil {
			return err
		}
		if st.Fresh {
			continue
		}
		key := in.Key()
		g := byKey[key]
		if g == nil {
			g = &group{key: key, inputs: in}
			byKey[key] = g
			groups = append(groups, g)
		}
		g.models = append(g.models, m)
	}
	if len(groups) == 0 {
		fmt.Fprintln(p.log, "training: every model is up to date")
		return nil
	}
	firstByKey := map[string]config.Model{}
	for _, g := range groups {
		firstByKey[g.key] = g.models[0]
	}
	if err := p.checkBudget(firstByKey); err != nil {
		return err
	}
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.trainGroup(ctx, g.key, g.inputs, g.models)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// checkBudget refuses, before anything is submitted, a build whose new jobs
// are estimated above budget_usd. Jobs already submitted are paid for.
func (p *Pipeline) checkBudget(byKey map[string]config.Model) error {
	t := p.exp.Training
	if t.BudgetUSD <= 0 {
		return nil
	}
	var total float64
	var unpriced []string
	n := 0
	for key, m := range byKey {
		if rec, err := p.readJobRecord(key); err == nil && rec != nil && rec.Status != provider.StatusFailed && rec.Status != provider.StatusCancelled {
			continue
		}
		est, err := p.estimate(m)
		if err != nil {
			return fmt.Errorf("model %s: %w", m.Name, err)
		}
		if !est.Priced {
			unpriced = append(unpriced, m.Name)
		}
		total += est.USD
		n++
	}
	if len(unpriced) > 0 {
		sort.Strings(unpriced)
		return p.exp.Errorf(t.BudgetRange, "Cost unknown", "No training price is known for base model %q (models %s), so budget_usd cannot be checked; set price_per_million_tokens = { %q = <USD> } in the training block. Nothing was submitted.",
			t.BaseModel, strings.Join(unpriced, ", "), t.BaseModel)
	}
	if total > t.BudgetUSD {
		return p.exp.Errorf(t.BudgetRange, "Over budget", "Training would submit %d job(s) estimated at $%.2f in total, above budget_usd = %g. Nothing was submitted.", n, total, t.BudgetUSD)
	}
	if total > 0 {
		fmt.Fprintf(p.log, "training: %d job(s) estimated at $%.2f, within budget_usd = %g\n", n, total, t.BudgetUSD)
	}
	return nil
}

func (p *Pipeline) trainGroup(ctx context.Context, key string, inputs build.Inputs, models []config.Model) error {
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	label := strings.Join(names, ", ")
	rec, err := p.submitOrAdopt(ctx, key, models, names)
	if err != nil {
		return fmt.Errorf("model %s: %w", label, err)
	}
	job, err := p.await(ctx, rec, label)
	if err != nil {
		return fmt.Errorf("model %s: job %s: %w", label, rec.JobID, err)
	}
	if job.Status != provider.StatusSucceeded {
		reason := job.Status
		if job.Error != nil {
			reason += ": " + job.Error.Error()
		}
		return fmt.Errorf("model %s: job %s %s", label, rec.JobID, reason)
	}
	for _, m := range models {
		tm := TrainedModel{
			Model: m.Name, Provider: p.exp.Training.Provider, JobID: job.ID, BaseModel: job.Model,
			FineTunedModel: job.FineTunedModel, Hyperparameters: job.Hyperparameters, Key: key,
		}
		b, _ := json.MarshalIndent(tm, "", "  ")
		if _, err := p.store.Commit(trainID(m.Name), inputs, map[string][]byte{trainOut(m.Name): append(b, '\n')}); err != nil {
			return fmt.Errorf("model %s: %w", m.Name, err)
		}
	}
	return nil
}

// submitOrAdopt returns the job for key: the one recorded, or one the
// provider already holds for this key, or a new submission, recorded before
// anything waits on it.
func (p *Pipeline) submitOrAdopt(ctx context.Context, key string, models []config.Model, names []string) (*JobRecord, error) {
	tc := p.training
	rec, err := p.readJobRecord(key)
	if err != nil {
		return nil, err
	}
	if rec != nil && rec.Status != provider.StatusFailed && rec.Status != provider.StatusCancelled {
		fmt.Fprintf(p.log, "train %s: resuming %s\n", strings.Join(names, ", "), rec.JobID)
		return rec, nil
	}
	// Always ask the provider first: a run may have died after creating a
	// job and before recording it, whether or not an earlier job failed.
	if job, ok, err := p.findJob(ctx, key); err != nil {
		return nil, err
	} else if ok {
		fmt.Fprintf(p.log, "train %s: adopting %s found by its key\n", strings.Join(names, ", "), job.ID)
		return p.record(key, names, job)
	}
	if rec != nil {
		fmt.Fprintf(p.log, "train %s: previous job %s %s; submitting again\n", strings.Join(names, ", "), rec.JobID, rec.Status)
	}
	m := models[0]
	data := p.datasets[m.Name].data
	file, err := within(ctx, tc, func() (provider.File, error) {
		return tc.p.UploadFile(ctx, "pvbuild-"+build.Hash(data)[:16]+".jsonl", data)
	})
	if err != nil {
		return nil, fmt.Errorf("upload training file: %w", err)
	}
	req := provider.JobRequest{
		Model:           p.exp.Training.BaseModel,
		TrainingFile:    file.ID,
		Suffix:          m.Suffix,
		Seed:            p.exp.Training.Seed,
		Hyperparameters: m.Hyperparameters,
		Metadata:        map[string]string{MetadataKey: key, "pvbuild_model": m.Name},
	}
	job, err := within(ctx, tc, func() (provider.Job, error) { return tc.p.CreateJob(ctx, req) })
	if err != nil {
		// The request may have reached the provider before the failure:
		// adopt what it holds rather than risk paying twice.
		// Even when the caller gave up (Ctrl-C), look once more before leaving.
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		found, ok, lerr := p.findJob(lctx, key)
		cancel()
		if lerr == nil && ok {
			job = found
		} else {
			return nil, fmt.Errorf("create job: %w", err)
		}
	}
	afterCreate()
	fmt.Fprintf(p.log, "train %s: submitted %s\n", strings.Join(names, ", "), job.ID)
	return p.record(key, names, job)
}

func (p *Pipeline) findJob(ctx context.Context, key string) (provider.Job, bool, error) {
	jobs, err := within(ctx, p.training, func() ([]provider.Job, error) {
		return p.training.p.ListJobs(ctx, map[string]string{MetadataKey: key})
	})
	if err != nil {
		return provider.Job{}, false, fmt.Errorf("list jobs: %w", err)
	}
	for _, j := range jobs { // newest first
		if j.Status != provider.StatusFailed && j.Status != provider.StatusCancelled {
			return j, true, nil
		}
	}
	return provider.Job{}, false, nil
}

func (p *Pipeline) record(key string, names []string, job provider.Job) (*JobRecord, error) {
	rec := &JobRecord{Key: key, Provider: p.exp.Training.Provider, JobID: job.ID, Models: names,
		BaseModel: job.Model, SubmittedAt: job.CreatedAt, Status: job.Status}
	if rec.SubmittedAt.IsZero() {
		rec.SubmittedAt = time.Now()
	}
	if err := p.writeJobRecord(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// maxPollInterval caps the growing wait between polls: a remote fine-tune
// takes minutes to hours and is polled at most twice a minute once it has
// run a while; the local engine's take seconds.
func (p *Pipeline) maxPollInterval() time.Duration {
	if p.exp.Providers[p.exp.Training.Provider].Kind == config.KindLocal {
		return 8 * p.opts.PollInterval
	}
	return 30 * time.Second
}

// sleep waits about d, with jitter so that many jobs do not poll in step.
func sleep(ctx context.Context, d time.Duration) error {
	jitter := time.Duration(rand.Int64N(int64(d)/5 + 1))
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d + jitter):
		return nil
	}
}

// permanent reports errors that polling again cannot cure: the job is
// unknown, or the request is refused (bad key, no access).
func permanent(err error) bool {
	var api *openai.APIError
	if errors.As(err, &api) {
		return api.Status >= 400 && api.Status < 500 && api.Status != 408 && api.Status != 429
	}
	return errors.Is(err, local.ErrJobNotFound)
}

// await polls a job until it ends, with growing, jittered intervals, and
// keeps its record current.
func (p *Pipeline) await(ctx context.Context, rec *JobRecord, label string) (provider.Job, error) {
	interval := p.opts.PollInterval
	last, lastSaid := "", time.Now()
	for {
		job, err := within(ctx, p.training, func() (provider.Job, error) { return p.training.p.GetJob(ctx, rec.JobID) })
		switch {
		case err == nil:
		case ctx.Err() != nil || permanent(err):
			return job, err
		default:
			// The provider is down for a while; the job runs on regardless.
			fmt.Fprintf(p.log, "train %s: %s: cannot poll (%v); trying again\n", label, rec.JobID, err)
			if err := sleep(ctx, interval); err != nil {
				return job, err
			}
			interval = min(interval*3/2, p.maxPollInterval())
			continue
		}
		// Say each change of state, and that a long job is still alive.
		if job.Status != last || time.Since(lastSaid) > 5*time.Minute {
			last, lastSaid = job.Status, time.Now()
			fmt.Fprintf(p.log, "train %s: %s %s (%s)\n", label, job.ID, job.Status, time.Since(rec.SubmittedAt).Round(100*time.Millisecond))
		}
		if provider.Terminal(job.Status) {
			rec.Status, rec.FineTunedModel, rec.Error, rec.FinishedAt = job.Status, job.FineTunedModel, job.Error, job.FinishedAt
			return job, p.writeJobRecord(rec)
		}
		if err := sleep(ctx, interval); err != nil {
			return job, err
		}
		interval = min(interval*3/2, p.maxPollInterval())
	}
}

// Cancel cancels every recorded job of this experiment that has not ended,
// and returns what it cancelled.
func (p *Pipeline) Cancel(ctx context.Context) ([]JobRecord, error) {
	recs, err := p.JobRecords()
	if err != nil {
		return nil, err
	}
	var cancelled []JobRecord
	var errs []error
	for _, rec := range recs {
		if provider.Terminal(rec.Status) {
			continue
		}
		if rec.Provider != p.exp.Training.Provider {
			errs = append(errs, fmt.Errorf("model %s: job %s was submitted on provider %q, not %q; run cancel with PROVIDER=%s",
				strings.Join(rec.Models, ", "), rec.JobID, rec.Provider, p.exp.Training.Provider, rec.Provider))
			continue
		}
		// The record may be behind: a job that ended meanwhile is not cancelled.
		if job, err := p.training.p.GetJob(ctx, rec.JobID); err == nil && provider.Terminal(job.Status) {
			rec.Status, rec.FineTunedModel, rec.Error, rec.FinishedAt = job.Status, job.FineTunedModel, job.Error, job.FinishedAt
			if err := p.writeJobRecord(&rec); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		job, err := p.training.p.CancelJob(ctx, rec.JobID)
		if err != nil {
			errs = append(errs, fmt.Errorf("model %s: job %s: %w", strings.Join(rec.Models, ", "), rec.JobID, err))
			continue
		}
		rec.Status = job.Status
		if err := p.writeJobRecord(&rec); err != nil {
			errs = append(errs, err)
			continue
		}
		cancelled = append(cancelled, rec)
	}
	return cancelled, errors.Join(errs...)
}
