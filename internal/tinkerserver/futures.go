package tinkerserver

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// outcome is a finished request: a JSON result, a protobuf result (with its
// legacy JSON form for clients that do not ask for protobuf), or a failure
// with its category ("user", "server").
type outcome struct {
	json     any
	proto    []byte
	legacy   any
	errMsg   string
	category string
}

func failed(category, format string, args ...any) *outcome {
	return &outcome{errMsg: fmt.Sprintf(format, args...), category: category}
}

// pollFunc reports a request's outcome once it has one.
type pollFunc func() (*outcome, bool)

func done(o *outcome) pollFunc { return func() (*outcome, bool) { return o, true } }

// future is one request id the client polls.
type future struct {
	id      string
	reqType string
	mu      sync.Mutex // serialises polls, which may run engine work
	poll    pollFunc
	out     *outcome
	left408 int
	metaled bool
	// mayExpire: the future may still be answered 410. Only a first poll
	// may be, and never that of a resubmission (so an injected 410 cannot
	// chain past the client's resubmission limit).
	mayExpire bool
}

var futureSeq atomic.Uint64

// newFuture registers a future. The oldest futures are forgotten past
// maxFutures; polling one of them answers 410, as an expired promise.
func (s *Server) newFuture(reqType string, poll pollFunc) *future {
	return s.addFuture(reqType, poll, false)
}

// addFuture is newFuture for a request that may be a resubmission.
func (s *Server) addFuture(reqType string, poll pollFunc, repeat bool) *future {
	faults, _ := s.currentFaults()
	f := &future{
		id:        fmt.Sprintf("req-%08d-%s", futureSeq.Add(1), randomHex(4)),
		reqType:   reqType,
		poll:      poll,
		left408:   faults.Pending408,
		mayExpire: !repeat,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.futures[f.id] = f
	s.futureOrder = append(s.futureOrder, f.id)
	if len(s.futureOrder) > maxFutures {
		old := s.futureOrder[0]
		s.futureOrder = s.futureOrder[1:]
		if _, ok := s.futures[old]; ok {
			delete(s.futures, old)
			if len(s.expired) >= maxFutures {
				clear(s.expired) // bounded; a very old id then answers 404
			}
			s.expired[old] = true
		}
	}
	return f
}

// writeFuture answers a submission with its future.
func writeFuture(w http.ResponseWriter, f *future, modelID string) {
	body := map[string]string{"request_id": f.id}
	if modelID != "" {
		body["model_id"] = modelID
	}
	writeJSON(w, http.StatusOK, body)
}

type retrieveBody struct {
	RequestID         string `json:"request_id"`
	AllowMetadataOnly bool   `json:"allow_metadata_only"`
}

func (s *Server) retrieveFuture(w http.ResponseWriter, r *http.Request) error {
	var body retrieveBody
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	if body.RequestID == "" {
		return badRequest("request_id is required")
	}
	s.count.polls.Add(1)
	s.mu.Lock()
	f := s.futures[body.RequestID]
	wasExpired := s.expired[body.RequestID]
	s.mu.Unlock()
	if f == nil {
		if wasExpired {
			return &httpError{status: http.StatusGone, msg: fmt.Sprintf("Promise for request %s expired; resubmit the request", body.RequestID)}
		}
		return notFound("Request %s not found", body.RequestID)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	tryAgain := func(state, reason string) {
		writeJSON(w, http.StatusOK, map[string]string{"type": "try_again", "request_id": f.id, "queue_state": state, "queue_state_reason": reason})
	}
	if f.left408 > 0 {
		f.left408--
		s.count.injected408.Add(1)
		writeJSON(w, http.StatusRequestTimeout, map[string]string{"type": "try_again", "request_id": f.id,
			"queue_state": "paused_capacity", "queue_state_reason": "injected fault: request still queued"})
		return nil
	}
	faults, dice := s.currentFaults()
	goneRate := faults.GoneRate
	if !f.mayExpire {
		goneRate = 0
	}
	f.mayExpire = false
	switch dice.Pick(faults.TryAgainRate, goneRate) {
	case 0:
		s.count.injectedTryAgain.Add(1)
		tryAgain("active", "injected fault")
		return nil
	case 1:
		s.count.injected410.Add(1)
		s.mu.Lock()
		delete(s.futures, f.id)
		s.expired[f.id] = true
		s.mu.Unlock()
		return &httpError{status: http.StatusGone, msg: fmt.Sprintf("Promise for request %s expired (injected fault); resubmit the request", f.id)}
	}
	if f.out == nil {
		out, ok := s.waitPoll(r, f)
		if !ok {
			tryAgain("active", "")
			return nil
		}
		f.out = out
	}
	out := f.out
	if faults.MetadataFirst && body.AllowMetadataOnly && !f.metaled && out.errMsg == "" {
		f.metaled = true
		s.count.injectedMetadata.Add(1)
		writeJSON(w, http.StatusOK, map[string]any{"status": "complete_metadata", "response_payload_size": len(out.proto) + 64})
		return nil
	}
	switch {
	case out.errMsg != "":
		writeJSON(w, http.StatusOK, map[string]string{"error": out.errMsg, "category": out.category})
	case out.proto != nil && strings.Contains(r.Header.Get("Accept"), "application/x-protobuf"):
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
		w.Write(out.proto)
	case out.proto != nil:
		writeJSON(w, http.StatusOK, out.legacy)
	default:
		writeJSON(w, http.StatusOK, out.json)
	}
	return nil
}

// pollEvery is how often a held retrieve_future looks again.
const pollEvery = 5 * time.Millisecond

// waitPoll polls f, holding the request up to Options.PollWait while the
// result is pending, as Tinker's long poll does: the client, which re-polls
// a try_again at once, then does not spin. Callers hold f.mu.
func (s *Server) waitPoll(r *http.Request, f *future) (*outcome, bool) {
	deadline := time.Now().Add(s.opts.PollWait)
	for {
		if out, ok := f.poll(); ok {
			return out, true
		}
		if s.opts.PollWait <= 0 || !time.Now().Before(deadline) {
			return nil, false
		}
		t := time.NewTimer(pollEvery)
		select {
		case <-r.Context().Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
	}
}
