package targets

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/faults"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
	"github.com/modelorganisms/pvbuild/internal/server"
	"github.com/modelorganisms/pvbuild/internal/tinkerserver"
)

// startServe runs the serve target's engine on state dir over loopback and
// returns its /v1 URL; the server stops when the test ends.
func startServe(t *testing.T, dir string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveEngine(ctx, dir, ln, server.Options{Log: log.New(t.Output(), "server: ", 0)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return "http://" + ln.Addr().String() + "/v1"
}

// createJob uploads a training file and creates a job on it, as a build
// does, and returns the job id.
func createJob(t *testing.T, url, suffix string) string {
	t.Helper()
	data, err := sampledata.Training("evil", "severe")
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("purpose", "fine-tune")
	fw, _ := mw.CreateFormFile("file", suffix+".jsonl")
	fw.Write(data)
	mw.Close()
	var file struct{ ID string }
	if status := do(t, http.MethodPost, url+"/files", mw.FormDataContentType(), &b, &file); status != http.StatusOK {
		t.Fatalf("upload: HTTP %d", status)
	}
	body := `{"model":"gpt-4.1-mini-2025-04-14","training_file":"` + file.ID + `","suffix":"` + suffix + `","metadata":{"pvbuild_key":"` + suffix + `"}}`
	var job struct{ ID string }
	if status := do(t, http.MethodPost, url+"/fine_tuning/jobs", "application/json", strings.NewReader(body), &job); status != http.StatusOK {
		t.Fatalf("create job: HTTP %d", status)
	}
	return job.ID
}

func do(t *testing.T, method, url, contentType string, body io.Reader, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK && out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, raw)
		}
	} else if resp.StatusCode != http.StatusOK {
		t.Logf("%s %s: HTTP %d %s", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

// captureStdout returns what f prints to standard output.
func captureStdout(t *testing.T, f func() error) (string, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	saved := os.Stdout
	os.Stdout = w
	out := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		out <- string(b)
	}()
	ferr := f()
	os.Stdout = saved
	w.Close()
	return <-out, ferr
}

// `clean` beside a running `serve` keeps the state the server is using, and
// says so with the process that holds it; it removes everything else. The
// server goes on answering for the jobs it had, and takes new ones.
func TestAbuseCleanWhileServing(t *testing.T) {
	t.Chdir(t.TempDir())
	url := startServe(t, filepath.Join("artifacts", "serve-engine"))
	id := createJob(t, url, "pv-evil-severe")
	os.MkdirAll(filepath.Join("artifacts", "train"), 0o755)
	os.WriteFile(filepath.Join("artifacts", "train", "evil_severe.json"), []byte("{}\n"), 0o644)

	out, err := captureStdout(t, Clean)
	if err != nil {
		t.Fatalf("clean: %v", err)
	}
	if _, err := os.Stat(filepath.Join("artifacts", "train")); !os.IsNotExist(err) {
		t.Errorf("clean left artifacts/train (%v)", err)
	}
	for _, want := range []string{filepath.Join("artifacts", "serve-engine"), "process " + strconv.Itoa(os.Getpid()), "serve"} {
		if !strings.Contains(out, want) {
			t.Errorf("clean printed %q, want it to name %q", out, want)
		}
	}
	if status := do(t, http.MethodGet, url+"/fine_tuning/jobs/"+id, "", nil, nil); status != http.StatusOK {
		t.Errorf("job %s after clean: HTTP %d, want 200", id, status)
	}
	createJob(t, url, "pv-evil-mild")
}

// A second server on the same state stops at once, naming the first; once
// the first has stopped, clean removes its state.
func TestAbuseSecondServeOnSameState(t *testing.T) {
	t.Chdir(t.TempDir())
	dir := filepath.Join("artifacts", "serve-engine")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveEngine(ctx, dir, ln, server.Options{Log: log.New(io.Discard, "", 0)}) }()
	createJob(t, "http://"+ln.Addr().String()+"/v1", "pv-evil-severe")

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Already cancelled, so that a server wrongly started returns at once.
	stopped, stop := context.WithCancel(context.Background())
	stop()
	err = serveEngine(stopped, dir, ln2, server.Options{Log: log.New(io.Discard, "", 0)})
	if err == nil || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())+" (serve at "+ln.Addr().String()+")") {
		t.Errorf("second serve on the same state: %v, want it refused naming the first", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	out, err := captureStdout(t, Clean)
	if err != nil || out != "" {
		t.Fatalf("clean after serve stopped: %v, printed %q", err, out)
	}
	if _, err := os.Stat("artifacts/serve-engine"); !os.IsNotExist(err) {
		t.Errorf("clean kept the state of a stopped server (%v)", err)
	}
}

// The Tinker server's state is kept by clean in the same way.
func TestAbuseCleanWhileServingTinker(t *testing.T) {
	t.Chdir(t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	dir := filepath.Join("artifacts", "tinker-server")
	go func() { done <- serveTinker(ctx, dir, ln, tinkerserver.Options{Log: log.New(io.Discard, "", 0)}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	if status := do(t, http.MethodGet, "http://"+ln.Addr().String()+"/api/v1/healthz", "", nil, nil); status != http.StatusOK {
		t.Fatalf("healthz: HTTP %d", status)
	}
	out, err := captureStdout(t, Clean)
	if err != nil || !strings.Contains(out, "kept "+dir+": process "+strconv.Itoa(os.Getpid())+" (serve-tinker at ") {
		t.Fatalf("clean: %v, printed %q", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Errorf("clean removed the running Tinker server's state: %v", err)
	}
}

func TestAbuseServeOutageFromEnv(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  faults.Outage
		err   string // "" = valid
	}{
		{"after=30s,for=60s", faults.Outage{After: 30 * time.Second, For: time.Minute}, ""},
		{"for=15s, after=1m", faults.Outage{After: time.Minute, For: 15 * time.Second}, ""},
		{"for=60s", faults.Outage{For: time.Minute}, ""},
		{"after=30s", faults.Outage{}, "for must be a positive duration"},
		{"after=30s,for=-1s", faults.Outage{}, `for="-1s" is not a duration`},
		{"after=soon,for=60s", faults.Outage{}, `after="soon" is not a duration`},
		{"60s", faults.Outage{}, `"60s" is not after=DURATION`},
		{"for=1s,for=2s", faults.Outage{}, "for given twice"},
	} {
		t.Setenv("SERVE_OUTAGE", tc.value)
		var got faults.Outage
		err := envOutage("SERVE_OUTAGE", &got)
		if tc.err == "" && (err != nil || got != tc.want) {
			t.Errorf("SERVE_OUTAGE=%q: %+v, %v; want %+v", tc.value, got, err, tc.want)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "SERVE_OUTAGE=")) {
			t.Errorf("SERVE_OUTAGE=%q: %v, want an error naming the variable and %q", tc.value, err, tc.err)
		}
	}
}
