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
