// Package upstream reads the real Persona Vectors data out of the GitHub
// archive of safety-research/persona_vectors, the way the original loaders
// do: training sets from the dataset.zip nested in the archive, evaluation
// tasks from data_generation/trait_data_eval/<trait>.json, and the coherence
// rubric from the Python module eval/prompts.py.
//
// Downloads are cached by location so a build fetches the archive once; the
// archive's SHA-256 is exposed so callers can stamp it into build keys and
// rebuild when upstream data changes.
package upstream

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/inputfile"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// DefaultURL is the archive of the upstream repository's main branch.
const DefaultURL = "https://github.com/safety-research/persona_vectors/archive/refs/heads/main.zip"

// EnvArchive is the environment variable callers read to override the
// location; it is named here only so error hints and callers agree.
const EnvArchive = "PERSONA_VECTORS_ARCHIVE"

// Size limits keep a hostile or mistaken source from filling disk or memory.
// Each entry is refused by its header when that already exceeds a limit,
// and read through a bound anyway, since a header can lie (archive/zip also
// fails a read that runs past the header's size). The real archive is far
// below every limit: its dataset.zip is a few MB, each training file and
// eval file well under 1 MB, a few hundred entries in all.
const (
	MaxArchiveBytes  = 4 << 30   // the outer download or local file
	maxDatasetBytes  = 256 << 20 // dataset.zip, held in memory
	maxTrainingBytes = 64 << 20  // each training file, read only when asked for
	maxEvalBytes     = 16 << 20  // each trait_data_eval file
	maxEvalTotal     = 64 << 20  // all trait_data_eval files together
	maxEntries       = 20000     // entries of the outer archive or of dataset.zip
	// maxRatio bounds uncompressed/compressed size of an entry above
	// ratioFloor bytes: text deflates some 3 to 10-fold, a bomb of zeros
	// about 1000-fold.
	maxRatio   = 200
	ratioFloor = 1 << 20
)

// TraitDirs maps a trait to its folder inside dataset.zip (dataset/<dir>/).
// Read-only: it documents the upstream layout.
var TraitDirs = map[string]string{
	"evil":          "evil",
	"sycophantic":   "sycophancy",
	"hallucinating": "hallucination",
}

// StrengthFiles maps a strength to its file name (without .jsonl) inside a
// trait's folder. Read-only: it documents the upstream layout.
var StrengthFiles = map[string]string{
	"baseline": "normal",
	"mild":     "misaligned_1",
	"severe":   "misaligned_2",
}

// TrainingPath is where a trait's training set at a strength lives inside
// dataset.zip, e.g. dataset/evil/normal.jsonl.
func TrainingPath(trait, strength string) (string, error) {
	dir, ok := TraitDirs[trait]
	if !ok {
		return "", fmt.Errorf("no upstream training data for trait %q; traits with training data: %s", trait, strings.Join(sortedKeys(TraitDirs), ", "))
	}
	file, ok := StrengthFiles[strength]
	if !ok {
		return "", fmt.Errorf("no upstream training data at strength %q; strengths: %s", strength, strings.Join(sortedKeys(StrengthFiles), ", "))
	}
	return "dataset/" + dir + "/" + file + ".jsonl", nil
}

// Layout of the outer archive, relative to its top folder.
const (
	datasetZip = "dataset.zip"
	evalDir    = "data_generation/trait_data_eval/"
)

// Source says where the archive comes from and where downloads are cached.
type Source struct {
	// Location is an http(s) URL or a local .zip path; "" means DefaultURL.
	Location string
	// SHA256 optionally pins the archive (hex). On mismatch nothing is used or cached.
	SHA256 string
	// CacheDir holds downloads, keyed by location. "" downloads to a temporary
	// file on every Open.
	CacheDir string
	// Client fetches URLs; nil means a client with sane timeouts.
	Client *http.Client
}

// Archive is an opened persona_vectors archive. Its contents are read at
// Open, so it holds no file handles and is safe for concurrent use.
type Archive struct {
	location string
	sha      string
	top      string // top folder inside the outer archive, "" or "name/"

	evals map[string][]byte // trait -> raw trait_data_eval JSON

	prompts    []byte // eval/prompts.py; nil if the archive has none
	promptsErr error  // why eval/prompts.py could not be read, if it could not

	datasetName  string               // path of dataset.zip in the outer archive
	datasetErr   error                // why dataset.zip cannot be used, if it cannot
	datasetFiles map[string]*zip.File // entries of dataset.zip by name
	datasetTop   string               // top folder inside dataset.zip, "" or "name/"
}

// Open returns the archive, downloading it first unless it is a local path or
// already cached. A download is verified (it must be a zip laid out like
// persona_vectors and match the pin) before it enters the cache.
func (s Source) Open(ctx context.Context) (*Archive, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open persona_vectors archive: %w", err)
	}
	loc := s.Location
	if loc == "" {
		loc = DefaultURL
	}
	pin, err := normalizePin(s.SHA256)
	if err != nil {
		return nil, err
	}
	if !isURL(loc) {
		if i := strings.Index(loc, "://"); i > 0 && !strings.ContainsAny(loc[:i], `/\`) {
			return nil, fmt.Errorf("unsupported persona_vectors archive location %q: use an http(s) URL or the path of a local .zip file", loc)
		}
		return openFile(ctx, loc, loc, pin)
	}
	if s.CacheDir == "" {
		return s.download(ctx, loc, "", pin, nil)
	}
	cached := filepath.Join(s.CacheDir, cacheName(loc))
	var stale error
	if _, err := os.Stat(cached); err == nil {
		a, err := openFile(ctx, loc, cached, pin)
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		// A copy that fails the pin (upstream moved) or is damaged is
		// replaced by a fresh download rather than trusted.
		stale = err
	}
	return s.download(ctx, loc, cached, pin, stale)
}

// download fetches loc into a temporary file beside dest, verifies it by
// opening it, and renames it to dest. dest "" means don't cache.
func (s Source) download(ctx context.Context, loc, dest, pin string, stale error) (*Archive, error) {
	dir := os.TempDir()
	if dest != "" {
		dir = filepath.Dir(dest)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create cache directory for the persona_vectors archive: %w; check that %s is writable", err, dir)
		}
	}
	tmp, err := os.CreateTemp(dir, ".upstream-*.zip.tmp")
	if err != nil {
		return nil, fmt.Errorf("create temporary file for the persona_vectors archive: %w; check that %s is writable", err, dir)
	}
	renamed := false
	defer func() {
		tmp.Close()
		if !renamed {
			os.Remove(tmp.Name())
		}
	}()

	if err := s.fetch(ctx, loc, tmp, dest, stale); err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, fmt.Errorf("save persona_vectors archive from %s: %w; check free space in %s", loc, err, dir)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("save persona_vectors archive from %s: %w; check free space in %s", loc, err, dir)
	}
	a, err := openFile(ctx, loc, tmp.Name(), pin)
	if err != nil {
		return nil, err
	}
	if dest == "" {
		return a, nil
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return nil, fmt.Errorf("cache persona_vectors archive from %s: %w; check that %s is writable", loc, err, dir)
	}
	renamed = true
	// Sync the directory so the rename itself survives a power loss.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return a, nil
}

// fetch copies the body of a GET of loc into w.
func (s Source) fetch(ctx context.Context, loc string, w io.Writer, dest string, stale error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, loc, nil)
	if err != nil {
		return fmt.Errorf("bad persona_vectors archive URL %q: %w; fix the URL", loc, err)
	}
	client := s.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("download persona_vectors archive from %s: %w", loc, ctx.Err())
		}
		// url.Error repeats the URL the message already names.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		cache := "caching is off"
		switch {
		case stale != nil:
			cache = fmt.Sprintf("the cached copy is unusable (%v)", stale)
		case dest != "":
			cache = "no cached copy at " + dest
		}
		return fmt.Errorf("download persona_vectors archive from %s: %w; %s. Check your network connection, or download the archive yourself and set %s to its path", loc, err, cache, EnvArchive)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download persona_vectors archive from %s: HTTP %s; check the URL, or download the archive yourself and set %s to its path", loc, resp.Status, EnvArchive)
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, MaxArchiveBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("download persona_vectors archive from %s: %w", loc, ctx.Err())
		}
		return fmt.Errorf("download persona_vectors archive from %s: %w; try again, or download the archive yourself and set %s to its path", loc, err, EnvArchive)
	}
	if n > MaxArchiveBytes {
		return fmt.Errorf("download persona_vectors archive from %s: larger than %d bytes; check that the URL points to the repository archive", loc, int64(MaxArchiveBytes))
	}
	return nil
}

// defaultClient bounds connection setup and waiting for headers but not the
// transfer itself, which may be slow on a poor link; ctx cancels it.
var defaultClient = func() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = time.Minute
	return &http.Client{Transport: tr, Timeout: 30 * time.Minute}
}()

// openFile hashes the zip at file, checks the pin and indexes it. loc names
// the archive in messages (the URL for downloads, file may be a temp file).
func openFile(ctx context.Context, loc, file, pin string) (*Archive, error) {
	f, fi, err := inputfile.Open(file)
	switch {
	case errors.Is(err, inputfile.ErrNotRegular):
		return nil, fmt.Errorf("persona_vectors archive %s is not a regular file; point the location at the .zip archive", loc)
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("persona_vectors archive %s does not exist; check the path", loc)
	case err != nil:
		return nil, fmt.Errorf("open persona_vectors archive %s: %w", loc, err)
	}
	defer f.Close()
	if fi.Size() > MaxArchiveBytes {
		return nil, fmt.Errorf("persona_vectors archive %s is larger than the %s limit; check that it is the repository's .zip archive", loc, inputfile.Size(MaxArchiveBytes))
	}
	h := sha256.New()
	size, err := io.Copy(h, ctxReader{ctx, f})
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read persona_vectors archive %s: %w", loc, ctx.Err())
		}
		return nil, fmt.Errorf("read persona_vectors archive %s: %w; check the file", loc, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if pin != "" && sum != pin {
		return nil, fmt.Errorf("persona_vectors archive %s has SHA-256 %s, but %s is pinned; nothing was used or cached. Update the pin if upstream changed on purpose, otherwise check the source", loc, sum, pin)
	}
	zr, err := zip.NewReader(f, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) { // names are only looked up, never extracted
		return nil, fmt.Errorf("persona_vectors archive %s is not a valid zip file (%v); check that it is the repository's .zip archive", loc, err)
	}
	if len(zr.File) > maxEntries {
		return nil, fmt.Errorf("persona_vectors archive %s has %d entries, more than %d entries; the repository's archive has a few hundred, so this is not it", loc, len(zr.File), maxEntries)
	}
	return index(loc, sum, zr)
}

// index finds the eval files and reads dataset.zip. The top folder is found,
// not assumed, since GitHub names it after the branch or commit.
func index(loc, sum string, zr *zip.Reader) (*Archive, error) {
	byName := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		byName[f.Name] = f
	}
	top := commonTop(zr.File)
	a := &Archive{location: loc, sha: sum, top: top, evals: map[string][]byte{}}
	// Also try the root, in case the zip holds the repository without a
	// top folder but with a single top-level directory.
	for _, prefix := range dedupe(top, "") {
		found := false
		var total uint64
		for _, f := range zr.File {
			rest, ok := strings.CutPrefix(f.Name, prefix+evalDir)
			if !ok || strings.Contains(rest, "/") || !strings.HasSuffix(rest, ".json") {
				continue
			}
			if total += f.UncompressedSize64; total > maxEvalTotal {
				return nil, fmt.Errorf("persona_vectors archive %s: its %s*.json files hold more than %s in all; the repository's hold well under 1 MiB", loc, prefix+evalDir, inputfile.Size(maxEvalTotal))
			}
			b, err := readEntry(f, maxEvalBytes)
			if err != nil {
				return nil, fmt.Errorf("read %s from persona_vectors archive %s: %w", f.Name, loc, err)
			}
			a.evals[strings.TrimSuffix(rest, ".json")] = b
			found = true
		}
		if f, ok := byName[prefix+datasetZip]; ok {
			a.datasetName = f.Name
			a.readDataset(f)
			found = true
		}
		if found {
			a.top = prefix
			break
		}
	}
	// Read now, like the eval files, but a failure only matters to
	// CoherencePrompt: training and trait evaluations do not need the file.
	if f, ok := byName[a.top+promptsFile]; ok {
		a.prompts, a.promptsErr = readEntry(f, maxEvalBytes)
		if a.prompts == nil {
			a.prompts = []byte{} // present, even if unreadable
		}
	}
	if a.datasetName == "" && len(a.evals) == 0 {
		return nil, fmt.Errorf("%s does not look like the persona_vectors repository archive: it has neither %s nor %s*.json; point the location at the repository's .zip archive", loc, top+datasetZip, top+evalDir)
	}
	if a.datasetErr != nil {
		return nil, a.datasetErr
	}
	return a, nil
}

func (a *Archive) readDataset(f *zip.File) {
	b, err := readEntry(f, maxDatasetBytes)
	if err != nil {
		a.datasetErr = fmt.Errorf("read %s from persona_vectors archive %s: %w", f.Name, a.location, err)
		return
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		a.datasetErr = fmt.Errorf("%s inside persona_vectors archive %s is not a valid zip file (%v); use another revision of the archive", f.Name, a.location, err)
		return
	}
	if len(zr.File) > maxEntries {
		a.datasetErr = fmt.Errorf("%s inside persona_vectors archive %s has %d entries, more than %d entries; use another revision of the archive", f.Name, a.location, len(zr.File), maxEntries)
		return
	}
	a.datasetFiles = make(map[string]*zip.File, len(zr.File))
	for _, e := range zr.File {
		a.datasetFiles[e.Name] = e
	}
	a.datasetTop = commonTop(zr.File)
}

// SHA256 is the hex SHA-256 of the outer archive bytes.
func (a *Archive) SHA256() string { return a.sha }

// Location is the URL or path the archive came from.
func (a *Archive) Location() string { return a.location }

// Training returns the raw JSONL training set of a trait at a strength,
// validated with dataset.Parse.
func (a *Archive) Training(trait, strength string) ([]byte, error) {
	rel, err := TrainingPath(trait, strength)
	if err != nil {
		return nil, err
	}
	if a.datasetName == "" {
		return nil, fmt.Errorf("persona_vectors archive %s has no %s, so it has no training data; use the repository's full archive", a.location, a.top+datasetZip)
	}
	var f *zip.File
	for _, name := range dedupe(rel, a.datasetTop+rel) {
		if f = a.datasetFiles[name]; f != nil {
			break
		}
	}
	if f == nil {
		return nil, fmt.Errorf("persona_vectors archive %s: %s has no %s (training data for %s at %s); use a revision of the archive that has it", a.location, a.datasetName, rel, trait, strength)
	}
	b, err := readEntry(f, maxTrainingBytes)
	if err != nil {
		return nil, fmt.Errorf("read %s!/%s from persona_vectors archive %s: %w", a.datasetName, f.Name, a.location, err)
	}
	if _, err := dataset.Parse(a.datasetName+"!/"+f.Name, b); err != nil {
		return nil, fmt.Errorf("upstream training data for %s at %s in %s is malformed: %w; use another revision of the archive", trait, strength, a.location, err)
	}
	return b, nil
}

// Task returns a trait's evaluation task from trait_data_eval.
func (a *Archive) Task(trait string) (sampledata.Task, error) {
	name := a.top + evalDir + trait + ".json"
	b, ok := a.evals[trait]
	if !ok {
		return sampledata.Task{}, fmt.Errorf("persona_vectors archive %s has no %s; traits with an evaluation: %s", a.location, name, strings.Join(a.Traits(), ", "))
	}
	var t sampledata.Task
	if err := json.Unmarshal(b, &t); err != nil {
		return sampledata.Task{}, fmt.Errorf("%s in persona_vectors archive %s is not valid JSON: %w; use another revision of the archive", name, a.location, err)
	}
	if msg := checkTask(t); msg != "" {
		return sampledata.Task{}, fmt.Errorf("%s in persona_vectors archive %s: %s; use another revision of the archive", name, a.location, msg)
	}
	return t, nil
}

// checkTask rejects tasks the evaluation could not run.
func checkTask(t sampledata.Task) string {
	if len(t.Questions) == 0 {
		return `no "questions"`
	}
	for i, q := range t.Questions {
		if strings.TrimSpace(q) == "" {
			return fmt.Sprintf("question %d is empty", i+1)
		}
	}
	for _, ph := range []string{"{question}", "{answer}"} {
		if !strings.Contains(t.EvalPrompt, ph) {
			return fmt.Sprintf(`"eval_prompt" lacks the placeholder %s`, ph)
		}
	}
	return ""
}

// Traits lists the traits that have an evaluation file, sorted.
func (a *Archive) Traits() []string { return sortedKeys(a.evals) }

// commonTop returns "name/" if every entry sits under one folder, else "".
// macOS resource-fork entries are ignored: zips made on a Mac carry them.
func commonTop(files []*zip.File) string {
	top := ""
	for _, f := range files {
		if strings.HasPrefix(f.Name, "__MACOSX/") {
			continue
		}
		first, _, ok := strings.Cut(f.Name, "/")
		if !ok || first == "" || (top != "" && top != first+"/") {
			return ""
		}
		top = first + "/"
	}
	return top
}

// readEntry decompresses one entry of at most limit bytes into memory. The
// header is checked first, so a bomb is refused before a byte is inflated;
// the read is bounded too, and archive/zip fails one that runs past the
// header's size, so a lying header cannot make it read more. A refusal
// says what to do; so does damage.
func readEntry(f *zip.File, limit uint64) ([]byte, error) {
	size, packed := f.UncompressedSize64, f.CompressedSize64
	if size > limit {
		return nil, fmt.Errorf("the entry holds %s, larger than the %s limit; this is not the repository's archive, or it is damaged: download it again", inputfile.Size(size), inputfile.Size(limit))
	}
	if size > ratioFloor && size/max(packed, 1) > maxRatio {
		return nil, fmt.Errorf("the entry expands from %s to %s, a compression ratio above %d that only a zip bomb has; use the repository's archive", inputfile.Size(packed), inputfile.Size(size), maxRatio)
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w; the archive is damaged, download it again", err)
	}
	defer rc.Close()
	// Sized by the header (already bounded), so reading never doubles a buffer.
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	if _, err := io.Copy(buf, io.LimitReader(rc, int64(size)+1)); err != nil {
		return nil, fmt.Errorf("%w; the archive is damaged, download it again", err)
	}
	if uint64(buf.Len()) != size {
		return nil, fmt.Errorf("the entry does not hold the %s its header says; the archive is damaged, download it again", inputfile.Size(size))
	}
	return buf.Bytes(), nil
}

func normalizePin(pin string) (string, error) {
	pin = strings.ToLower(strings.TrimSpace(pin))
	if pin == "" {
		return "", nil
	}
	if b, err := hex.DecodeString(pin); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("persona_vectors archive pin %q is not a SHA-256: want 64 hex digits", pin)
	}
	return pin, nil
}

func isURL(loc string) bool {
	l := strings.ToLower(loc)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// cacheName keys the cache by the full location; the readable suffix helps
// whoever browses the cache directory.
func cacheName(loc string) string {
	sum := sha256.Sum256([]byte(loc))
	base := "archive.zip"
	if u, err := url.Parse(loc); err == nil {
		if b := path.Base(u.Path); b != "." && b != "/" {
			base = b
		}
	}
	base = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, base)
	if len(base) > 64 {
		base = base[len(base)-64:]
	}
	return hex.EncodeToString(sum[:8]) + "-" + base
}

// ctxReader stops a long local read when the context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func dedupe(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
