package targets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/faults"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// Serve serves the local engine as an OpenAI-compatible API at addr, such as 127.0.0.1:8080, until interrupted.
//
// State lives in artifacts/serve-engine, which `clean` keeps while the
// server runs. SERVE_API_KEY requires a bearer
// token; SERVE_429_RATE, SERVE_500_RATE, SERVE_DROP_RATE, SERVE_LOST_RATE
// (fractions), SERVE_LATENCY (a duration) and SERVE_FAULT_SEED inject faults.
// SERVE_OUTAGE=after=30s,for=60s takes the server off its address 30 s
// after it starts, for 60 s (connections refused, state kept), then serves
// again on the same address: a run must wait that out.
func Serve(ctx context.Context, addr string) error {
	f, err := faultsFromEnv()
	if err != nil {
		return err
	}
	sw, stop, err := listen(ctx, addr, "SERVE_OUTAGE", "OpenAI-compatible API")
	if err != nil {
		return err
	}
	defer stop()
	opts := server.Options{APIKey: os.Getenv("SERVE_API_KEY"), Faults: f}
	return serveEngine(ctx, filepath.Join(pipelineArtifacts(), "serve-engine"), sw, opts)
}

// listen listens on addr for a server (what names it in errors) and, as
// the environment variable outageVar says, takes it off its address for a
// while in wall time, saying so on standard output. Call stop when the
// server has returned, so that the outage does not outlive it.
func listen(ctx context.Context, addr, outageVar, what string) (sw *faults.Switch, stop func(), err error) {
	var outage faults.Outage
	if err := envOutage(outageVar, &outage); err != nil {
		return nil, nil, err
	}
	sw, err = faults.Listen(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("serve %s: %w", what, err)
	}
	octx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		logf := func(format string, args ...any) { fmt.Printf(format+"\n", args...) }
		if err := outage.Run(octx, sw, provider.Sleep, logf); err != nil && octx.Err() == nil {
			logf("%v", err) // the server stops with it too
		}
	}()
	return sw, func() { cancel(); <-done }, nil
}

// serveEngine serves the local engine whose state is in dir on ln until ctx
// is done. It closes ln.
func serveEngine(ctx context.Context, dir string, ln net.Listener, opts server.Options) error {
	// Held while serving, so that `clean` keeps the state (naming this
	// process) and a second server on the same state stops at once.
	lock, err := build.LockDir(dir, "serve at "+ln.Addr().String())
	if err != nil {
		ln.Close()
		return err
	}
	defer lock.Unlock()
	eng, err := local.Default(dir)
	if err != nil {
		ln.Close()
		return err
	}
	// Before serving, so that the first judgements do not wait on it.
	eng.TrainJudges()
	srv := server.New(eng, opts)
	fmt.Printf("local engine state in %s; interrupt to stop\n", dir)
	return srv.Serve(ctx, ln)
}

func faultsFromEnv() (server.Faults, error) {
	var f server.Faults
	errs := []error{
		envFraction("SERVE_429_RATE", &f.RateLimitRate), envFraction("SERVE_500_RATE", &f.ServerErrorRate),
		envFraction("SERVE_DROP_RATE", &f.DropRate), envFraction("SERVE_LOST_RATE", &f.LostResponseRate),
		envDuration("SERVE_LATENCY", &f.Latency), envSeed("SERVE_FAULT_SEED", &f.Seed),
	}
	if err := errors.Join(errs...); err != nil {
		return f, err
	}
	return f, f.Validate()
}
