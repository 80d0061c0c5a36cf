package tinkerserver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
	"github.com/modelorganisms/pvbuild/internal/dataset"
	"github.com/modelorganisms/pvbuild/internal/httpserve"
)

// trainingState is a saved tinker://…/weights/… checkpoint: what the model
// had seen, so that a model loading it continues the same run.
type trainingState struct {
	Path      string            `json:"path"`
	Run       string            `json:"run"`
	BaseModel string            `json:"base_model"`
	LoRARank  int               `json:"lora_rank"`
	Seen      int               `json:"examples_seen"`
	Steps     int               `json:"optim_steps"`
	Examples  []dataset.Example `json:"examples"`
	Counts    []int             `json:"counts"`
	Created   time.Time         `json:"created"`
}

// samplerCheckpoint is a saved tinker://…/sampler_weights/… path and the
// local job that trains its model (none: the base weights).
type samplerCheckpoint struct {
	Path      string    `json:"path"`
	Run       string    `json:"run"`
	BaseModel string    `json:"base_model"`
	Seen      int       `json:"examples_seen"`
	Examples  int       `json:"distinct_examples"`
	Epochs    int       `json:"n_epochs,omitempty"`
	FileID    string    `json:"training_file,omitempty"`
	JobID     string    `json:"job,omitempty"`
	FineTuned string    `json:"fine_tuned_model,omitempty"`
	Created   time.Time `json:"created"`
}

// store keeps checkpoints as JSON files, one per path, named by the path's
// hash (paths hold ':' and '/'), written atomically.
//
//	dir/weights/<hash>.json          trainingState
//	dir/sampler_weights/<hash>.json  samplerCheckpoint
//	dir/sessions                     the last session number
type store struct{ dir string }

func openStore(dir string) (*store, error) {
	for _, sub := range []string{"weights", "sampler_weights"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("tinker server state: %w", err)
		}
	}
	return &store{dir: dir}, nil
}

func (st *store) file(kind, path string) string {
	sum := sha256.Sum256([]byte(path))
	return filepath.Join(st.dir, kind, hex.EncodeToString(sum[:16])+".json")
}

func (st *store) write(kind, path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return atomicfile.Write(st.file(kind, path), b, 0o644)
}

func readAll[T any](dir string) ([]*T, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []*T
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		v := new(T)
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		out = append(out, v)
	}
	return out, nil
}

// loadStore reads what earlier runs of the server saved.
func (s *Server) loadStore() error {
	states, err := readAll[trainingState](filepath.Join(s.store.dir, "weights"))
	if err != nil {
		return fmt.Errorf("tinker server state: %w", err)
	}
	for _, st := range states {
		if _, ok := s.bases[st.BaseModel]; ok {
			s.states[st.Path] = st
		}
	}
	cks, err := readAll[samplerCheckpoint](filepath.Join(s.store.dir, "sampler_weights"))
	if err != nil {
		return fmt.Errorf("tinker server state: %w", err)
	}
	for _, ck := range cks {
		if _, ok := s.bases[ck.BaseModel]; !ok {
			continue
		}
		s.samplerCk[ck.Path] = ck
		if ck.JobID != "" && ck.FileID != "" {
			s.jobsByKey[fmt.Sprintf("%s|%s|%d", ck.Run, "file:"+ck.FileID, ck.Epochs)] = ck.JobID
		}
	}
	b, err := os.ReadFile(filepath.Join(s.store.dir, "sessions"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("tinker server state: %w", err)
	default:
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return fmt.Errorf("tinker server state: sessions: %w", err)
		}
		s.sessionN = n
	}
	return nil
}

func (s *Server) persistState(st *trainingState) error {
	if s.store == nil {
		return nil
	}
	return s.store.write("weights", st.Path, st)
}

// persistSampler writes a copy of ck, taken by the caller under s.mu.
func (s *Server) persistSampler(ck samplerCheckpoint) error {
	if s.store == nil {
		return nil
	}
	return s.store.write("sampler_weights", ck.Path, &ck)
}

// saveSessionCounter keeps session ids unique across restarts, so that a
// new session never reuses the run ids of saved checkpoints.
func (s *Server) saveSessionCounter(n int) error {
	if s.store == nil {
		return nil
	}
	if err := atomicfile.Write(filepath.Join(s.store.dir, "sessions"), []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return fmt.Errorf("tinker server state: %w", err)
	}
	return nil
}

// Counters is what the server has done since it started.
type Counters struct {
	Requests         int64 `json:"requests"` // under /api/v1 and /oai, faults included
	Sessions         int64 `json:"sessions"`
	Heartbeats       int64 `json:"heartbeats"`
	ExpiredSessions  int64 `json:"expired_sessions"`
	Models           int64 `json:"models"`
	ForwardBackward  int64 `json:"forward_backward"` // executed requests (chunks), not resubmissions
	ForwardOnly      int64 `json:"forward_only"`
	Datums           int64 `json:"datums"`   // examples processed by forward(_backward)
	Examples         int64 `json:"examples"` // conversations recovered and counted for training
	OptimSteps       int64 `json:"optim_steps"`
	SavedStates      int64 `json:"saved_states"`
	LoadedStates     int64 `json:"loaded_states"`
	SamplerSaves     int64 `json:"sampler_saves"`
	LocalJobs        int64 `json:"local_jobs"`
	SampleRequests   int64 `json:"sample_requests"`
	Samples          int64 `json:"samples"` // sequences returned
	OpenAIChats      int64 `json:"openai_chats"`
	Polls            int64 `json:"polls"`
	Injected408      int64 `json:"injected_408"`
	InjectedTryAgain int64 `json:"injected_try_again"`
	InjectedMetadata int64 `json:"injected_metadata_only"`
	Injected410      int64 `json:"injected_410"`
	Injected429      int64 `json:"injected_429"`
	Injected500      int64 `json:"injected_500"`
	InjectedDrops    int64 `json:"injected_drops"`
	InjectedLost     int64 `json:"injected_lost_responses"`
}

type counters struct {
	requests, sessions, heartbeats, expiredSessions, models                   atomic.Int64
	forwardBackward, forwardOnly, datums, examples, optimSteps                atomic.Int64
	savedStates, loadedStates, samplerSaves, localJobs                        atomic.Int64
	sampleRequests, samples, openAIChats, polls                               atomic.Int64
	injected408, injectedTryAgain, injectedMetadata, injected410, injected429 atomic.Int64
	injected500, injectedDrops, injectedLost                                  atomic.Int64

	routes httpserve.Outcomes
}

// Requests returns how many /api/v1 and /oai requests each route had, by
// outcome, as the OpenAI-compatible server's Requests does: the route is
// the pattern ("POST /api/v1/forward_backward", "unrouted" for none), the
// outcome the HTTP status answered, "dropped", "lost 200" or "client
// gone". GET /debug/counters has them as requests_by_route.
func (s *Server) Requests() map[string]map[string]int64 { return s.count.routes.Snapshot() }

// Counters returns a snapshot, as GET /debug/counters does.
func (s *Server) Counters() Counters {
	c := &s.count
	return Counters{
		Requests: c.requests.Load(), Sessions: c.sessions.Load(), Heartbeats: c.heartbeats.Load(),
		ExpiredSessions: c.expiredSessions.Load(), Models: c.models.Load(),
		ForwardBackward: c.forwardBackward.Load(), ForwardOnly: c.forwardOnly.Load(), Datums: c.datums.Load(),
		Examples: c.examples.Load(), OptimSteps: c.optimSteps.Load(), SavedStates: c.savedStates.Load(),
		LoadedStates: c.loadedStates.Load(), SamplerSaves: c.samplerSaves.Load(), LocalJobs: c.localJobs.Load(),
		SampleRequests: c.sampleRequests.Load(), Samples: c.samples.Load(), OpenAIChats: c.openAIChats.Load(),
		Polls: c.polls.Load(), Injected408: c.injected408.Load(), InjectedTryAgain: c.injectedTryAgain.Load(),
		InjectedMetadata: c.injectedMetadata.Load(), Injected410: c.injected410.Load(), Injected429: c.injected429.Load(),
		Injected500: c.injected500.Load(), InjectedDrops: c.injectedDrops.Load(), InjectedLost: c.injectedLost.Load(),
	}
}
