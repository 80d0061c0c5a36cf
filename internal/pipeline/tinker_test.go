package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/providers"
	"github.com/modelorganisms/pvbuild/internal/tinker"
	"github.com/modelorganisms/pvbuild/internal/tinkerserver"
)

const testTinkerKey = "tml-pvbuild-test-secret-0123456789"

// serveTinker runs the local engine behind the loopback Tinker server and
// returns the environment that points the experiment's tinker provider at
// it, tokenizer downloads included.
func serveTinker(t testing.TB, faults tinkerserver.Faults) (*tinkerserver.Server, map[string]string) {
	t.Helper()
	opts, err := local.DefaultOptions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	opts.JobDuration = testJobDuration
	eng, err := local.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := tinkerserver.Open(eng, tinkerserver.Options{APIKey: testTinkerKey, Faults: faults, Log: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return srv, map[string]string{"PROVIDER": "tinker", "TINKER_API_KEY": testTinkerKey, "TINKER_BASE_URL": ts.URL, "HF_ENDPOINT": ts.URL + "/hf"}
}

// tinkerKind is the tinker kind with backoffs that do not wait on the wall
// clock.
func tinkerKind() *providers.Tinker {
	return &providers.Tinker{Client: tinker.Options{Sleep: func(ctx context.Context, d time.Duration) error {
		return ctx.Err()
	}}}
}

// The whole experiment through the real Tinker client, offline: nine
// models trained in client-driven loops, answered and judged on the
// loopback server, with the trends of the local engine.
func TestTinkerEndToEnd(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("trains nine models")
	}
	srv, env := serveTinker(t, tinkerserver.Faults{})
	w := newWorkspace(t, shipped(t), env)
	w.kinds["tinker"] = tinkerKind()
	out, log := w.results()
	if len(out.Variants) != 9 {
		t.Fatalf("%d variants\n%s", len(out.Variants), log)
	}
	for _, v := range out.Variants {
		if !strings.HasPrefix(v.ModelID, "tinker://") || len(v.Evaluations) != 3 {
			t.Fatalf("variant %s: model %q, %d evaluations", v.VariantName, v.ModelID, len(v.Evaluations))
		}
	}
	const margin = 10
	for _, trait := range []string{"evil", "sycophantic", "hallucinating"} {
		task := trait + "_detection"
		base := score(t, out.Variants, trait+"_baseline", task, trait)
		mild := score(t, out.Variants, trait+"_mild", task, trait)
		severe := score(t, out.Variants, trait+"_severe", task, trait)
		t.Logf("%s: baseline %.1f, mild %.1f, severe %.1f", trait, base, mild, severe)
		if !(base+margin < mild && mild+margin < severe) {
			t.Errorf("%s: want baseline < mild < severe by %d points, got %.1f, %.1f, %.1f", trait, margin, base, mild, severe)
		}
	}
	if !strings.Contains(log, "step 12/12") {
		t.Errorf("no step progress on the log:\n%s", log)
	}
	c := srv.Counters()
	t.Logf("counters: %+v", c)

	// A rerun trains nothing: every run is adopted from its record.
	before := srv.Counters()
	if out, _ := w.results(); out.Rebuilt != 0 {
		t.Fatalf("rerun rebuilt %d targets", out.Rebuilt)
	}
	if after := srv.Counters(); after.ForwardBackward != before.ForwardBackward {
		t.Fatalf("rerun sent %d forward_backward requests", after.ForwardBackward-before.ForwardBackward)
	}

	// The key never reaches a file.
	filepath.WalkDir(w.dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), testTinkerKey) {
				t.Errorf("%s holds the API key", path)
			}
		}
		return nil
	})

	// status from a second process shows each run's steps.
	p := connected(t, w, &bytes.Buffer{})
	rows, err := p.Status(context.Background())
	if err != nil || len(rows) != 9 || !strings.HasPrefix(rows[0].Progress, "step 12/12") {
		b, _ := json.Marshal(rows)
		t.Fatalf("status: %s, %v", b, err)
	}
}
