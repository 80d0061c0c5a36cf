package server_test

import (
	"context"
	"errors"
	"log"
	"net"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/faults"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// startSwitched serves p on a faults.Switch, so that the test can take the
// server down and bring it back on the same address.
func startSwitched(t *testing.T, p server.Engine, opts server.Options) (*server.Server, *faults.Switch, string) {
	t.Helper()
	opts.Log = log.New(t.Output(), "server: ", 0)
	s := server.New(p, opts)
	sw, err := faults.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s)
	hs.Listener.Close()
	hs.Listener = sw
	hs.Start()
	t.Cleanup(hs.Close)
	return s, sw, hs.URL
}

// An outage of the served engine: requests in flight fail, new ones are
// refused, and when the server is back on the same address it has every
// job it had, listed by metadata, none created twice.
func TestAbuseServerOutage(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	srv, sw, url := startSwitched(t, eng, server.Options{APIKey: testKey})
	c := newClient(t, url, -1) // no retries: the test sees each refusal
	ctx := context.Background()
	f, err := c.UploadFile(ctx, "evil_severe.jsonl", trainingData(t, "evil", "severe"))
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"pvbuild_key": "evil_severe"}
	job, err := c.CreateJob(ctx, provider.JobRequest{Model: baseModel, TrainingFile: f.ID, Suffix: "pv-evil-severe", Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}

	// A request held in its latency when the server goes down.
	if err := srv.SetFaults(server.Faults{Latency: time.Hour}); err != nil {
		t.Fatal(err)
	}
	before := srv.Counters().Requests
	inFlight := make(chan error, 1)
	go func() {
		_, err := c.GetJob(ctx, job.ID)
		inFlight <- err
	}()
	for srv.Counters().Requests == before {
		time.Sleep(time.Millisecond) // until the server has it
	}
	sw.Down()
	if err := <-inFlight; err == nil {
		t.Error("a request in flight when the server went down succeeded")
	}
	if err := srv.SetFaults(server.Faults{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListJobs(ctx, meta); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("list during the outage: %v, want connection refused", err)
	}

	if err := sw.Up(); err != nil {
		t.Fatal(err)
	}
	got, err := c.ListJobs(ctx, meta)
	if err != nil {
		t.Fatalf("list after the outage: %v", err)
	}
	if len(got) != 1 || got[0].ID != job.ID {
		t.Fatalf("jobs after the outage %+v, want only %s", got, job.ID)
	}
	if done, _ := waitJob(t, c, job.ID); done.Status != provider.StatusSucceeded {
		t.Errorf("job after the outage: %+v", done)
	}
	if n := counters(t, url).JobCreations; n != 1 {
		t.Errorf("%d job creations, want 1", n)
	}
}

// A server stopped and started again on the same state and address (a
// killed `serve` restarted) still has every job, listed by metadata, and
// an upload of the same bytes gets the same file.
func TestAbuseServerRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addrs := make(chan string, 1)
	serveOn := func(addr string) (*server.Server, func()) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		srv := server.New(newEngineIn(t, dir), server.Options{APIKey: testKey, Log: log.New(t.Output(), "server: ", 0)})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln) }()
		addrs <- ln.Addr().String()
		return srv, func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}
	}
	_, stop := serveOn("127.0.0.1:0")
	addr := <-addrs
	c := newClient(t, "http://"+addr, -1) // no retries: the test sees each refusal
	ctx := context.Background()
	data := trainingData(t, "sycophantic", "mild")
	f, err := c.UploadFile(ctx, "sycophantic_mild.jsonl", data)
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"pvbuild_key": "sycophantic_mild"}
	job, err := c.CreateJob(ctx, provider.JobRequest{Model: baseModel, TrainingFile: f.ID, Suffix: "pv-sycophantic-mild", Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := c.ListJobs(ctx, meta); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("list while stopped: %v, want connection refused", err)
	}

	srv, stop := serveOn(addr)
	<-addrs
	defer stop()
	got, err := c.ListJobs(ctx, meta)
	if err != nil || len(got) != 1 || got[0].ID != job.ID {
		t.Fatalf("jobs after the restart: %+v, %v; want only %s", got, err, job.ID)
	}
	if done, _ := waitJob(t, c, job.ID); done.Status != provider.StatusSucceeded {
		t.Errorf("job after the restart: %+v", done)
	}
	again, err := c.UploadFile(ctx, "sycophantic_mild.jsonl", data)
	if err != nil || again.ID != f.ID {
		t.Errorf("upload after the restart: %+v, %v; want file %s", again, err, f.ID)
	}
	if n := srv.Counters().JobCreations; n != 0 {
		t.Errorf("%d job creations after the restart, want 0", n)
	}
}
