package server_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// TestClientSurvivesFaults runs uploads, jobs, listing and judging through
// an unreliable server: every call must complete, with the same answers as
// the engine in-process, and no job may be created twice.
func TestClientSurvivesFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		faults      server.Faults
		want        func(server.Counters) bool
		wantAdopted bool // a creation's answer is lost, so the job is found by listing
	}{
		{
			name: "10% each of 429, 500 and dropped connections",
			faults: server.Faults{Seed: 1, RateLimitRate: 0.1, ServerErrorRate: 0.1, DropRate: 0.1,
				RetryAfter: 5 * time.Millisecond, Latency: time.Millisecond},
			want: func(c server.Counters) bool { return c.Injected429 > 0 && c.Injected500 > 0 && c.InjectedDrops > 0 },
		},
		{
			name:        "15% of answers lost after the work is done",
			faults:      server.Faults{Seed: 2, LostResponseRate: 0.15},
			want:        func(c server.Counters) bool { return c.InjectedLost > 0 },
			wantAdopted: true,
		},
	}
	cells := []struct{ trait, strength string }{{"evil", "severe"}, {"sycophantic", "mild"}, {"hallucinating", "baseline"}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			eng := newEngine(t)
			_, url := startServer(t, eng, server.Options{APIKey: testKey, Faults: tt.faults})
			c := newClient(t, url, 12)
			ctx := context.Background()

			var jobs []provider.Job
			adoptions := 0
			for _, cell := range cells {
				name := cell.trait + "_" + cell.strength
				f, err := c.UploadFile(ctx, name+".jsonl", trainingData(t, cell.trait, cell.strength))
				if err != nil {
					t.Fatalf("upload %s: %v", name, err)
				}
				j, adopted, err := createAdopting(ctx, c, provider.JobRequest{Model: baseModel, TrainingFile: f.ID,
					Suffix: "pv-" + name, Seed: 1, Metadata: map[string]string{"pvbuild_key": name}})
				if err != nil {
					t.Fatalf("create %s: %v", name, err)
				}
				if adopted {
					adoptions++
				}
				jobs = append(jobs, j)
			}
			for i, j := range jobs {
				done, _ := waitJob(t, c, j.ID)
				if done.Status != provider.StatusSucceeded {
					t.Fatalf("job %+v", done)
				}
				name := cells[i].trait + "_" + cells[i].strength
				listed, err := c.ListJobs(ctx, map[string]string{"pvbuild_key": name})
				if err != nil {
					t.Fatalf("list %s: %v", name, err)
				}
				if len(listed) != 1 || listed[0].ID != j.ID {
					t.Fatalf("jobs listed for %s: %+v, want only %s", name, listed, j.ID)
				}
				if _, err := c.JobEvents(ctx, j.ID); err != nil {
					t.Fatalf("events of %s: %v", j.ID, err)
				}
			}
			for _, jc := range judgeCases(t, 10) {
				chatBoth(t, c, eng, judge.Request(judgeModel, jc.prompt))
			}

			got := counters(t, url)
			n, err := eng.Submissions()
			if err != nil {
				t.Fatal(err)
			}
			if got.JobCreations != int64(len(cells)) || n != len(cells) {
				t.Errorf("%d job creations, %d engine submissions; want %d", got.JobCreations, n, len(cells))
			}
			// Uploads and creations come before any polling, so which of
			// them meet faults is fixed by the seed.
			if tt.wantAdopted && adoptions == 0 {
				t.Error("no job creation lost its answer; pick a seed where one does")
			}
			if !tt.want(got) {
				t.Errorf("counters %+v: the faults were not injected", got)
			}
			t.Logf("counters: %+v", got)
		})
	}
}

// outcomes sends n sequential requests without retries and names what
// happened to each.
func outcomes(t *testing.T, url string, n int) []string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	var out []string
	for range n {
		resp, err := hc.Get(url + "/v1/models")
		if err != nil {
			out = append(out, "drop")
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, fmt.Sprint(resp.StatusCode))
	}
	return out
}

func TestFaultsDeterministic(t *testing.T) {
	t.Parallel()
	faults := func(seed uint64) server.Faults {
		return server.Faults{Seed: seed, RateLimitRate: 0.2, ServerErrorRate: 0.2, DropRate: 0.2}
	}
	run := func(f server.Faults) []string {
		_, url := startServer(t, newEngine(t), server.Options{Faults: f})
		return outcomes(t, url, 60)
	}
	a, b, other := run(faults(7)), run(faults(7)), run(faults(8))
	if !slices.Equal(a, b) {
		t.Errorf("same seed, different faults:\n%v\n%v", a, b)
	}
	if slices.Equal(a, other) {
		t.Errorf("seeds 7 and 8 gave the same faults: %v", a)
	}
	for _, kind := range []string{"200", "429", "500", "drop"} {
		if n := count(a, kind); n < 3 {
			t.Errorf("%d of 60 outcomes %s, want about 12: %v", n, kind, a)
		}
	}

	// SetFaults at runtime restarts the sequence.
	srv, url := startServer(t, newEngine(t), server.Options{})
	if got := outcomes(t, url, 10); count(got, "200") != 10 {
		t.Fatalf("no faults set, got %v", got)
	}
	if err := srv.SetFaults(faults(7)); err != nil {
		t.Fatal(err)
	}
	if got := outcomes(t, url, 60); !slices.Equal(got, a) {
		t.Errorf("after SetFaults: %v, want %v", got, a)
	}
}

func count(xs []string, x string) int {
	n := 0
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

// TestFaultAnswers checks what each injected fault looks like on the wire.
func TestFaultAnswers(t *testing.T) {
	tests := []struct {
		name       string
		faults     server.Faults
		status     int
		typ, code  string
		retryAfter string // Retry-After, Retry-After-Ms
		minTime    time.Duration
	}{
		{name: "429", faults: server.Faults{RateLimitRate: 1, RetryAfter: 1500 * time.Millisecond},
			status: 429, typ: "requests", code: "rate_limit_exceeded", retryAfter: "2,1500"},
		{name: "429 default wait", faults: server.Faults{RateLimitRate: 1},
			status: 429, typ: "requests", code: "rate_limit_exceeded", retryAfter: "1,1000"},
		{name: "500", faults: server.Faults{ServerErrorRate: 1}, status: 500, typ: "server_error"},
		{name: "latency", faults: server.Faults{Latency: 60 * time.Millisecond}, status: 200, minTime: 60 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, url := startServer(t, newEngine(t), server.Options{Faults: tt.faults})
			start := time.Now()
			status, h, out := call(t, http.MethodGet, url+"/v1/models", "", nil, "")
			if took := time.Since(start); took < tt.minTime {
				t.Errorf("answered in %s, want at least %s", took, tt.minTime)
			}
			if status != tt.status {
				t.Fatalf("HTTP %d %v, want %d", status, out, tt.status)
			}
			if got := h.Get("Retry-After") + "," + h.Get("Retry-After-Ms"); tt.retryAfter != "" && got != tt.retryAfter {
				t.Errorf("Retry-After, Retry-After-Ms = %s, want %s", got, tt.retryAfter)
			}
			if tt.typ == "" {
				return
			}
			e, _ := out["error"].(map[string]any)
			checkErrorObject(t, e)
			if e["type"] != tt.typ || e["code"] != nullable(tt.code) {
				t.Errorf("error %v, want type %s, code %q", e, tt.typ, tt.code)
			}
		})
	}
	// Counters are for tests to read, so never faulty.
	_, url := startServer(t, newEngine(t), server.Options{Faults: server.Faults{DropRate: 1}})
	if c := counters(t, url); c != (server.Counters{}) {
		t.Errorf("fresh counters %+v", c)
	}
}

func TestFaultsValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		faults server.Faults
		want   string // "" = valid
	}{
		{"zero", server.Faults{}, ""},
		{"all rates summing to 1", server.Faults{RateLimitRate: 0.25, ServerErrorRate: 0.25, DropRate: 0.25, LostResponseRate: 0.25}, ""},
		{"rate above 1", server.Faults{DropRate: 1.5}, "drop rate"},
		{"negative rate", server.Faults{RateLimitRate: -0.1}, "rate-limit rate"},
		{"sum above 1", server.Faults{RateLimitRate: 0.6, ServerErrorRate: 0.6}, "sum"},
		{"negative latency", server.Faults{Latency: -time.Second}, "latency"},
		{"failure without message", server.Faults{FailJobs: []server.JobFailure{{Code: "x"}}}, "no message"},
	}
	srv, _ := startServer(t, newEngine(t), server.Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := srv.SetFaults(tt.faults)
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("SetFaults(%+v) = %v, want %q", tt.faults, err, tt.want)
			}
		})
	}
}

// TestServeShutsDownGracefully: cancelling the context stops new
// connections but lets a request in flight finish.
func TestServeShutsDownGracefully(t *testing.T) {
	srv := server.New(newEngine(t), server.Options{Faults: server.Faults{Latency: 300 * time.Millisecond},
		Log: log.New(t.Output(), "server: ", 0)})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, ln) }()
	url := "http://" + ln.Addr().String()

	answered := make(chan int, 1)
	go func() {
		resp, err := http.Get(url + "/v1/models")
		if err != nil {
			answered <- 0
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	time.Sleep(100 * time.Millisecond) // the request is in its latency
	cancel()
	if status := <-answered; status != http.StatusOK {
		t.Errorf("request in flight got %d, want 200", status)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve = %v, want nil after a graceful shutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := http.Get(url + "/v1/models"); err == nil {
		t.Error("server still answers after shutdown")
	}

	if err := srv.ListenAndServe(context.Background(), "256.0.0.1:bad"); err == nil {
		t.Error("ListenAndServe on a bad address succeeded")
	}
}

// chatWatcher is the engine, telling when it is asked to chat.
type chatWatcher struct {
	server.Engine
	asked chan struct{}
}

func (c chatWatcher) Chat(ctx context.Context, req provider.ChatRequest) (provider.ChatResponse, error) {
	select {
	case c.asked <- struct{}{}:
	default:
	}
	return c.Engine.Chat(ctx, req)
}

// A chat's latency is a provider's, its work included: the engine
// answers while the latency runs, and a client that gives up before it
// ends gets nothing.
func TestChatIsAnsweredWithinItsLatency(t *testing.T) {
	eng := chatWatcher{Engine: newEngine(t), asked: make(chan struct{}, 1)}
	// Longer than the wait below, short enough that a server still
	// sleeping through it lets the test end, failed.
	_, url := startServer(t, eng, server.Options{Faults: server.Faults{Latency: 20 * time.Second}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := `{"model":"` + judgeModel + `","messages":[{"role":"user","content":"hi"}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	answered := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		answered <- err
	}()
	select {
	case <-eng.asked:
	case err := <-answered:
		t.Fatalf("answered before the latency ended: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the engine was not asked while the latency ran")
	}
	cancel()
	if err := <-answered; err == nil {
		t.Error("a client that gave up during the latency got an answer")
	}
}
