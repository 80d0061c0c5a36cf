package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/judge"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/server"
)

// The issue's fault mix: 429 30 %, 500 20 %, drops 20 %, lost answers
// 10 %, with latency. The server itself stays correct: every job created
// is listed by its metadata, a lost creation included, no job is created
// twice for one key, jobs succeed, answers match the engine in-process,
// and the counters add up.
func TestAbuseServerUnderIssueFaultMix(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	mix := server.Faults{Seed: 10, RateLimitRate: 0.3, ServerErrorRate: 0.2, DropRate: 0.2, LostResponseRate: 0.1,
		RetryAfter: time.Millisecond, Latency: time.Millisecond}
	srv, url := startServer(t, eng, server.Options{APIKey: testKey, Faults: mix})
	c := newClient(t, url, 40)
	ctx := context.Background()

	// Nine models at once, as train submits them.
	type result struct {
		key     string
		job     provider.Job
		adopted bool
		err     error
	}
	var cells []string
	for _, trait := range []string{"evil", "sycophantic", "hallucinating"} {
		for _, strength := range []string{"baseline", "mild", "severe"} {
			cells = append(cells, trait+"/"+strength)
		}
	}
	results := make([]result, len(cells))
	var wg sync.WaitGroup
	for i, cell := range cells {
		wg.Go(func() {
			trait, strength, _ := strings.Cut(cell, "/")
			key := trait + "_" + strength
			r := result{key: key}
			f, err := c.UploadFile(ctx, key+".jsonl", trainingData(t, trait, strength))
			if err == nil {
				r.job, r.adopted, err = createAdoptingN(ctx, c, provider.JobRequest{Model: baseModel, TrainingFile: f.ID,
					Suffix: "pv-" + trait + "-" + strength, Seed: 1, Metadata: map[string]string{"pvbuild_key": key}}, 60)
			}
			r.err = err
			results[i] = r
		})
	}
	wg.Wait()
	adopted := 0
	for _, r := range results {
		if r.err != nil {
			t.Fatalf("%s: %v", r.key, r.err)
		}
		if r.adopted {
			adopted++
		}
	}
	for _, r := range results {
		done, _ := waitJob(t, c, r.job.ID)
		if done.Status != provider.StatusSucceeded {
			t.Errorf("%s: job %+v", r.key, done)
		}
		listed, err := c.ListJobs(ctx, map[string]string{"pvbuild_key": r.key})
		if err != nil {
			t.Fatalf("list %s: %v", r.key, err)
		}
		if len(listed) != 1 || listed[0].ID != r.job.ID {
			t.Errorf("jobs listed for %s: %+v, want only %s", r.key, listed, r.job.ID)
		}
	}
	for _, jc := range judgeCases(t, 4) {
		chatBoth(t, c, eng, judge.Request(judgeModel, jc.prompt))
	}

	got := srv.Counters()
	n, err := eng.Submissions()
	if err != nil {
		t.Fatal(err)
	}
	if got.JobCreations != int64(len(cells)) || n != len(cells) {
		t.Errorf("%d job creations, %d engine submissions, for %d models", got.JobCreations, n, len(cells))
	}
	if got.Injected429 == 0 || got.Injected500 == 0 || got.InjectedDrops == 0 || got.InjectedLost == 0 {
		t.Errorf("counters %+v: some fault of the mix was never injected", got)
	}
	// Requests by route and outcome add up to the totals, and every job
	// creation is an answered or a lost 200 of the creation route.
	byRoute := srv.Requests()
	var total int64
	for _, outcomes := range byRoute {
		for _, n := range outcomes {
			total += n
		}
	}
	if total != got.Requests {
		t.Errorf("requests by route %v sum to %d, want %d", byRoute, total, got.Requests)
	}
	create := byRoute["POST /v1/fine_tuning/jobs"]
	// (Which creations lose their answer depends on the order the nine
	// goroutines meet the draws; TestAbuseRequestsByRoute fixes one.)
	if create["200"]+create["lost 200"] != got.JobCreations {
		t.Errorf("job creation route %v, want its 200s and lost 200s to be the %d creations", create, got.JobCreations)
	}
	if lost := byRoute["POST /v1/fine_tuning/jobs"]["lost 200"]; lost > int64(adopted) {
		t.Errorf("%d creations lost their answer but only %d were adopted", lost, adopted)
	}
	t.Logf("%d adoptions after lost creations; counters %+v; by route %v", adopted, got, byRoute)
}

// Requests are counted by route and outcome, in Requests and in
// GET /debug/counters.
func TestAbuseRequestsByRoute(t *testing.T) {
	t.Parallel()
	srv, url := startServer(t, newEngine(t), server.Options{APIKey: testKey})
	get(t, url+"/v1/models", testKey)
	get(t, url+"/v1/models", "sk-wrong-key-0123456789")
	get(t, url+"/v1/fine_tuning/jobs/ftjob-none", testKey)
	get(t, url+"/v1/nowhere", testKey)
	srv.SetFaults(server.Faults{LostResponseRate: 1})
	// A fresh connection each, which Go's transport does not retry.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	unanswered := func(what string) {
		req, _ := http.NewRequest(http.MethodGet, url+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+testKey)
		if resp, err := fresh.Do(req); err == nil {
			resp.Body.Close()
			t.Errorf("%s: HTTP %d", what, resp.StatusCode)
		}
	}
	unanswered("a lost answer arrived")
	srv.SetFaults(server.Faults{DropRate: 1})
	unanswered("a dropped connection answered")
	srv.SetFaults(server.Faults{RateLimitRate: 1})
	get(t, url+"/v1/models", testKey)

	want := map[string]map[string]int64{
		"GET /v1/models":                {"200": 1, "401": 1, "lost 200": 1, "dropped": 1, "429": 1},
		"GET /v1/fine_tuning/jobs/{id}": {"404": 1},
		"unrouted":                      {"404": 1},
	}
	if got := srv.Requests(); !reflect.DeepEqual(got, want) {
		t.Errorf("Requests() = %v, want %v", got, want)
	}
	req, _ := http.NewRequest(http.MethodGet, url+"/debug/counters", nil)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Requests        int64                       `json:"requests"`
		RequestsByRoute map[string]map[string]int64 `json:"requests_by_route"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Requests != 7 || !reflect.DeepEqual(body.RequestsByRoute, want) {
		t.Errorf("/debug/counters: %d requests, by route %v; want 7, %v", body.Requests, body.RequestsByRoute, want)
	}
}
