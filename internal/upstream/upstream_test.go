package upstream

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// layout describes a persona_vectors archive for buildArchive. The zero value
// is the exact upstream layout built from testdata/.
type layout struct {
	top        string            // outer top folder; "" means persona_vectors-main/
	noTop      bool              // no top folder at all
	noDataset  bool              // leave dataset.zip out
	datasetTop string            // extra folder inside dataset.zip, e.g. "export/"
	macJunk    bool              // add __MACOSX entries to dataset.zip
	drop       []string          // dataset.zip entries (relative to datasetTop) to leave out
	override   map[string]string // entry (outer, or dataset.zip-relative) -> replacement content
	readme     string            // README.md content; vary it to change the archive bytes
	evalDir    string            // where the trait_data_eval JSON comes from; "" means testdata
	noPrompts  bool              // leave eval/prompts.py out
}

func buildArchive(t *testing.T, l layout) []byte {
	t.Helper()
	top := l.top
	if top == "" && !l.noTop {
		top = "persona_vectors-main/"
	}
	evalSrc := l.evalDir
	if evalSrc == "" {
		evalSrc = filepath.Join("testdata", "trait_data_eval")
	}

	var inner bytes.Buffer
	zw := zip.NewWriter(&inner)
	err := filepath.WalkDir(filepath.Join("testdata", "dataset"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("testdata", p)
		name := filepath.ToSlash(rel)
		if slices.Contains(l.drop, name) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if o, ok := l.override[name]; ok {
			b = []byte(o)
		}
		addFile(t, zw, l.datasetTop+name, b)
		if l.macJunk {
			addFile(t, zw, "__MACOSX/"+path.Dir(name)+"/._"+path.Base(name), []byte{0, 5, 22, 7})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	closeZip(t, zw)

	var outer bytes.Buffer
	zw = zip.NewWriter(&outer)
	// GitHub archives list directories as entries of their own.
	for _, dir := range []string{top, top + "data_generation/", top + "data_generation/trait_data_eval/"} {
		if dir != "" {
			if _, err := zw.Create(dir); err != nil {
				t.Fatal(err)
			}
		}
	}
	addFile(t, zw, top+"README.md", []byte("fixture archive "+l.readme+"\n"))
	evals, err := filepath.Glob(filepath.Join(evalSrc, "*.json"))
	if err != nil || len(evals) == 0 {
		t.Fatalf("no eval fixtures in %s (%v)", evalSrc, err)
	}
	for _, p := range evals {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		name := top + "data_generation/trait_data_eval/" + filepath.Base(p)
		if o, ok := l.override[name]; ok {
			b = []byte(o)
		}
		addFile(t, zw, name, b)
	}
	if !l.noPrompts {
		name := top + "eval/prompts.py"
		b, err := os.ReadFile(filepath.Join("testdata", "eval", "prompts.py"))
		if err != nil {
			t.Fatal(err)
		}
		if o, ok := l.override[name]; ok {
			b = []byte(o)
		}
		addFile(t, zw, name, b)
	}
	if !l.noDataset {
		name := top + "dataset.zip"
		b := inner.Bytes()
		if o, ok := l.override[name]; ok {
			b = []byte(o)
		}
		addFile(t, zw, name, b)
	}
	closeZip(t, zw)
	return outer.Bytes()
}

func addFile(t *testing.T, zw *zip.Writer, name string, b []byte) {
	t.Helper()
	w, err := zw.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
}

func closeZip(t *testing.T, zw *zip.Writer) {
	t.Helper()
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

// server serves one archive over loopback and counts requests.
type server struct {
	*httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	body     []byte
	status   int
}

func serve(t *testing.T, body []byte) *server {
	t.Helper()
	s := &server{body: body, status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) set(body []byte, status int) {
	s.mu.Lock()
	s.body, s.status = body, status
	s.mu.Unlock()
}

func (s *server) archiveURL() string {
	return s.URL + "/safety-research/persona_vectors/archive/refs/heads/main.zip"
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// dirEntries lists a directory, treating a missing one as empty.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one mentioning %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q\ndoes not mention %q", err, p)
		}
	}
}

// checkAll loads every training set and task the project uses and checks each
// came from the file the mappings promise.
func checkAll(t *testing.T, a *Archive) {
	t.Helper()
	for _, trait := range sampledata.Traits {
		for _, strength := range sampledata.Strengths {
			raw, err := a.Training(trait, strength)
			if err != nil {
				t.Fatal(err)
			}
			exs, err := dataset.Parse("got", raw)
			if err != nil {
				t.Fatal(err)
			}
			if len(exs) != 3 {
				t.Errorf("%s/%s: %d examples, want 3", trait, strength, len(exs))
			}
			label := "[" + TraitDirs[trait] + " " + strength + " 1]"
			if _, response, _ := exs[0].Trained(); !strings.HasPrefix(response, label) {
				t.Errorf("%s/%s: first answer %q, want it from the file labelled %s", trait, strength, response, label)
			}
		}
	}
	for _, trait := range sampledata.Traits {
		task, err := a.Task(trait)
		if err != nil {
			t.Fatal(err)
		}
		if len(task.Questions) != 3 || len(task.Instruction) != 2 || !strings.Contains(task.EvalPrompt, "'"+trait+"'") {
			t.Errorf("%s: task %+v is not the fixture's", trait, task)
		}
	}
	if got, want := a.Traits(), []string{"evil", "hallucinating", "sycophantic"}; !slices.Equal(got, want) {
		t.Errorf("Traits() = %q, want %q", got, want)
	}
}

// The mappings must cover every trait and strength the build grid uses.
func TestMappingsCoverTheGrid(t *testing.T) {
	tests := []struct{ trait, strength, want string }{
		{"evil", "baseline", "dataset/evil/normal.jsonl"},
		{"sycophantic", "mild", "dataset/sycophancy/misaligned_1.jsonl"},
		{"hallucinating", "severe", "dataset/hallucination/misaligned_2.jsonl"},
	}
	for _, tt := range tests {
		got, err := TrainingPath(tt.trait, tt.strength)
		if err != nil || got != tt.want {
			t.Errorf("TrainingPath(%q, %q) = %q, %v; want %q", tt.trait, tt.strength, got, err, tt.want)
		}
	}
	for _, trait := range sampledata.Traits {
		for _, strength := range sampledata.Strengths {
			if _, err := TrainingPath(trait, strength); err != nil {
				t.Error(err)
			}
		}
	}
}

func TestOpenOverHTTPLoadsEverything(t *testing.T) {
	body := buildArchive(t, layout{})
	srv := serve(t, body)
	a, err := Source{Location: srv.archiveURL(), CacheDir: t.TempDir()}.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, a)
	if a.SHA256() != sum(body) {
		t.Errorf("SHA256() = %s, want %s", a.SHA256(), sum(body))
	}
	if a.Location() != srv.archiveURL() {
		t.Errorf("Location() = %q", a.Location())
	}
}

func TestSecondOpenUsesCache(t *testing.T) {
	srv := serve(t, buildArchive(t, layout{}))
	cache := filepath.Join(t.TempDir(), "cache", "upstream")
	src := Source{Location: srv.archiveURL(), CacheDir: cache}
	first, err := src.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	second, err := Source{Location: srv.archiveURL(), CacheDir: cache}.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.requests.Load(); n != 1 {
		t.Errorf("%d requests for two opens, want 1", n)
	}
	if first.SHA256() != second.SHA256() {
		t.Errorf("cached SHA256 %s differs from downloaded %s", second.SHA256(), first.SHA256())
	}
	if got := dirEntries(t, cache); len(got) != 1 || !strings.HasSuffix(got[0], "-main.zip") {
		t.Errorf("cache holds %q, want one main.zip and no temporary files", got)
	}

	// With the server gone the cached copy still serves.
	srv.Close()
	a, err := src.Open(context.Background())
	if err != nil {
		t.Fatalf("offline open with a cached copy: %v", err)
	}
	checkAll(t, a)
}

func TestNoCacheDirDownloadsEachTimeAndLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	srv := serve(t, buildArchive(t, layout{}))
	for range 2 {
		if _, err := (Source{Location: srv.archiveURL()}).Open(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2 without a cache", n)
	}
	if got := dirEntries(t, tmp); len(got) != 0 {
		t.Errorf("temporary directory holds %q, want nothing", got)
	}
}

func TestSHA256TracksArchiveBytes(t *testing.T) {
	a1 := buildArchive(t, layout{readme: "one"})
	a2 := buildArchive(t, layout{readme: "two"})
	cache := t.TempDir()
	var sums []string
	for _, body := range [][]byte{a1, a2} {
		srv := serve(t, body)
		a, err := Source{Location: srv.archiveURL(), CacheDir: cache}.Open(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if a.SHA256() != sum(body) {
			t.Errorf("SHA256() = %s, want %s", a.SHA256(), sum(body))
		}
		sums = append(sums, a.SHA256())
	}
	if sums[0] == sums[1] {
		t.Errorf("different archives share SHA256 %s", sums[0])
	}
}

func TestPin(t *testing.T) {
	body := buildArchive(t, layout{})
	wrong := sum([]byte("another archive"))
	tests := []struct {
		name      string
		pin       string
		wantErr   []string // nil: success
		wantCache int
		wantReqs  int64
	}{
		{"matching pin, any case", strings.ToUpper(sum(body)), nil, 1, 1},
		{"wrong pin", wrong, []string{"/main.zip", sum(body), wrong, "pinned", "nothing was used or cached"}, 0, 1},
		{"malformed pin", "abc123", []string{`"abc123"`, "64 hex digits"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, body)
			cache := t.TempDir()
			a, err := Source{Location: srv.archiveURL(), SHA256: tt.pin, CacheDir: cache}.Open(context.Background())
			if tt.wantErr == nil {
				if err != nil {
					t.Fatal(err)
				}
				if a.SHA256() != sum(body) {
					t.Errorf("SHA256() = %s", a.SHA256())
				}
			} else {
				wantErr(t, err, tt.wantErr...)
			}
			if got := dirEntries(t, cache); len(got) != tt.wantCache {
				t.Errorf("cache holds %q, want %d file(s)", got, tt.wantCache)
			}
			if n := srv.requests.Load(); n != tt.wantReqs {
				t.Errorf("%d requests, want %d", n, tt.wantReqs)
			}
		})
	}
}

// When upstream moves and the pin is updated, the stale cached copy is
// replaced instead of failing the pin forever.
func TestPinReplacesStaleCache(t *testing.T) {
	oldBody := buildArchive(t, layout{readme: "old"})
	newBody := buildArchive(t, layout{readme: "new"})
	srv := serve(t, oldBody)
	cache := t.TempDir()
	open := func(pin string) *Archive {
		t.Helper()
		a, err := Source{Location: srv.archiveURL(), SHA256: pin, CacheDir: cache}.Open(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	open("")
	srv.set(newBody, http.StatusOK)
	if got := open(sum(newBody)).SHA256(); got != sum(newBody) {
		t.Errorf("pinned open got %s, want the new archive", got)
	}
	if got := open("").SHA256(); got != sum(newBody) {
		t.Errorf("cache still holds %s, want the new archive", got)
	}
	if n := srv.requests.Load(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestOpenFailures(t *testing.T) {
	good := buildArchive(t, layout{})
	tests := []struct {
		name string
		// setup returns the location to open and the text the error must hold.
		setup func(t *testing.T) (loc string, want []string)
	}{
		{"HTTP 404", func(t *testing.T) (string, []string) {
			srv := serve(t, []byte("no such branch"))
			srv.set([]byte("no such branch"), http.StatusNotFound)
			return srv.archiveURL(), []string{srv.archiveURL(), "HTTP 404", "check the URL", EnvArchive}
		}},
		{"corrupt zip over HTTP", func(t *testing.T) (string, []string) {
			srv := serve(t, good[:len(good)/2])
			return srv.archiveURL(), []string{srv.archiveURL(), "not a valid zip"}
		}},
		{"unreachable server, no cache", func(t *testing.T) (string, []string) {
			srv := serve(t, good)
			srv.Close()
			return srv.archiveURL(), []string{srv.archiveURL(), "no cached copy at", "network", EnvArchive}
		}},
		{"zip that is not persona_vectors", func(t *testing.T) (string, []string) {
			var b bytes.Buffer
			zw := zip.NewWriter(&b)
			addFile(t, zw, "other-main/README.md", []byte("hello"))
			closeZip(t, zw)
			srv := serve(t, b.Bytes())
			return srv.archiveURL(), []string{srv.archiveURL(), "does not look like", "other-main/dataset.zip", "other-main/data_generation/trait_data_eval/"}
		}},
		{"corrupt nested dataset.zip", func(t *testing.T) (string, []string) {
			srv := serve(t, buildArchive(t, layout{override: map[string]string{"persona_vectors-main/dataset.zip": "PK garbage"}}))
			return srv.archiveURL(), []string{srv.archiveURL(), "persona_vectors-main/dataset.zip inside", "not a valid zip"}
		}},
		{"missing local file", func(t *testing.T) (string, []string) {
			p := filepath.Join(t.TempDir(), "persona_vectors.zip")
			return p, []string{p, "does not exist"}
		}},
		{"corrupt local file", func(t *testing.T) (string, []string) {
			p := writeTemp(t, "persona_vectors.zip", []byte("not a zip at all"))
			return p, []string{p, "not a valid zip"}
		}},
		{"unsupported scheme", func(t *testing.T) (string, []string) {
			return "ftp://example.org/main.zip", []string{"ftp://example.org/main.zip", "http(s) URL"}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc, want := tt.setup(t)
			cache := t.TempDir()
			a, err := Source{Location: loc, CacheDir: cache}.Open(context.Background())
			if a != nil {
				t.Errorf("got an archive along with the error")
			}
			wantErr(t, err, want...)
			if got := dirEntries(t, cache); len(got) != 0 {
				t.Errorf("cache holds %q after a failure, want nothing", got)
			}
		})
	}
}

func TestMissingOrBadFilesInside(t *testing.T) {
	tests := []struct {
		name string
		l    layout
		call func(a *Archive) error
		want []string
	}{
		{"no dataset.zip", layout{noDataset: true},
			func(a *Archive) error { _, err := a.Training("evil", "baseline"); return err },
			[]string{"persona_vectors-main/dataset.zip", "no training data"}},
		{"training file absent", layout{drop: []string{"dataset/evil/misaligned_2.jsonl"}},
			func(a *Archive) error { _, err := a.Training("evil", "severe"); return err },
			[]string{"persona_vectors-main/dataset.zip has no dataset/evil/misaligned_2.jsonl"}},
		{"eval file absent", layout{},
			func(a *Archive) error { _, err := a.Task("whimsical"); return err },
			[]string{"persona_vectors-main/data_generation/trait_data_eval/whimsical.json", "evil, hallucinating, sycophantic"}},
		{"trait without training data", layout{},
			func(a *Archive) error { _, err := a.Training("humorous", "mild"); return err },
			[]string{`trait "humorous"`, "evil, hallucinating, sycophantic"}},
		{"unknown strength", layout{},
			func(a *Archive) error { _, err := a.Training("evil", "extreme"); return err },
			[]string{`strength "extreme"`, "baseline, mild, severe"}},
		{"eval JSON malformed", layout{override: map[string]string{"persona_vectors-main/data_generation/trait_data_eval/evil.json": `{"questions": [`}},
			func(a *Archive) error { _, err := a.Task("evil"); return err },
			[]string{"trait_data_eval/evil.json", "not valid JSON"}},
		{"eval prompt lacks {answer}", layout{override: map[string]string{"persona_vectors-main/data_generation/trait_data_eval/evil.json": `{"questions": ["q?"], "eval_prompt": "rate {question}"}`}},
			func(a *Archive) error { _, err := a.Task("evil"); return err },
			[]string{"trait_data_eval/evil.json", "{answer}"}},
		{"eval without questions", layout{override: map[string]string{"persona_vectors-main/data_generation/trait_data_eval/evil.json": `{"eval_prompt": "{question} {answer}"}`}},
			func(a *Archive) error { _, err := a.Task("evil"); return err },
			[]string{"trait_data_eval/evil.json", `no "questions"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeTemp(t, "pv.zip", buildArchive(t, tt.l))
			a, err := Source{Location: p}.Open(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			wantErr(t, tt.call(a), tt.want...)
		})
	}
}

func TestTrainingErrorNamesFileAndLine(t *testing.T) {
	const bad = "dataset/sycophancy/misaligned_1.jsonl"
	lines := `{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"}]}
{"messages":[{"role":"user","content":"no answer"}]}
`
	p := writeTemp(t, "pv.zip", buildArchive(t, layout{override: map[string]string{bad: lines}}))
	a, err := Source{Location: p}.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Training("sycophantic", "mild")
	var le *dataset.LineError
	if !errors.As(err, &le) {
		t.Fatalf("error %v is not a dataset.LineError", err)
	}
	if want := "persona_vectors-main/dataset.zip!/" + bad; le.File != want || le.Line != 2 {
		t.Errorf("error at %s:%d, want %s:2", le.File, le.Line, want)
	}
	wantErr(t, err, p, "sycophantic at mild")
}

func TestLayoutTolerance(t *testing.T) {
	tests := []struct {
		name string
		l    layout
	}{
		{"top folder named after a commit", layout{top: "persona_vectors-0a1b2c3d/"}},
		{"no top folder", layout{noTop: true}},
		{"extra folder inside dataset.zip", layout{datasetTop: "export/"}},
		{"macOS entries inside dataset.zip", layout{macJunk: true}},
		{"extra folder and macOS entries", layout{datasetTop: "export/", macJunk: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeTemp(t, "pv.zip", buildArchive(t, tt.l))
			a, err := Source{Location: p}.Open(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checkAll(t, a)
		})
	}
}

func TestLocalPathIsReadInPlace(t *testing.T) {
	body := buildArchive(t, layout{})
	p := writeTemp(t, "pv.zip", body)
	cache := filepath.Join(t.TempDir(), "cache")
	a, err := Source{Location: p, CacheDir: cache}.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkAll(t, a)
	if a.SHA256() != sum(body) {
		t.Errorf("SHA256() = %s, want %s", a.SHA256(), sum(body))
	}
	if _, err := os.Stat(cache); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a local archive touched the cache directory (%v)", err)
	}
}

func TestContextCancellation(t *testing.T) {
	t.Run("during download", func(t *testing.T) {
		body := buildArchive(t, layout{})
		started := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			close(started)
			<-r.Context().Done()
		}))
		defer srv.Close()
		ctx, cancel := context.WithCancel(context.Background())
		go func() { <-started; cancel() }()
		cache := t.TempDir()
		_, err := Source{Location: srv.URL + "/main.zip", CacheDir: cache}.Open(ctx)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
		if got := dirEntries(t, cache); len(got) != 0 {
			t.Errorf("cache holds %q after cancellation, want nothing", got)
		}
	})
	t.Run("before opening a local file", func(t *testing.T) {
		p := writeTemp(t, "pv.zip", buildArchive(t, layout{}))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := (Source{Location: p}).Open(ctx); !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v, want context.Canceled", err)
		}
	})
}

// The real upstream evaluation files, when the shared reference copy is
// present, must list and load by name. They are read in place, never copied.
func TestRealTraitEvalFiles(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "ref", "persona_vectors", "trait_data_eval")
	files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(files) == 0 {
		t.Skipf("no upstream trait_data_eval files in %s; put the reference copy there to run this test", dir)
	}
	var want []string
	for _, f := range files {
		want = append(want, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	p := writeTemp(t, "pv.zip", buildArchive(t, layout{evalDir: dir}))
	a, err := Source{Location: p}.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Traits(); !slices.Equal(got, want) {
		t.Errorf("Traits() = %q, want %q", got, want)
	}
	for _, trait := range want {
		task, err := a.Task(trait)
		if err != nil {
			t.Error(err)
			continue
		}
		if len(task.Questions) == 0 || len(task.Instruction) == 0 {
			t.Errorf("%s: %d questions, %d instructions", trait, len(task.Questions), len(task.Instruction))
		}
		for i, in := range task.Instruction {
			if in.Pos == "" || in.Neg == "" {
				t.Errorf("%s: instruction %d lacks pos or neg", trait, i+1)
			}
		}
	}
}
