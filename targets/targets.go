// Package targets holds the Mage targets. Each one reads its settings from
// the environment, calls internal/pipeline and prints; nothing else.
package targets

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/pipeline"
	"github.com/modelorganisms/pvbuild/internal/providers"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// Plan shows every target as fresh or stale, with the reason, and the training jobs a build would submit.
func Plan(ctx context.Context) error {
	pl, err := pipeline.LoadPlan(ctx, env())
	if err != nil {
		return err
	}
	if _, err := os.Stdout.Write(pl.Text()); err != nil {
		return fmt.Errorf("print the plan: %w", err)
	}
	// Which protocol the evaluations follow, and where the file departs
	// from it: a number is comparable only with its protocol's.
	fmt.Println("evaluation: " + pl.Protocol)
	stale, jobs := pl.Stale()
	if stale == 0 {
		fmt.Println("everything is fresh: nothing to do")
		return nil
	}
	usd, unpriced, calls := pl.Cost()
	fmt.Printf("%d of %d targets stale; a build would submit %d training job(s), estimated $%.2f", stale, len(pl.Steps()), jobs, usd)
	if unpriced > 0 {
		fmt.Printf(" plus %d job(s) of unknown price", unpriced)
	}
	fmt.Printf(", and make %d chat calls to evaluate", calls)
	if sampling, priced := pl.SamplingCost(); priced {
		fmt.Printf(", at most $%.2f", sampling)
	}
	fmt.Println()
	if pl.SpentJobs > 0 {
		// budget_usd covers every training the experiment submitted.
		fmt.Printf("already spent: %d earlier training(s) estimated at $%.2f; with this build $%.2f", pl.SpentJobs, pl.Spent, pl.Spent+usd)
		if pl.Budget > 0 {
			fmt.Printf(" of budget_usd = %g", pl.Budget)
		}
		fmt.Println()
	}
	return pl.CheckBudget()
}

// Train submits every stale training job at once, waits for them with progress, and records the trained models.
func Train(ctx context.Context) error {
	p, unlock, err := connect(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	return p.Train(ctx)
}

// Status shows the training jobs: model, job id, state, fine-tuned model, elapsed time and error.
func Status(ctx context.Context) error {
	// No lock: status is read while train runs.
	p, err := connectUnlocked(ctx)
	if err != nil {
		return err
	}
	defer p.Close()
	rows, err := p.Status(ctx)
	if err != nil {
		return err
	}
	if len(rows) == 0 {
		fmt.Println("no training jobs: every model is trained and none is pending")
		return nil
	}
	return report.Jobs(os.Stdout, rows)
}

// Evaluate scores every trained model on every task; models whose training is not finished are skipped with the reason.
func Evaluate(ctx context.Context) error {
	p, unlock, err := connect(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	skipped, err := p.Evaluate(ctx)
	for _, s := range skipped {
		fmt.Printf("skipped %s: %s\n", s.Model, s.Reason)
	}
	return err
}

// Results runs the whole experiment end to end, prints the summary table and writes artifacts/eval_results.json.
func Results(ctx context.Context) error {
	if out, ok := pipeline.SnapshotResults(env()); ok {
		_, err := os.Stdout.Write(out.Tables)
		if err != nil {
			return fmt.Errorf("print the results: %w", err)
		}
		return nil
	}
	p, unlock, err := connect(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	out, err := p.Results(ctx)
	if out != nil {
		// The tables show current evaluations only; say which are not.
		report.NotCurrent(os.Stdout, out.NotCurrent)
	}
	if out != nil && len(out.Tables) > 0 {
		if _, werr := os.Stdout.Write(out.Tables); werr != nil && err == nil {
			err = fmt.Errorf("print the results: %w", werr)
		}
	}
	return err
}

// Cancel cancels the experiment's running training jobs and prints what it cancelled.
func Cancel(ctx context.Context) error {
	// No lock: cancel is for jobs a running train is waiting on.
	p, err := connectUnlocked(ctx)
	if err != nil {
		return err
	}
	defer p.Close()
	cancelled, err := p.Cancel(ctx)
	for _, rec := range cancelled {
		fmt.Printf("cancelled %s (%s): %s\n", rec.JobID, strings.Join(rec.Models, ", "), rec.State)
	}
	if len(cancelled) == 0 && err == nil {
		fmt.Println("no running training jobs")
	}
	return err
}

// Clean removes local artifacts; remote fine-tuning jobs are never cancelled.
func Clean() error {
	return pipeline.Clean(pipelineArtifacts())
}

func pipelineArtifacts() string { return env().Artifacts }

// env is the experiment as the environment names it, with the shipped
// provider kinds.
func env() pipeline.Env { return pipeline.EnvFromOS(os.Stdout, providers.Default()) }

func connectUnlocked(ctx context.Context) (*pipeline.Pipeline, error) {
	p, err := pipeline.Load(ctx, env())
	if err != nil {
		return nil, err
	}
	return p, p.Connect(ctx)
}

func connect(ctx context.Context) (*pipeline.Pipeline, func(), error) {
	p, err := pipeline.Load(ctx, env())
	if err != nil {
		return nil, nil, err
	}
	lock, err := p.Lock()
	if err != nil {
		return nil, nil, err
	}
	if err := p.Connect(ctx); err != nil {
		lock.Unlock()
		return nil, nil, err
	}
	return p, func() {
		p.Close()
		lock.Unlock()
	}, nil
}
