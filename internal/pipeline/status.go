package pipeline

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/report"
)

// Status reports every recorded training job as the provider sees it now,
// and every model that has no job yet.
func (p *Pipeline) Status(ctx context.Context) ([]report.JobRow, error) {
	recs, err := p.JobRecords()
	if err != nil {
		return nil, err
	}
	rows := make([]report.JobRow, len(recs))
	var wg sync.WaitGroup
	for i, rec := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := report.JobRow{Models: strings.Join(rec.Models, ", "), JobID: rec.JobID, State: rec.Status,
				FineTunedModel: rec.FineTunedModel}
			if rec.Provider != p.exp.Training.Provider {
				row.Error = fmt.Sprintf("submitted on provider %q; run status with PROVIDER=%s to see it now", rec.Provider, rec.Provider)
				rows[i] = row
				return
			}
			job, err := within(ctx, p.training, func() (provider.Job, error) { return p.training.p.GetJob(ctx, rec.JobID) })
			switch {
			case err != nil:
				row.Error = "cannot query provider: " + err.Error()
			default:
				row.State, row.FineTunedModel = job.Status, job.FineTunedModel
				if job.Error != nil {
					row.Error = job.Error.Error()
				}
				rec.FinishedAt = job.FinishedAt
				row.LastEvent = p.lastEvent(ctx, rec.JobID)
			}
			end := rec.FinishedAt
			if end.IsZero() {
				end = time.Now()
			}
			row.Elapsed = end.Sub(rec.SubmittedAt).Round(time.Second)
			rows[i] = row
		}()
	}
	wg.Wait()
	recorded := map[string]bool{}
	for _, rec := range recs {
		for _, m := range rec.Models {
			recorded[m] = true // a failed job's row says what became of it
		}
	}
	for _, m := range p.exp.Models {
		if recorded[m.Name] {
			continue
		}
		st, err := p.check(trainID(m.Name), p.trainInputs(m))
		if err != nil {
			return nil, err
		}
		if !st.Fresh {
			rows = append(rows, report.JobRow{Models: m.Name, State: "not submitted"})
		}
	}
	return rows, nil
}

// lastEvent is the newest line of a job's log, when the provider keeps one.
func (p *Pipeline) lastEvent(ctx context.Context, jobID string) string {
	el, ok := p.training.p.(provider.EventLister)
	if !ok {
		return ""
	}
	events, err := el.JobEvents(ctx, jobID)
	if err != nil || len(events) == 0 {
		return ""
	}
	return events[len(events)-1].Message
}
