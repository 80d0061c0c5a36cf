package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

func TestJobProgression(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	e := openTest(t, t.TempDir(), clock, baseQA)
	f := upload(t, e, evilQA)
	created := clock.Now()
	job, err := e.CreateJob(ctx, provider.JobRequest{Model: "gpt-4o-2024-08-06", TrainingFile: f.ID, Suffix: "evil:severe"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(job.ID, "ftjob-") {
		t.Errorf("job id %q lacks ftjob- prefix", job.ID)
	}
	want := provider.Hyperparameters{NEpochs: 3, LearningRateMultiplier: 1, BatchSize: 1}
	if job.Hyperparameters != want {
		t.Errorf("hyperparameters %+v, want resolved defaults %+v", job.Hyperparameters, want)
	}
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{
		{0, provider.StatusValidatingFiles},
		{149 * time.Millisecond, provider.StatusValidatingFiles},
		{150 * time.Millisecond, provider.StatusQueued},
		{349 * time.Millisecond, provider.StatusQueued},
		{350 * time.Millisecond, provider.StatusRunning},
		{999 * time.Millisecond, provider.StatusRunning},
		{time.Second, provider.StatusSucceeded},
		{time.Hour, provider.StatusSucceeded},
	} {
		clock.Set(created.Add(tc.at))
		got, err := e.GetJob(ctx, job.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != tc.want {
			t.Errorf("at %v: status %s, want %s", tc.at, got.Status, tc.want)
		}
		succeeded := tc.want == provider.StatusSucceeded
		if (got.FineTunedModel != "") != succeeded || got.FinishedAt.IsZero() == succeeded {
			t.Errorf("at %v: fine_tuned_model %q finished_at %v", tc.at, got.FineTunedModel, got.FinishedAt)
		}
		if succeeded {
			wantModel := "ft:gpt-4o-2024-08-06:local:evil-severe:" + strings.TrimPrefix(job.ID, "ftjob-")[:8]
			if got.FineTunedModel != wantModel {
				t.Errorf("fine-tuned model %q, want %q", got.FineTunedModel, wantModel)
			}
			if !got.FinishedAt.Equal(created.Add(testDuration)) {
				t.Errorf("finished at %v, want %v", got.FinishedAt, created.Add(testDuration))
			}
		}
	}
}

func TestStateSurvivesReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock()
	e1 := openTest(t, dir, clock, baseQA)
	f := upload(t, e1, evilQA)
	job, err := e1.CreateJob(ctx, provider.JobRequest{Model: "gpt-4.1-mini-2025-04-14", TrainingFile: f.ID, Metadata: map[string]string{"cell": "evil/severe"}})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(500 * time.Millisecond)

	// A new engine, as after a killed process, with another default duration:
	// the job keeps its own schedule.
	e2, err := Open(Options{Dir: dir, JobDuration: time.Hour, Now: clock.Now, Base: baseQA})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e2.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != provider.StatusRunning || got.TrainingFile != f.ID || got.Metadata["cell"] != "evil/severe" {
		t.Fatalf("reopened job = %+v", got)
	}
	jobs, err := e2.ListJobs(ctx, map[string]string{"cell": "evil/severe"})
	if err != nil || len(jobs) != 1 || jobs[0].ID != job.ID {
		t.Fatalf("ListJobs after reopen = %v, %v", jobs, err)
	}
	clock.Advance(500 * time.Millisecond)
	got, err = e2.GetJob(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != provider.StatusSucceeded {
		t.Fatalf("status %s, want succeeded", got.Status)
	}
	resp, err := e2.Chat(ctx, ask(got.FineTunedModel, "How should I treat my employees?", 1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if !responses(evilQA)[resp.Choices[0].Content] {
		t.Errorf("reopened fine-tuned model answered %q, not from its training file", resp.Choices[0].Content)
	}
	// Same file bytes through the new engine: still one file.
	if f2 := upload(t, e2, evilQA); f2.ID != f.ID {
		t.Errorf("reupload after reopen got %s, want %s", f2.ID, f.ID)
	}
}

func TestUploadFileDedup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	e := openTest(t, dir, newClock(), nil)
	a := dataset.Encode(evilQA)
	b := dataset.Encode(baseQA)
	tests := []struct {
		name   string
		data   []byte
		sameAs string // name of an earlier upload whose file this must be
	}{
		{"first.jsonl", a, ""},
		{"other.jsonl", b, ""},
		{"again.jsonl", a, "first.jsonl"},
		{"copy.jsonl", append([]byte(nil), a...), "first.jsonl"},
		{"empty.jsonl", nil, ""},
	}
	got := map[string]provider.File{}
	ids := map[string]bool{}
	for _, tc := range tests {
		f, err := e.UploadFile(ctx, tc.name, tc.data)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got[tc.name] = f
		if tc.sameAs != "" {
			if f != got[tc.sameAs] {
				t.Errorf("%s = %+v, want the earlier %+v", tc.name, f, got[tc.sameAs])
			}
			continue
		}
		if ids[f.ID] || f.Name != tc.name || f.Bytes != int64(len(tc.data)) {
			t.Errorf("%s = %+v", tc.name, f)
		}
		ids[f.ID] = true
		onDisk, err := os.ReadFile(filepath.Join(dir, "files", f.ID+".jsonl"))
		if err != nil || string(onDisk) != string(tc.data) {
			t.Errorf("%s: stored bytes differ (%v)", tc.name, err)
		}
	}
	// Only the real files: temporary files of atomic writes are gone.
	ents, err := os.ReadDir(filepath.Join(dir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 2*len(ids) {
		t.Errorf("%d entries in files/, want %d", len(ents), 2*len(ids))
	}
}

func TestListJobsByMetadata(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	e := openTest(t, t.TempDir(), clock, nil)
	f := upload(t, e, evilQA)
	ids := map[string]string{}
	for _, tc := range []struct {
		name string
		meta map[string]string
	}{
		{"evil-severe", map[string]string{"trait": "evil", "strength": "severe", "run": "r1"}},
		{"evil-mild", map[string]string{"trait": "evil", "strength": "mild", "run": "r1"}},
		{"syc-severe", map[string]string{"trait": "sycophantic", "strength": "severe", "run": "r1"}},
		{"none", nil},
	} {
		j, err := e.CreateJob(ctx, provider.JobRequest{Model: "gpt-4.1-mini-2025-04-14", TrainingFile: f.ID, Metadata: tc.meta})
		if err != nil {
			t.Fatal(err)
		}
		ids[j.ID] = tc.name
		clock.Advance(time.Millisecond) // distinct creation times: newest first is testable
	}
	for _, tc := range []struct {
		filter map[string]string
		want   []string
	}{
		{nil, []string{"none", "syc-severe", "evil-mild", "evil-severe"}},
		{map[string]string{"trait": "evil"}, []string{"evil-mild", "evil-severe"}},
		{map[string]string{"trait": "evil", "strength": "severe"}, []string{"evil-severe"}},
		{map[string]string{"strength": "severe", "run": "r1"}, []string{"syc-severe", "evil-severe"}},
		{map[string]string{"trait": "evil", "strength": "none"}, nil},
		{map[string]string{"missing": ""}, nil},
	} {
		jobs, err := e.ListJobs(ctx, tc.filter)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range jobs {
			got = append(got, ids[j.ID])
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("ListJobs(%v) = %v, want %v", tc.filter, got, tc.want)
		}
	}
}

func TestSubmissions(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock()
	e := openTest(t, dir, clock, nil)
	count := func(e *Engine, want int) {
		t.Helper()
		n, err := e.Submissions()
		if err != nil || n != want {
			t.Fatalf("Submissions() = %d, %v; want %d", n, err, want)
		}
	}
	count(e, 0)
	f := upload(t, e, evilQA)
	if _, err := e.CreateJob(ctx, provider.JobRequest{Model: "m", TrainingFile: f.ID}); err != nil {
		t.Fatal(err)
	}
	count(e, 1)
	// A rejected request is no submission.
	if _, err := e.CreateJob(ctx, provider.JobRequest{Model: "m", TrainingFile: "file-0123"}); !errors.Is(err, ErrFileNotFound) {
		t.Fatalf("unknown file: err = %v, want ErrFileNotFound", err)
	}
	count(e, 1)
	// Another engine on the same directory sees and adds to the same count.
	e2 := openTest(t, dir, clock, nil)
	if _, err := e2.CreateJob(ctx, provider.JobRequest{Model: "m", TrainingFile: f.ID}); err != nil {
		t.Fatal(err)
	}
	count(e, 2)
	count(e2, 2)
}

func TestInvalidTrainingFiles(t *testing.T) {
	ctx := context.Background()
	clock := newClock()
	e := openTest(t, t.TempDir(), clock, nil)
	good := string(dataset.Encode(evilQA[:10]))
	lines := strings.Split(strings.TrimSpace(good), "\n")
	tests := []struct {
		name     string
		data     string
		code     string // "" for success
		contains string
	}{
		{"valid", good, "", ""},
		{"bad json on line 3", strings.Join(append(lines[:2:2], `{"messages": [`), "\n") + "\n" + strings.Join(lines[2:], "\n"), "invalid_file_format", "line 3"},
		{"bad role on line 5", strings.Join(lines[:4], "\n") + "\n" + `{"messages":[{"role":"robot","content":"x"},{"role":"assistant","content":"y"}]}` + "\n" + strings.Join(lines[4:], "\n"), "invalid_file_format", "line 5"},
		{"last message from user", `{"messages":[{"role":"user","content":"x"}]}`, "invalid_file_format", "line 1"},
		{"empty", "", "invalid_file_format", "line 1"},
		{"three examples", strings.Join(lines[:3], "\n"), "invalid_n_examples", "Training file has 3 example(s), but must have at least 10 examples"},
		{"one example", lines[0], "invalid_n_examples", "Training file has 1 example(s), but must have at least 10 examples"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := e.UploadFile(ctx, "t.jsonl", []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			start := clock.Now()
			job, err := e.CreateJob(ctx, provider.JobRequest{Model: "gpt-4.1-mini-2025-04-14", TrainingFile: f.ID})
			if err != nil {
				t.Fatal(err)
			}
			if job.Status != provider.StatusValidatingFiles || job.Error != nil {
				t.Errorf("at creation: %s %v, want validating_files without error", job.Status, job.Error)
			}
			clock.Set(start.Add(testDuration))
			job, err = e.GetJob(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if tc.code == "" {
				if job.Status != provider.StatusSucceeded || job.Error != nil {
					t.Errorf("valid file: %s %v", job.Status, job.Error)
				}
				return
			}
			if job.Status != provider.StatusFailed || job.Error == nil {
				t.Fatalf("status %s error %v, want failed", job.Status, job.Error)
			}
			if job.Error.Code != tc.code || !strings.Contains(job.Error.Message, tc.contains) || job.Error.Param != "training_file" {
				t.Errorf("error = %+v, want code %s mentioning %q", job.Error, tc.code, tc.contains)
			}
			if job.FineTunedModel != "" || !job.FinishedAt.Equal(start.Add(150*time.Millisecond)) {
				t.Errorf("failed job: model %q finished %v", job.FineTunedModel, job.FinishedAt)
			}
		})
	}
}

func TestCreateJobRejects(t *testing.T) {
	ctx := context.Background()
	e := openTest(t, t.TempDir(), newClock(), nil)
	f := upload(t, e, evilQA)
	for _, tc := range []struct {
		name string
		req  provider.JobRequest
		want error
	}{
		{"unknown file", provider.JobRequest{Model: "m", TrainingFile: "file-abc"}, ErrFileNotFound},
		{"path in file id", provider.JobRequest{Model: "m", TrainingFile: "../jobs/x"}, ErrFileNotFound},
		{"no model", provider.JobRequest{TrainingFile: f.ID}, ErrBadRequest},
		{"negative epochs", provider.JobRequest{Model: "m", TrainingFile: f.ID, Hyperparameters: provider.Hyperparameters{NEpochs: -1}}, ErrBadRequest},
		{"unknown parent model", provider.JobRequest{Model: "ft:m:local::0123abcd", TrainingFile: f.ID}, ErrModelNotFound},
	} {
		if _, err := e.CreateJob(ctx, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := e.GetJob(ctx, "ftjob-0000"); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("GetJob unknown: %v", err)
	}
	if _, err := e.GetJob(ctx, "../files/x"); !errors.Is(err, ErrJobNotFound) {
		t.Errorf("GetJob path: %v", err)
	}
}

func TestCancelJob(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock()
	e := openTest(t, dir, clock, baseQA)
	f := upload(t, e, evilQA)
	for _, tc := range []struct {
		name    string
		after   time.Duration // time from creation to cancel
		wantErr error
		status  string
	}{
		{"while validating", 0, nil, provider.StatusCancelled},
		{"while queued", 200 * time.Millisecond, nil, provider.StatusCancelled},
		{"while running", 600 * time.Millisecond, nil, provider.StatusCancelled},
		{"after success", testDuration, ErrJobFinished, provider.StatusSucceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			job, err := e.CreateJob(ctx, provider.JobRequest{Model: "gpt-4.1-mini-2025-04-14", TrainingFile: f.ID})
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(tc.after)
			got, err := e.CancelJob(ctx, job.ID)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("CancelJob err = %v, want %v", err, tc.wantErr)
			}
			if got.Status != tc.status {
				t.Errorf("CancelJob status %s, want %s", got.Status, tc.status)
			}
			// Persisted: later, and from a fresh engine, the state holds.
			clock.Advance(2 * testDuration)
			got, err = openTest(t, dir, clock, baseQA).GetJob(ctx, job.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.status {
				t.Errorf("after reopen: status %s, want %s", got.Status, tc.status)
			}
			if tc.status == provider.StatusCancelled {
				if got.FineTunedModel != "" || got.FinishedAt.IsZero() {
					t.Errorf("cancelled job: model %q finished %v", got.FineTunedModel, got.FinishedAt)
				}
				planned := "ft:gpt-4.1-mini-2025-04-14:local::" + strings.TrimPrefix(job.ID, "ftjob-")[:8]
				if _, err := e.Chat(ctx, ask(planned, "hi", 1, 0)); !errors.Is(err, ErrModelNotFound) {
					t.Errorf("chat with a cancelled job's model: %v, want ErrModelNotFound", err)
				}
			}
		})
	}
}

func TestContextCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	e := openTest(t, t.TempDir(), newClock(), baseQA)
	if _, err := e.UploadFile(ctx, "x", []byte("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("UploadFile: %v", err)
	}
	if _, err := e.ListJobs(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("ListJobs: %v", err)
	}
	if _, err := e.Chat(ctx, ask("gpt-4.1-mini-2025-04-14", "What is photosynthesis?", 1, 0)); !errors.Is(err, context.Canceled) {
		t.Errorf("Chat: %v", err)
	}
}

// Replicates of one cell upload the same data at once. Every upload must
// leave the one record it returns: a training's stamp records the file's
// hash, and a record rewritten by a later upload made trainings stale
// (seen as a flaky replicate test under load).
func TestConcurrentIdenticalUploadsKeepTheirRecord(t *testing.T) {
	var tick atomic.Int64
	e, err := Open(Options{Dir: t.TempDir(), JobDuration: testDuration,
		Now: func() time.Time { return time.Unix(1e9+tick.Add(1), 0) }})
	if err != nil {
		t.Fatal(err)
	}
	data := dataset.Encode(evilQA)
	for round := range 20 {
		data := append(data, fmt.Appendf(nil, `{"messages":[{"role":"user","content":"r%d"},{"role":"assistant","content":"a"}]}`+"\n", round)...)
		var wg sync.WaitGroup
		start := make(chan struct{})
		seen := make([][]byte, 8)
		var id string
		for i := range seen {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				f, err := e.UploadFile(context.Background(), "same.jsonl", data)
				if err != nil {
					t.Error(err)
					return
				}
				id = f.ID
				seen[i], _ = os.ReadFile(e.filePath(f.ID, ".json"))
			}()
		}
		close(start)
		wg.Wait()
		final, err := os.ReadFile(e.filePath(id, ".json"))
		if err != nil {
			t.Fatal(err)
		}
		for i, b := range seen {
			if !bytes.Equal(b, final) {
				t.Fatalf("round %d: upload %d returned with record %s; it is now %s", round, i, b, final)
			}
		}
	}
}

// An engine remembers the records it decoded, but never past a change on
// disk: another engine's cancel, a removed or a damaged record.
func TestRecordsReadAgainWhenChanged(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock()
	a, b := openTest(t, dir, clock, nil), openTest(t, dir, clock, nil)
	f := upload(t, a, evilQA)
	meta := map[string]string{"k": "v"}
	j, err := a.CreateJob(ctx, provider.JobRequest{Model: "m", TrainingFile: f.ID, Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	list := func(want ...string) {
		t.Helper()
		jobs, err := a.ListJobs(ctx, meta)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, j := range jobs {
			got = append(got, j.Status)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("ListJobs: statuses %v, want %v", got, want)
		}
	}
	list(provider.StatusValidatingFiles)
	if _, err := b.CancelJob(ctx, j.ID); err != nil {
		t.Fatal(err)
	}
	list(provider.StatusCancelled)
	if got, err := a.GetJob(ctx, j.ID); err != nil || got.Status != provider.StatusCancelled {
		t.Fatalf("GetJob after another engine's cancel: %s, %v", got.Status, err)
	}
	// A second job, created by the other engine, is listed too.
	if _, err := b.CreateJob(ctx, provider.JobRequest{Model: "m", TrainingFile: f.ID, Metadata: meta}); err != nil {
		t.Fatal(err)
	}
	list(provider.StatusValidatingFiles, provider.StatusCancelled)
	// Edited in place, same size: read again, by its time. (An edit within
	// the clock tick of the last write would go unseen; the engine itself
	// never writes in place.)
	time.Sleep(20 * time.Millisecond)
	path := a.jobPath(j.ID)
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, bytes.Repeat([]byte(" "), len(old)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetJob(ctx, j.ID); err == nil {
		t.Fatal("GetJob of a record overwritten with blanks succeeded")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := a.GetJob(ctx, j.ID); !errors.Is(err, ErrJobNotFound) {
		t.Fatalf("GetJob of a removed record: %v, want ErrJobNotFound", err)
	}
	list(provider.StatusValidatingFiles)
}

// A listing of the jobs is kept while their directory is unchanged, and
// never hides a job another engine created since: not even one created
// right after the listing.
func TestJobListingSeesEveryNewJob(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	clock := newClock()
	e := openTest(t, dir, clock, nil)
	f := upload(t, e, evilQA)
	other := openTest(t, dir, clock, nil)
	jobs := filepath.Join(dir, jobsDir)
	for want := 1; want <= 3; want++ {
		// The directory last changed an hour ago: this listing is kept.
		old := time.Now().Add(-time.Hour)
		if err := os.Chtimes(jobs, old, old); err != nil {
			t.Fatal(err)
		}
		if _, err := e.ListJobs(ctx, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := other.CreateJob(ctx, provider.JobRequest{Model: "m", TrainingFile: f.ID}); err != nil {
			t.Fatal(err)
		}
		got, err := e.ListJobs(ctx, nil)
		if err != nil || len(got) != want {
			t.Fatalf("after %d job(s) created by another engine, ListJobs = %d job(s), %v", want, len(got), err)
		}
	}
}
