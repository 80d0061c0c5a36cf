package tinker

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// With the provider's outage policy, Tinker calls wait out a 60 s outage
// (503s and dropped connections) as OpenAI's do, with the same progress
// line, and give up with provider.ErrUnreachable past max_outage.
func TestAbuseOutagePolicy(t *testing.T) {
	for _, tc := range []struct {
		max     time.Duration
		survive bool
	}{{0, true}, {30 * time.Second, false}} {
		f := newFake(t)
		c, clk, _, m := startModel(t, f)
		var log bytes.Buffer
		c.opts.Outage = provider.NewOutage("tinker", provider.OutagePolicy{Max: tc.max, Sleep: clk.Sleep, Now: clk.Now}, &log)
		back := clk.Now().Add(60 * time.Second)
		down := status(503, `{"detail":"down"}`)
		for i := range 400 {
			f.injectSubmit("/api/v1/optim_step", func(w http.ResponseWriter) bool {
				if !clk.Now().Before(back) {
					return false
				}
				if i%2 == 1 {
					return drop(w)
				}
				return down(w)
			})
		}
		_, err := m.OptimStep(context.Background(), DefaultAdam())
		if !tc.survive {
			if !errors.Is(err, provider.ErrUnreachable) || !strings.Contains(err.Error(), "unreachable for 30s (max_outage 30s); giving up") || !Temporary(err) {
				t.Fatalf("max_outage 30s: err %v, want the outage error", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("after a 60 s outage: %v\n%s", err, log.String())
		}
		if n := strings.Count(log.String(), "provider tinker: unreachable for "); n == 0 || n > 8 {
			t.Fatalf("%d waiting lines, want a few:\n%s", n, log.String())
		}
	}
}
