package report

import (
	"fmt"
	"io"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// PlanLine is one target in a plan listing.
type PlanLine struct {
	Target string
	Fresh  bool
	Reason string
	Submit string
}

// Plan prints one line per target: fresh, or stale with its reason, and for
// stale training what would be submitted.
func Plan(w io.Writer, lines []PlanLine) {
	width := 0
	for _, l := range lines {
		width = max(width, len(l.Target))
	}
	for _, l := range lines {
		if l.Fresh {
			fmt.Fprintf(w, "  %-*s  fresh\n", width, l.Target)
			continue
		}
		fmt.Fprintf(w, "  %-*s  STALE: %s\n", width, l.Target, l.Reason)
		if l.Submit != "" {
			fmt.Fprintf(w, "  %-*s  would submit %s\n", width, "", l.Submit)
		}
	}
}

// JobRow is one training job in the status table.
type JobRow struct {
	Models, JobID, State, FineTunedModel, Error string
	Elapsed                                     time.Duration
}

// Jobs prints the status table of training jobs.
func Jobs(w io.Writer, rows []JobRow) error {
	tbl := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	tbl.Header("model", "job id", "state", "fine-tuned model", "elapsed", "error")
	for _, r := range rows {
		elapsed := ""
		if r.JobID != "" {
			elapsed = r.Elapsed.String()
		}
		if err := tbl.Append(r.Models, r.JobID, r.State, r.FineTunedModel, elapsed, r.Error); err != nil {
			return err
		}
	}
	return tbl.Render()
}
