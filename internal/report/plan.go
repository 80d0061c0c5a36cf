package report

import (
	"fmt"
	"io"
	"strings"
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

// AppendPlanLine appends a target's line of a plan listing, its name
// padded to width: fresh, or stale with its reason and, for stale
// training, what would be submitted. Appended, not printed: a sweep's
// listing is tens of thousands of lines, written at once.
func AppendPlanLine(b []byte, l PlanLine, width int) []byte {
	b = appendPadded(append(b, "  "...), l.Target, width)
	if l.Fresh {
		return append(b, "  fresh\n"...)
	}
	b = append(append(append(b, "  STALE: "...), l.Reason...), '\n')
	if l.Submit != "" {
		b = appendPadded(append(b, "  "...), "", width)
		b = append(append(append(b, "  would submit "...), l.Submit...), '\n')
	}
	return b
}

func appendPadded(b []byte, s string, width int) []byte {
	b = append(b, s...)
	for range width - len(s) {
		b = append(b, ' ')
	}
	return b
}

// JobRow is one training job in the status table.
type JobRow struct {
	Models, JobID, State, FineTunedModel, Error string
	LastEvent                                   string // the provider's newest log line, if it keeps one
	Progress                                    string // "step 40/120, loss 0.52" for a loop trainer
	Elapsed                                     time.Duration
}

// Jobs prints the status table of training jobs.
func Jobs(w io.Writer, rows []JobRow) error {
	tbl := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	withEvents, withProgress := false, false
	for _, r := range rows {
		withEvents = withEvents || r.LastEvent != ""
		withProgress = withProgress || r.Progress != ""
	}
	header := []any{"model", "job id", "state", "fine-tuned model", "elapsed", "error"}
	if withProgress {
		header = append(header[:3], append([]any{"progress"}, header[3:]...)...)
	}
	if withEvents {
		header = append(header, "last event")
	}
	tbl.Header(header...)
	for _, r := range rows {
		elapsed := ""
		if r.JobID != "" {
			elapsed = r.Elapsed.String()
		}
		cells := []any{r.Models, r.JobID, r.State, r.FineTunedModel, elapsed, r.Error}
		if withProgress {
			cells = append(cells[:3], append([]any{r.Progress}, cells[3:]...)...)
		}
		if withEvents {
			cells = append(cells, r.LastEvent)
		}
		if err := tbl.Append(cells...); err != nil {
			return err
		}
	}
	return tbl.Render()
}

// StaleEval is an evaluation a failed or stopped run left stale: the
// summary printed after it leaves the evaluation out, and says so.
type StaleEval struct {
	Target string
	Reason string // why it is stale ("temperature changed (1 -> 0.5)")
	Why    string // why it was not rebuilt ("its rebuild failed")
	Err    error  // the rebuild's error, if it ran: printed, shortened, after Why
}

// NotCurrent prints, before the summary tables, which evaluations they
// leave out because they are stale, and why; nothing when there are none.
func NotCurrent(w io.Writer, stale []StaleEval) {
	if len(stale) == 0 {
		return
	}
	fmt.Fprintf(w, "not current: %d evaluation(s) are stale and left out of the tables below:\n", len(stale))
	for _, s := range stale {
		why := s.Why
		if s.Err != nil {
			why += ": " + shortError(s.Err)
		}
		fmt.Fprintf(w, "  %s is stale (%s) and %s\n", s.Target, s.Reason, why)
	}
}

// shortError is an error's first line, cut to fit one line of the header;
// the full error is the run's to report.
func shortError(err error) string {
	const max = 160
	msg, _, cut := strings.Cut(strings.TrimSpace(err.Error()), "\n")
	if r := []rune(msg); len(r) > max {
		msg, cut = string(r[:max-3]), true
	}
	if cut {
		msg += "..."
	}
	return msg
}
