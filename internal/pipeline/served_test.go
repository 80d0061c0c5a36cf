package pipeline

import (
	"bytes"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// serve runs the local engine behind the OpenAI-compatible server, as
// `mage serve` does, and points the experiment's openai provider at it.
func serve(t *testing.T, faults server.Faults) *server.Server {
	t.Helper()
	eng, err := local.Default(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(eng, server.Options{Faults: faults, Log: log.New(io.Discard, "", 0)})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	t.Setenv("PROVIDER", "openai")
	t.Setenv("OPENAI_API_KEY", "sk-pvbuild-test-secret-0123456789")
	t.Setenv("OPENAI_BASE_URL", ts.URL+"/v1")
	return srv
}

func readResults(t *testing.T, w *workspace) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(w.artifacts, "eval_results.json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// inProcess runs the shipped experiment on the in-process engine once per
// test binary; served runs are compared with it.
var inProcessResults []byte

func localResults(t *testing.T) []byte {
	t.Helper()
	if inProcessResults == nil {
		w := newWorkspace(t, shipped(t))
		w.results()
		inProcessResults = readResults(t, w)
	}
	return inProcessResults
}

// Through go-openai and real HTTP, the experiment gives exactly what the
// in-process engine gives, even when one request in ten fails, and never
// creates a job twice or writes the key anywhere.
func TestServedProviderMatchesInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("trains nine models twice")
	}
	want := localResults(t)
	for _, tc := range []struct {
		name   string
		faults server.Faults
	}{
		{"clean", server.Faults{}},
		{"10% failures", server.Faults{Seed: 7, RateLimitRate: 0.04, RetryAfter: 100 * time.Millisecond, ServerErrorRate: 0.03, DropRate: 0.03}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serve(t, tc.faults)
			w := newWorkspace(t, shipped(t))
			w.results()
			if got := readResults(t, w); !bytes.Equal(got, want) {
				t.Fatalf("served eval_results.json differs from in-process:\n%s\nwant\n%s", got, want)
			}
			c := srv.Counters()
			if c.JobCreations != 9 {
				t.Fatalf("%d job creations for 9 models", c.JobCreations)
			}
			if tc.faults.DropRate > 0 && c.Injected429+c.Injected500+c.InjectedDrops == 0 {
				t.Fatal("no fault was injected")
			}
			t.Logf("%d requests, %d chat completions, faults: %d x 429, %d x 500, %d dropped",
				c.Requests, c.ChatCompletions, c.Injected429, c.Injected500, c.InjectedDrops)
			secret := []byte(os.Getenv("OPENAI_API_KEY"))
			filepath.WalkDir(w.dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					if b, _ := os.ReadFile(path); bytes.Contains(b, secret) {
						t.Errorf("%s holds the API key", path)
					}
				}
				return nil
			})
		})
	}
}
