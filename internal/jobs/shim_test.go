package jobs_test

import (
	"io"

	"github.com/modelorganisms/pvbuild/internal/jobs"
	"github.com/modelorganisms/pvbuild/internal/openai"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/vclock"
)

// withOutage gives a client and its trainer one outage policy on clock.
func withOutage(cfg *openai.Config, opts *jobs.Options, clock *vclock.Clock, log io.Writer) {
	o := provider.NewOutage(opts.Provider, provider.OutagePolicy{Sleep: clock.Sleep, Now: clock.Now}, log)
	cfg.Outage, opts.Outage = o, o
}
