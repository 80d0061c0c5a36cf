package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// TrainedModel is what a finished training target records.
type TrainedModel struct {
	Model           string                   `json:"model"`
	Provider        string                   `json:"provider"`
	JobID           string                   `json:"job_id"`
	BaseModel       string                   `json:"base_model"`
	FineTunedModel  string                   `json:"fine_tuned_model"`
	Hyperparameters provider.Hyperparameters `json:"hyperparameters"`
	Key             string                   `json:"key"`
}

func (r *run) buildDataset(_ context.Context, t *target, in build.Inputs) error {
	d := r.p.datasets[t.model.Name]
	data, err := d.Data()
	if err != nil {
		return fmt.Errorf("model %s: dataset %s: %w", t.model.Name, d.name, err)
	}
	if err := r.commit(t, in, map[string][]byte{datasetOut(t.model.Name): data}, nil); err != nil {
		return fmt.Errorf("model %s: %w", t.model.Name, err)
	}
	fmt.Fprintf(r.p.log, "dataset %s: %d examples (%s)\n", t.model.Name, d.examples, r.states[t].reason)
	return nil
}

// training is one training in flight, shared by every target with its key.
type training struct {
	once    sync.Once
	trained provider.Trained
	err     error
}

func (r *run) buildTrain(ctx context.Context, t *target, in build.Inputs) error {
	key := in.Key()
	v, _ := r.trainings.LoadOrStore(key, &training{})
	tr := v.(*training)
	tr.once.Do(func() { tr.trained, tr.err = r.startTraining(ctx, key) })
	if tr.err != nil {
		return tr.err
	}
	m := t.model
	tm := TrainedModel{Model: m.Name, Provider: r.p.exp.Training.Provider, JobID: tr.trained.JobID, BaseModel: tr.trained.BaseModel,
		FineTunedModel: tr.trained.Model, Hyperparameters: tr.trained.Hyperparameters, Key: key}
	b, _ := json.MarshalIndent(tm, "", "  ")
	if err := r.commit(t, in, map[string][]byte{trainOut(m.Name): append(b, '\n')}, tr.trained.Files); err != nil {
		return fmt.Errorf("model %s: %w", m.Name, err)
	}
	return nil
}

// startTraining trains once for every stale model with this key.
func (r *run) startTraining(ctx context.Context, key string) (provider.Trained, error) {
	var models []*config.Model
	r.mu.Lock()
	for _, t := range r.p.trainTargets {
		if st := r.states[t]; !st.fresh && st.inputs != nil && st.inputsKey() == key {
			models = append(models, t.model)
		}
	}
	r.mu.Unlock()
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	req, err := r.p.trainRequest(key, models)
	if err != nil {
		return provider.Trained{}, fmt.Errorf("model %s: %w", strings.Join(names, ", "), err)
	}
	req.Gone = r.goneModel(models)
	if err := r.recordSpend(ctx, key, models[0], names); err != nil {
		return provider.Trained{}, fmt.Errorf("model %s: %w", strings.Join(names, ", "), err)
	}
	trained, err := r.p.trainWithinLimit(ctx, req)
	if err != nil {
		return provider.Trained{}, r.check(fmt.Errorf("model %s: %w", strings.Join(names, ", "), err))
	}
	return trained, nil
}

// goneModel is the model an earlier build of these trainings recorded and
// found lost at the provider (its stamp was invalidated for it), or "".
func (r *run) goneModel(models []*config.Model) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.p.trainTargets {
		st := r.states[t]
		if t.model != models[0] || st.stamp == nil || st.stamp.Stale == "" {
			continue
		}
		var tm TrainedModel
		if readJSON(r.p.cache, st.stamp, trainOut(t.model.Name), &tm) == nil {
			return tm.FineTunedModel
		}
	}
	return ""
}

// trainRequest is the training of models, which share key: the first
// one's data and settings are everyone's.
func (p *Pipeline) trainRequest(key string, models []*config.Model) (provider.TrainRequest, error) {
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	m := models[0]
	data, err := p.datasets[m.Name].Data()
	if err != nil {
		return provider.TrainRequest{}, fmt.Errorf("dataset %s: %w", p.datasets[m.Name].name, err)
	}
	return provider.TrainRequest{
		Key: key, Models: names, Data: data,
		BaseModel: m.BaseModel, Suffix: m.Suffix, Seed: m.Seed,
		Hyperparameters: m.Hyperparameters,
	}, nil
}

// recordSpend enters a paid training's estimate in the ledger before it is
// submitted; a free provider's trainings cost nothing to record. The
// estimate checkBudget made for this key is reused.
func (r *run) recordSpend(ctx context.Context, key string, m *config.Model, names []string) error {
	r.mu.Lock()
	est, ok := r.estimates[key]
	r.mu.Unlock()
	if !ok {
		var err error
		if est, err = r.p.estimate(ctx, m); err != nil {
			return err
		}
	}
	if est.Free {
		return nil
	}
	return r.p.recordSpend(key, names, est.USD, est.Priced)
}

// checkBudget refuses, before anything starts, a build whose new trainings,
// with what the experiment's earlier trainings were estimated at (the
// ledger under artifacts/spend), are above budget_usd. Trainings already
// started are paid for, and counted as spent.
func (r *run) checkBudget(ctx context.Context) error {
	p := r.p
	t := p.exp.Training
	if t.BudgetUSD <= 0 {
		return nil
	}
	var total float64
	var unpriced []string
	seen := map[string]bool{}
	submit := map[string]bool{} // keys this build would submit: new spending
	n := 0
	for _, tg := range p.targets {
		st := r.states[tg]
		if tg.stage != stageTrain || st.fresh {
			continue
		}
		key := st.inputs.Key()
		if seen[key] {
			continue
		}
		seen[key] = true
		if rec, err := p.training.trainer.Recorded(key); err == nil && rec != nil && rec.State != provider.StatusFailed && rec.State != provider.StatusCancelled {
			continue
		}
		submit[key] = true
		est, err := p.estimate(ctx, tg.model)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.estimates[key] = est
		r.mu.Unlock()
		if est.Free {
			continue
		}
		if !est.Priced {
			unpriced = append(unpriced, tg.model.Name)
		}
		total += est.USD
		n++
	}
	spent, spentJobs, err := p.spent(submit)
	if err != nil {
		return p.exp.Errorf(t.BudgetRange, "Spending unknown", "%v, so budget_usd cannot be checked. Nothing was submitted.", err)
	}
	if len(unpriced) > 0 {
		return p.exp.Errorf(t.BudgetRange, "Cost unknown", "No training price is known for base model %q (models %s), so budget_usd cannot be checked; set price_per_million_tokens = { %q = <USD> } in the training block. Nothing was submitted.",
			t.BaseModel, strings.Join(unpriced, ", "), t.BaseModel)
	}
	if n > 0 && spent+total > t.BudgetUSD {
		if spentJobs == 0 {
			return p.exp.Errorf(t.BudgetRange, "Over budget", "Training would submit %d job(s) estimated at $%.2f in total, above budget_usd = %g. Nothing was submitted.", n, total, t.BudgetUSD)
		}
		return p.exp.Errorf(t.BudgetRange, "Over budget", "Training would submit %d job(s) estimated at $%.2f; this experiment has already submitted %d training(s) estimated at $%.2f (recorded under %s); together $%.2f, above budget_usd = %g. Nothing was submitted.",
			n, total, spentJobs, spent, p.artifactPath(spendDir), spent+total, t.BudgetUSD)
	}
	if total > 0 {
		fmt.Fprintf(p.log, "training: %d job(s) estimated at $%.2f, within budget_usd = %g with the $%.2f already spent\n", n, total, t.BudgetUSD, spent)
	}
	return nil
}

// estimate prices a model's training, when its provider knows its prices.
func (p *Pipeline) estimate(ctx context.Context, m *config.Model) (provider.Estimate, error) {
	tr := p.exp.Training
	epochs := m.Hyperparameters.NEpochs
	if epochs == 0 {
		epochs = config.DefaultNEpochs
	}
	pricing, ok := p.exp.Providers[tr.Provider].Config.(provider.Pricing)
	if !ok {
		return provider.Estimate{Epochs: epochs}, nil
	}
	data, err := p.datasets[m.Name].Data()
	if err != nil {
		return provider.Estimate{}, fmt.Errorf("model %s: dataset %s: %w", m.Name, p.datasets[m.Name].name, err)
	}
	est, err := pricing.EstimateTraining(ctx, provider.EstimateRequest{BaseModel: m.BaseModel, Data: data,
		Epochs: epochs, Overrides: tr.PricePerMillion, Artifacts: p.opts.Artifacts})
	if err != nil {
		return provider.Estimate{}, fmt.Errorf("model %s: %w", m.Name, err)
	}
	return est, nil
}

func (p *Pipeline) describeTraining(t *target, est provider.Estimate) string {
	tr := p.exp.Training
	m := t.model
	h := m.Hyperparameters
	examples, _ := p.datasets[m.Name].Examples() // an unusable dataset is reported by the dataset stage
	s := fmt.Sprintf("%s job: %s, suffix %s, %d examples, n_epochs %d", tr.Provider, m.BaseModel, m.Suffix,
		examples, h.NEpochs)
	if h.LearningRateMultiplier > 0 {
		s += fmt.Sprintf(", learning_rate_multiplier %g", h.LearningRateMultiplier)
	}
	if h.BatchSize > 0 {
		s += fmt.Sprintf(", batch_size %d", h.BatchSize)
	}
	if h.LoRARank > 0 {
		s += fmt.Sprintf(", lora_rank %d", h.LoRARank)
	}
	if m.Seed != tr.Seed {
		s += fmt.Sprintf(", seed %d", m.Seed)
	}
	if est.Free {
		return s + "; free (" + tr.Provider + " provider)"
	}
	return s + "; " + est.String()
}

// jobRow is a status table row.
func jobRow(pr provider.Progress) report.JobRow {
	row := report.JobRow{Models: strings.Join(pr.Models, ", "), JobID: pr.JobID, State: pr.State,
		FineTunedModel: pr.Model, Error: pr.Error, LastEvent: pr.Event}
	if pr.Steps > 0 {
		row.Progress = fmt.Sprintf("step %d/%d", pr.Step, pr.Steps)
		if pr.Loss != nil {
			row.Progress += fmt.Sprintf(", loss %.3f", *pr.Loss)
		}
	}
	end := pr.Finished
	if end.IsZero() {
		end = time.Now()
	}
	if !pr.Started.IsZero() {
		row.Elapsed = end.Sub(pr.Started).Round(time.Second)
	}
	return row
}
