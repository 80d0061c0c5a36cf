package pipeline

import (
	"context"
	"fmt"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// trainingLimit is the limiter of trainings in flight: max_parallel, else
// config.DefaultMaxParallel for a paid provider and none for a free one,
// whose trainings cost nothing to run side by side.
func (p *Pipeline) trainingLimit() provider.Limiter {
	t := p.exp.Training
	n := t.MaxParallel
	if n == 0 {
		if pr, ok := p.exp.Providers[t.Provider].Config.(provider.Pricing); ok && pr.Free() {
			return nil
		}
		n = config.DefaultMaxParallel
	}
	return provider.NewLimiter(n)
}

// trainWithinLimit trains req once a slot is free; a training that waits
// says so, so a queued sweep does not look stuck.
func (p *Pipeline) trainWithinLimit(ctx context.Context, req provider.TrainRequest) (provider.Trained, error) {
	if p.trainSlots == nil {
		return p.training.trainer.Train(ctx, req)
	}
	select {
	case p.trainSlots <- struct{}{}:
	default:
		fmt.Fprintf(p.log, "train %s: queued, %d training(s) in flight already (max_parallel = %d)\n",
			strings.Join(req.Models, ", "), cap(p.trainSlots), cap(p.trainSlots))
		select {
		case p.trainSlots <- struct{}{}:
		case <-ctx.Done():
			return provider.Trained{}, ctx.Err()
		}
	}
	defer func() { <-p.trainSlots }()
	return p.training.trainer.Train(ctx, req)
}

// CheckBudget refuses a plan whose new trainings, with what the
// experiment has spent already, are estimated above budget_usd, naming the
// total and where the budget is set: plan prints the sweep's size first,
// then fails, so a sweep too dear is seen before anything is submitted.
func (p *Pipeline) CheckBudget(pl *Plan) error {
	usd, unpriced, _ := pl.Cost()
	t := p.exp.Training
	if pl.Budget <= 0 || unpriced > 0 || pl.Spent+usd <= pl.Budget {
		return nil
	}
	_, jobs := pl.Stale()
	return p.exp.Errorf(t.BudgetRange, "Over budget", "This build would submit %d training job(s) estimated at $%.2f; with the $%.2f already spent, $%.2f in total, above budget_usd = %g. Nothing was submitted.",
		jobs, usd, pl.Spent, pl.Spent+usd, pl.Budget)
}
