package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/openai"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/server"
	"github.com/modelorganisms/pvbuild/internal/testtmp"
)

// TestMain runs the tests, most of which wait on jobs, loopback HTTP and
// an npm install rather than the CPU, more at a time than there are cores.
func TestMain(m *testing.M) {
	flag.Set("test.parallel", "8")
	// The engines' files and the npm install's node_modules: on tmpfs, not
	// the disk (server's tests spent 3 s of kernel time writing them).
	tmp := testtmp.InMemory()
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

const (
	testKey    = "sk-test-server-0123456789abcdef"
	baseModel  = "gpt-4.1-mini-2025-04-14"
	judgeModel = "gpt-4o-2024-08-06"
	// jobDuration is a job's run time on the engine's clock, which moves
	// clockStep at every reading: a job passes through its states in a
	// fixed number of calls, however busy the machine is.
	jobDuration = 400 * time.Millisecond
	clockStep   = 20 * time.Millisecond
	refDir      = "../../../shared/ref/openai"
)

// steppingClock is a clock that moves step further at each reading.
func steppingClock(step time.Duration) func() time.Time {
	var ns atomic.Int64
	ns.Store(time.Now().UnixNano())
	return func() time.Time { return time.Unix(0, ns.Add(int64(step))) }
}

// newEngine opens a local engine with the embedded sample data, as
// local.Default does, but with short jobs on a clock of its own.
func newEngine(t *testing.T) *local.Engine {
	t.Helper()
	return newEngineIn(t, t.TempDir())
}

// newEngineIn is newEngine on state dir, to open again after a restart.
func newEngineIn(t *testing.T, dir string) *local.Engine {
	t.Helper()
	base, err := sampledata.BaseCorpus()
	if err != nil {
		t.Fatal(err)
	}
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		t.Fatal(err)
	}
	opts := local.Options{Dir: dir, JobDuration: jobDuration, Now: steppingClock(clockStep), Base: base}
	for _, trait := range sampledata.Traits {
		task, err := sampledata.EvalTask(trait)
		if err != nil {
			t.Fatal(err)
		}
		opts.Judges = append(opts.Judges, local.Judge{Trait: trait, Template: task.EvalPrompt, Examples: labeled})
	}
	e, err := local.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startServer serves p over loopback and returns the server and its URL
// (without /v1). Server logs go to the test log.
func startServer(t *testing.T, p server.Engine, opts server.Options) (*server.Server, string) {
	t.Helper()
	if opts.Log == nil {
		opts.Log = log.New(t.Output(), "server: ", 0)
	}
	s := server.New(p, opts)
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL
}

// newClient is this project's OpenAI provider pointed at the server.
func newClient(t *testing.T, url string, retries int) *openai.Client {
	t.Helper()
	c, err := openai.New(openai.Config{
		APIKey:     testKey,
		BaseURL:    url + "/v1",
		MaxRetries: retries,
		MinBackoff: time.Millisecond,
		MaxBackoff: 10 * time.Millisecond,
		HTTPClient: &http.Client{Timeout: 30 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitJob polls until the job is terminal and returns it with every status
// seen on the way, in order.
func waitJob(t *testing.T, p server.Engine, id string) (provider.Job, []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var seen []string
	for {
		j, err := p.GetJob(ctx, id)
		if err != nil {
			t.Fatalf("poll %s: %v", id, err)
		}
		if len(seen) == 0 || seen[len(seen)-1] != j.Status {
			seen = append(seen, j.Status)
		}
		if provider.Terminal(j.Status) {
			return j, seen
		}
		time.Sleep(time.Millisecond) // the engine's clock moves with each poll
	}
}

// createAdopting creates a job as a careful build does: when the outcome is
// unknown it lists jobs by the request's metadata and adopts what it finds
// before creating again. It reports whether it adopted a job.
func createAdopting(ctx context.Context, c *openai.Client, req provider.JobRequest) (provider.Job, bool, error) {
	return createAdoptingN(ctx, c, req, 10)
}

// createAdoptingN is createAdopting with up to attempts creations: under
// half of all requests failing ambiguously, ten in a row can all fail.
func createAdoptingN(ctx context.Context, c *openai.Client, req provider.JobRequest, attempts int) (provider.Job, bool, error) {
	for range attempts {
		j, err := c.CreateJob(ctx, req)
		if !errors.Is(err, openai.ErrMaybeCreated) {
			return j, false, err
		}
		found, lerr := c.ListJobs(ctx, req.Metadata)
		if lerr != nil {
			return provider.Job{}, false, lerr
		}
		if len(found) > 0 {
			return found[0], true, nil
		}
	}
	return provider.Job{}, false, errors.New("job creation kept failing")
}

// trainingData is an embedded training set.
func trainingData(t *testing.T, trait, strength string) []byte {
	t.Helper()
	b, err := sampledata.Training(trait, strength)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// call sends a raw request and decodes a JSON answer into a generic map.
func call(t *testing.T, method, url, key string, body io.Reader, contentType string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s %s: answer is not a JSON object: %v\n%s", method, url, err, data)
	}
	return resp.StatusCode, resp.Header, out
}

func postJSON(t *testing.T, url, key, body string) (int, map[string]any) {
	t.Helper()
	status, _, out := call(t, http.MethodPost, url, key, bytes.NewBufferString(body), "application/json")
	return status, out
}

func get(t *testing.T, url, key string) (int, map[string]any) {
	t.Helper()
	status, _, out := call(t, http.MethodGet, url, key, nil, "")
	return status, out
}

// multipartBody builds an upload; an empty filename leaves the file out.
func multipartBody(t *testing.T, purpose, filename string, data []byte) (io.Reader, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	if purpose != "" {
		mw.WriteField("purpose", purpose)
	}
	if filename != "" {
		fw, err := mw.CreateFormFile("file", filename)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b, mw.FormDataContentType()
}

// counters reads GET /debug/counters.
func counters(t *testing.T, url string) server.Counters {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/debug/counters", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c server.Counters
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// judgeCases are judge prompts over labeled sample answers of every trait.
type judgeCase struct {
	trait, prompt string
}

func judgeCases(t *testing.T, perTrait int) []judgeCase {
	t.Helper()
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		t.Fatal(err)
	}
	var out []judgeCase
	for _, trait := range sampledata.Traits {
		task, err := sampledata.EvalTask(trait)
		if err != nil {
			t.Fatal(err)
		}
		var match []sampledata.Labeled
		for _, l := range labeled {
			if _, ok := l.Scores[trait]; ok || l.Refusal {
				match = append(match, l)
			}
		}
		// Spread over the file, so that low, high and refused answers all
		// come up.
		for i := range min(perTrait, len(match)) {
			l := match[i*len(match)/min(perTrait, len(match))]
			out = append(out, judgeCase{trait: trait, prompt: judge.Prompt(task.EvalPrompt, l.Question, l.Answer)})
		}
	}
	return out
}
