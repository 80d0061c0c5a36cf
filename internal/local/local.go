// Package local is the embedded, offline provider: an in-process stand-in for
// a fine-tuning service that really learns from the training file.
//
// Fine-tuning jobs are files under a state directory whose status follows
// from their creation time, so a killed build's jobs survive and a rerun can
// adopt them. Chat has two modes. A prompt that fills a registered judge
// template is scored by a softmax regression trained on that judge's labeled
// answers (the coherence judge also on the question and the answer's form);
// anything else is answered by retrieval: BM25 over the model's
// corpus (the base corpus, plus the training file for a fine-tuned model,
// weighted by how hard it was trained) and sampling among the best matches.
//
// State on disk, every write atomic and durable (atomicfile.Write: temp
// file, synced, renamed, synced; concurrent writes share their syncs). A job
// lost to a power loss would only be trained again, but a record torn by
// one would stop every listing until removed, and shared syncs cost little:
//
//	Dir/files/file-<sha256 prefix>.jsonl  uploaded bytes
//	Dir/files/file-<sha256 prefix>.json   name, size, upload time
//	Dir/jobs/ftjob-<random hex>.json      request, schedule, validation verdict
package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/sampledata"
)

// Errors callers can test with errors.Is; returned wrapped with context.
// Each wraps the provider sentinel that says what it means to a caller.
var (
	ErrModelNotFound = fmt.Errorf("model %w", provider.ErrNotFound)
	ErrJobNotFound   = fmt.Errorf("job %w", provider.ErrNotFound)
	ErrFileNotFound  = fmt.Errorf("file %w", provider.ErrNotFound)
	ErrJobFinished   = fmt.Errorf("job already finished: %w", provider.ErrConflict)
	ErrBadRequest    = provider.ErrInvalid
)

// DefaultJobDuration is a job's simulated wall time when Options leaves it zero.
const DefaultJobDuration = 1500 * time.Millisecond

// Options configure an Engine.
type Options struct {
	Dir         string           // state root; created if missing
	JobDuration time.Duration    // simulated time from job creation to success; default DefaultJobDuration
	Now         func() time.Time // clock; default time.Now
	Base        []dataset.Example
	// LoadBase, when Base is empty, reads the base corpus on the base
	// model's first answer: opening the engine (every `results`, a no-op
	// included) parses nothing it may not need.
	LoadBase func() ([]dataset.Example, error)
	Judges   []Judge
}

// Judge is a rubric the judge model recognises: a prompt template and the
// labeled answers its classifier learns from.
type Judge struct {
	Trait    string
	Template string // judge prompt with {question} and {answer}
	// Examples labeled with Scores[Trait] or Refusal; examples with neither
	// are skipped. Refusals count for every trait, since a refusal is one
	// whatever the rubric, unless the example scores the trait itself: a
	// refusal is still more or less coherent (sampledata.CoherenceTrait).
	Examples []sampledata.Labeled
}

// Engine is the local provider. It is safe for concurrent use.
type Engine struct {
	dir      string
	duration time.Duration
	now      func() time.Time

	baseOnce sync.Once
	loadBase func() ([]dataset.Example, error)
	base     *corpus // nil when the engine has no base corpus
	baseErr  error

	mu       sync.Mutex      // serialises job read-modify-write within this process
	creating map[string]bool // job ids taken by a CreateJob still writing its record; under mu
	// uploadMu serialises uploads: identical data uploaded at once (the
	// replicates of a cell) must make one record, which every upload
	// returns and no later one rewrites.
	uploadMu sync.Mutex

	recMu sync.Mutex
	recs  map[string]cachedRecord // job records by id, as last read

	exMu     sync.Mutex
	examples map[string]parsedFile // training files' examples by file id

	judgeMu sync.RWMutex
	judges  []*judgeModel

	idxMu   sync.Mutex
	indexes map[string]*indexEntry

	listMu  sync.Mutex
	listing *jobListing // the jobs directory's last listing
}

var (
	_ provider.JobAPI     = (*Engine)(nil)
	_ provider.Sampler    = (*Engine)(nil)
	_ provider.StateFiles = (*Engine)(nil)
)

// Open prepares the state directory and returns an engine over it.
func Open(opts Options) (*Engine, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("open local engine: %w: no state directory", ErrBadRequest)
	}
	for _, sub := range []string{filesDir, jobsDir} {
		if err := os.MkdirAll(filepath.Join(opts.Dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("open local engine: %w", err)
		}
	}
	e := &Engine{
		dir:      opts.Dir,
		duration: opts.JobDuration,
		now:      opts.Now,
		indexes:  map[string]*indexEntry{},
		creating: map[string]bool{},
		recs:     map[string]cachedRecord{},
		examples: map[string]parsedFile{},
	}
	if e.duration <= 0 {
		e.duration = DefaultJobDuration
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.loadBase = opts.LoadBase
	if len(opts.Base) > 0 {
		base := opts.Base
		e.loadBase = func() ([]dataset.Example, error) { return base, nil }
	}
	for _, j := range opts.Judges {
		if err := e.AddJudge(j); err != nil {
			return nil, fmt.Errorf("open local engine: %w", err)
		}
	}
	return e, nil
}

// Default opens an engine on dir with the embedded sample data: its base
// corpus, one judge per sample trait and the coherence judge.
func Default(dir string) (*Engine, error) {
	opts, err := DefaultOptions(dir)
	if err != nil {
		return nil, err
	}
	return Open(opts)
}

// DefaultOptions are Default's options, to adjust before Open.
func DefaultOptions(dir string) (Options, error) {
	labeled, err := sampledata.JudgeExamples()
	if err != nil {
		return Options{}, fmt.Errorf("local engine judge examples: %w", err)
	}
	opts := Options{Dir: dir, LoadBase: sampledata.BaseCorpus}
	for _, trait := range sampledata.Traits {
		task, err := sampledata.EvalTask(trait)
		if err != nil {
			return Options{}, fmt.Errorf("local engine judge: %w", err)
		}
		opts.Judges = append(opts.Judges, Judge{Trait: trait, Template: task.EvalPrompt, Examples: labeled})
	}
	// Every answer is judged for coherence too, so a served engine knows
	// that rubric as well.
	opts.Judges = append(opts.Judges, Judge{Trait: sampledata.CoherenceTrait, Template: sampledata.CoherencePrompt(), Examples: labeled})
	return opts, nil
}

// AddJudge registers a rubric. A judge with the same template as one already
// registered replaces it. Its classifier is trained on first use.
func (e *Engine) AddJudge(j Judge) error {
	jm, err := newJudgeModel(j)
	if err != nil {
		return fmt.Errorf("add judge %q: %w", j.Trait, err)
	}
	e.judgeMu.Lock()
	defer e.judgeMu.Unlock()
	for i, old := range e.judges {
		if old.template == j.Template {
			e.judges[i] = jm
			return nil
		}
	}
	e.judges = append(e.judges, jm)
	return nil
}

// Submissions counts the jobs ever created in the state directory, by any
// engine: the build uses it to prove a job was never submitted twice.
func (e *Engine) Submissions() (int, error) {
	names, err := e.jobFiles()
	if err != nil {
		return 0, fmt.Errorf("count submissions: %w", err)
	}
	return len(names), nil
}

// validID guards paths built from caller-supplied ids.
func validID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// TrainJudges trains every registered judge's classifier now, in parallel,
// rather than inside the first judgement: a server calls it at start so
// that no request waits on training.
func (e *Engine) TrainJudges() {
	e.judgeMu.RLock()
	judges := append([]*judgeModel(nil), e.judges...)
	e.judgeMu.RUnlock()
	var wg sync.WaitGroup
	for _, jm := range judges {
		wg.Go(func() { jm.classifier() })
	}
	wg.Wait()
}
