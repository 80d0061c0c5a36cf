package targets

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// Serve serves the local engine as an OpenAI-compatible API at addr, such as 127.0.0.1:8080, until interrupted.
//
// State lives in artifacts/serve-engine. SERVE_API_KEY requires a bearer
// token; SERVE_429_RATE, SERVE_500_RATE, SERVE_DROP_RATE, SERVE_LOST_RATE
// (fractions), SERVE_LATENCY (a duration) and SERVE_FAULT_SEED inject faults.
func Serve(ctx context.Context, addr string) error {
	faults, err := faultsFromEnv()
	if err != nil {
		return err
	}
	dir := filepath.Join(pipelineArtifacts(), "serve-engine")
	eng, err := local.Default(dir)
	if err != nil {
		return err
	}
	srv := server.New(eng, server.Options{APIKey: os.Getenv("SERVE_API_KEY"), Faults: faults})
	fmt.Printf("local engine state in %s; interrupt to stop\n", dir)
	return srv.ListenAndServe(ctx, addr)
}

func faultsFromEnv() (server.Faults, error) {
	var f server.Faults
	rates := []struct {
		env string
		dst *float64
	}{{"SERVE_429_RATE", &f.RateLimitRate}, {"SERVE_500_RATE", &f.ServerErrorRate}, {"SERVE_DROP_RATE", &f.DropRate}, {"SERVE_LOST_RATE", &f.LostResponseRate}}
	for _, r := range rates {
		if v := os.Getenv(r.env); v != "" {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return f, fmt.Errorf("%s=%q: want a fraction such as 0.1", r.env, v)
			}
			*r.dst = x
		}
	}
	if v := os.Getenv("SERVE_LATENCY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return f, fmt.Errorf("SERVE_LATENCY=%q: want a duration such as 50ms", v)
		}
		f.Latency = d
	}
	if v := os.Getenv("SERVE_FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return f, fmt.Errorf("SERVE_FAULT_SEED=%q: want a non-negative integer", v)
		}
		f.Seed = s
	}
	return f, f.Validate()
}
