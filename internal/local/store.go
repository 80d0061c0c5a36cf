package local

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

const (
	filesDir = "files"
	jobsDir  = "jobs"
)

// fileMeta is what the engine remembers of an upload beside its bytes.
type fileMeta struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Bytes     int64     `json:"bytes"`
	CreatedAt time.Time `json:"created_at"`
}

// jobRecord is a job as stored. The status it holds is the last one written
// (validating_files, or cancelled); the live status is derived from the
// schedule, which is fixed at creation so reopening with other Options does
// not rewrite history.
type jobRecord struct {
	provider.Job
	Duration     time.Duration      `json:"duration_ns"`
	PlannedModel string             `json:"planned_model"`
	Invalid      *provider.JobError `json:"validation_error,omitempty"`
}

func (e *Engine) filePath(id, ext string) string {
	return filepath.Join(e.dir, filesDir, id+ext)
}

func (e *Engine) jobPath(id string) string {
	return filepath.Join(e.dir, jobsDir, id+".json")
}

func (e *Engine) readFileMeta(id string) (fileMeta, error) {
	var m fileMeta
	if !validID(id, "file-") {
		return m, fmt.Errorf("file %q: %w", id, ErrFileNotFound)
	}
	b, err := os.ReadFile(e.filePath(id, ".json"))
	if os.IsNotExist(err) {
		return m, fmt.Errorf("file %q: %w", id, ErrFileNotFound)
	}
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("file %s metadata: %w", id, err)
	}
	return m, nil
}

func (e *Engine) readJob(id string) (jobRecord, error) {
	var r jobRecord
	if !validID(id, "ftjob-") {
		return r, fmt.Errorf("job %q: %w", id, ErrJobNotFound)
	}
	path := e.jobPath(id)
	// The engine replaces a record only by renaming a new file over it, so
	// a file that is still the one last decoded (same inode, size and
	// modification time) holds the same record: listing jobs then costs a
	// stat per job, not a read and a decode. Only an edit in place within
	// the clock tick of the last write would go unseen.
	fi, err := os.Lstat(path)
	if os.IsNotExist(err) {
		e.recMu.Lock()
		delete(e.recs, id)
		e.recMu.Unlock()
		return r, fmt.Errorf("job %q: %w", id, ErrJobNotFound)
	}
	if err != nil {
		return r, err
	}
	e.recMu.Lock()
	c, ok := e.recs[id]
	e.recMu.Unlock()
	if ok && sameFile(c.fi, fi) {
		return c.rec, nil
	}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return r, fmt.Errorf("job %q: %w", id, ErrJobNotFound)
	}
	if err != nil {
		return r, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return r, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("job %s record: %w", id, err)
	}
	e.recMu.Lock()
	e.recs[id] = cachedRecord{rec: r, fi: fi}
	e.recMu.Unlock()
	return r, nil
}

// cachedRecord is a job record as decoded from the file fi describes. Its
// maps are shared by every reader, who must not change them.
type cachedRecord struct {
	rec jobRecord
	fi  os.FileInfo
}

func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

func (e *Engine) writeJob(r jobRecord) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(e.jobPath(r.ID), b, 0o644)
}

// jobFiles lists the job ids on disk, skipping temporary files of writes
// that a crash interrupted. A listing is kept while the directory's
// modification time is the one it had: a sweep's evaluations look up a
// thousand models among a thousand jobs, and would otherwise read the
// directory once each.
func (e *Engine) jobFiles() ([]string, error) {
	dir := filepath.Join(e.dir, jobsDir)
	before, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	e.listMu.Lock()
	l := e.listing
	e.listMu.Unlock()
	if l != nil && os.SameFile(l.dir, before) && l.dir.ModTime().Equal(before.ModTime()) {
		return l.ids, nil
	}
	// The wall clock, not the engine's: it is compared with the file
	// system's times.
	taken := time.Now()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, ent := range ents {
		id, ok := strings.CutSuffix(ent.Name(), ".json")
		if ok && !ent.IsDir() && validID(id, "ftjob-") {
			ids = append(ids, id)
		}
	}
	// Kept only when the directory last changed well before the listing
	// began: a change within the file system's timestamp granularity of
	// it could leave the time as it was.
	var keep *jobListing
	if taken.Sub(before.ModTime()) > listingMargin {
		keep = &jobListing{dir: before, ids: ids}
	}
	e.listMu.Lock()
	e.listing = keep
	e.listMu.Unlock()
	return ids, nil
}

// listingMargin is how long before a listing the directory must have
// last changed for the listing to be kept: far above the timestamp
// granularity of Linux file systems (a clock tick, a few milliseconds).
const listingMargin = 100 * time.Millisecond

// jobListing is the job ids a listing of the jobs directory found, and
// the directory as it was just before. Its ids are shared by every
// caller, who must not change them.
type jobListing struct {
	dir os.FileInfo
	ids []string
}
