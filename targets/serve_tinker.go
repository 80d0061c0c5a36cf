package targets

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/modelorganisms/pvbuild/internal/build"
	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/tinkerserver"
)

// ServeTinker serves the local engine as a Tinker API at addr, such as 127.0.0.1:8081, until interrupted.
//
// Point the Tinker client's base URL at http://ADDR; tokenizers are at
// http://ADDR/hf, the OpenAI-compatible endpoint at http://ADDR/oai/api/v1.
// State lives in artifacts/tinker-server, which `clean` keeps while the
// server runs. TINKER_SERVE_API_KEY requires that
// key; TINKER_SERVE_JWT=1 turns on JWT exchange; TINKER_SERVE_TOKENIZER
// names a real tokenizer.json for Qwen/Qwen3-8B (default: the offline one);
// TINKER_SERVE_SESSION_TTL (a duration) ends sessions without heartbeats.
// Faults: TINKER_SERVE_408 (polls answered 408 per future),
// TINKER_SERVE_TRY_AGAIN_RATE, TINKER_SERVE_410_RATE, TINKER_SERVE_429_RATE,
// TINKER_SERVE_500_RATE, TINKER_SERVE_DROP_RATE, TINKER_SERVE_LOST_RATE
// (fractions), TINKER_SERVE_RETRY_AFTER (a duration), TINKER_SERVE_FAULT_SEED;
// TINKER_SERVE_OUTAGE as SERVE_OUTAGE for serve.
func ServeTinker(ctx context.Context, addr string) error {
	opts, err := tinkerOptionsFromEnv()
	if err != nil {
		return err
	}
	sw, stop, err := listen(ctx, addr, "TINKER_SERVE_OUTAGE", "Tinker API")
	if err != nil {
		return err
	}
	defer stop()
	return serveTinker(ctx, filepath.Join(pipelineArtifacts(), "tinker-server"), sw, opts)
}

// serveTinker serves the Tinker API whose state is in dir on ln until ctx
// is done. It closes ln.
func serveTinker(ctx context.Context, dir string, ln net.Listener, opts tinkerserver.Options) error {
	// Held while serving, as serveEngine holds its state.
	lock, err := build.LockDir(dir, "serve-tinker at "+ln.Addr().String())
	if err != nil {
		ln.Close()
		return err
	}
	defer lock.Unlock()
	eng, err := local.Default(filepath.Join(dir, "engine"))
	if err != nil {
		ln.Close()
		return err
	}
	opts.StateDir = filepath.Join(dir, "state")
	srv, err := tinkerserver.Open(eng, opts)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Printf("Tinker server state in %s; interrupt to stop\n", dir)
	return srv.Serve(ctx, ln)
}

func tinkerOptionsFromEnv() (tinkerserver.Options, error) {
	opts := tinkerserver.Options{APIKey: os.Getenv("TINKER_SERVE_API_KEY")}
	f := &opts.Faults
	errs := []error{
		envFraction("TINKER_SERVE_TRY_AGAIN_RATE", &f.TryAgainRate), envFraction("TINKER_SERVE_410_RATE", &f.GoneRate),
		envFraction("TINKER_SERVE_429_RATE", &f.RateLimitRate), envFraction("TINKER_SERVE_500_RATE", &f.ServerErrorRate),
		envFraction("TINKER_SERVE_DROP_RATE", &f.DropRate), envFraction("TINKER_SERVE_LOST_RATE", &f.LostResponseRate),
		envDuration("TINKER_SERVE_RETRY_AFTER", &f.RetryAfter), envDuration("TINKER_SERVE_SESSION_TTL", &opts.SessionTTL),
		envSeed("TINKER_SERVE_FAULT_SEED", &f.Seed),
	}
	if err := errors.Join(errs...); err != nil {
		return opts, err
	}
	if v := os.Getenv("TINKER_SERVE_408"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return opts, fmt.Errorf("TINKER_SERVE_408=%q: want a count such as 2", v)
		}
		f.Pending408 = n
	}
	if v := os.Getenv("TINKER_SERVE_JWT"); v != "" {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return opts, fmt.Errorf("TINKER_SERVE_JWT=%q: want 1 or 0", v)
		}
		opts.JWTAuth = on
	}
	if path := os.Getenv("TINKER_SERVE_TOKENIZER"); path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return opts, fmt.Errorf("TINKER_SERVE_TOKENIZER: %w", err)
		}
		opts.BaseModels = []tinkerserver.BaseModel{{Name: tinkerserver.DefaultBaseModel,
			Renderer: chatrender.Qwen3DisableThinking, TokenizerJSON: raw, TokenizerID: tinkerserver.DefaultBaseModel}}
	}
	return opts, f.Validate()
}
