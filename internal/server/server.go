// Package server serves a provider (the embedded local engine) as an
// OpenAI-compatible HTTP API, so that OpenAI's own clients, and this
// project's OpenAI provider, can train and query it unmodified.
//
// Routes, all under /v1, in OpenAI's wire format (field names, status values,
// unix-second timestamps, {"error": {...}} bodies):
//
//	POST /v1/files                          multipart upload, purpose fine-tune
//	GET  /v1/files                          list; purpose, order, limit, after
//	GET  /v1/files/{id}
//	POST /v1/fine_tuning/jobs
//	GET  /v1/fine_tuning/jobs               list; metadata[k]=v, metadata=null, after, limit
//	GET  /v1/fine_tuning/jobs/{id}
//	POST /v1/fine_tuning/jobs/{id}/cancel
//	GET  /v1/fine_tuning/jobs/{id}/events   synthesised from the job's states
//	POST /v1/chat/completions               with logprobs and top_logprobs
//	GET  /v1/models, GET /v1/models/{id}    base models and succeeded fine-tunes
//
// GET /debug/counters reports what the server did (job creations, chat
// completions, injected faults, requests by route and outcome) as JSON, so
// tests can prove, say, that a job was never created twice. Faults injects
// rate limits, server errors, latency, dropped connections and failing
// jobs, deterministically from a seed; faults.Switch takes the server off
// its address and back.
//
// The provider knows nothing of file listings, so the server remembers the
// files uploaded through it for its lifetime; the provider still resolves
// files uploaded earlier when a job names them.
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelorganisms/pvbuild/internal/faults"
	"github.com/modelorganisms/pvbuild/internal/httpserve"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// DefaultBaseModels are the base models served when Options.BaseModels is
// nil: the snapshots OpenAI still fine-tunes (gpt-4.1-nano and other legacy
// snapshots were shut down on 2026-10-23, so asking for them gets OpenAI's
// 404) and their aliases.
var DefaultBaseModels = []string{
	"gpt-4.1-2025-04-14",
	"gpt-4.1-mini-2025-04-14",
	"gpt-4o-2024-08-06",
	"gpt-4o-mini-2024-07-18",
	"gpt-4.1",
	"gpt-4.1-mini",
	"gpt-4o",
	"gpt-4o-mini",
}

// DefaultOrganization owns the jobs and fine-tuned models the server reports.
const DefaultOrganization = "org-local"

// Limits on request bodies: OpenAI's per-file cap for uploads, and far more
// than any chat or job request needs for JSON.
const (
	maxUploadBytes = 512 << 20
	maxJSONBytes   = 32 << 20
)

// shutdownGrace is how long ListenAndServe waits for requests in flight.
const shutdownGrace = 10 * time.Second

// Engine is what the server serves: a job service that also answers chat.
type Engine interface {
	provider.JobAPI
	provider.Sampler
}

// Options configure a Server. The zero value serves DefaultBaseModels with no
// authentication and no faults.
type Options struct {
	// APIKey, if set, is the bearer token every request must carry.
	APIKey string
	// BaseModels are the models served besides fine-tuned ones; nil means
	// DefaultBaseModels. Chat with, or fine-tuning of, another base model is
	// refused as OpenAI refuses an unknown model.
	BaseModels []string
	// Organization is the organization_id of jobs and owned_by of
	// fine-tuned models; default DefaultOrganization.
	Organization string
	// Faults to inject from the start; see SetFaults. New panics if they
	// are invalid: check user-supplied ones with Faults.Validate first.
	Faults Faults
	// Log receives a line per job creation and per internal error; nil
	// means log.Default().
	Log *log.Logger
}

// Server is an http.Handler serving a provider as OpenAI's API. It is safe
// for concurrent use.
type Server struct {
	p      Engine
	apiKey string
	org    string
	base   []string
	isBase map[string]bool
	log    *log.Logger
	mux    *http.ServeMux

	faults  faultState
	count   counters
	reqSeq  atomic.Uint64
	chatSeq atomic.Uint64

	mu     sync.Mutex
	files  map[string]*fileEntry
	nfiles int
	// doomed holds the injected failure of each job chosen to fail, decided
	// at creation so that changing Faults later does not rewrite history.
	doomed map[string]*doom
	// hidden are the fine-tuned models of doomed jobs: the provider trained
	// them, but the job is reported failed, so they must not serve.
	hidden map[string]bool
	// deleted are the fine-tuned models deleted through DELETE /v1/models.
	deleted map[string]bool
	// seen is when the server first reported each job in each state: the
	// provider does not say when transitions happened, and events need it.
	seen map[string]map[string]time.Time
}

// doom is the injected failure of a job; settled once the provider has
// finished the job, so that it need not be looked up again.
type doom struct {
	err     provider.JobError
	settled bool
}

// New returns a Server over p.
func New(p Engine, opts Options) *Server {
	s := &Server{
		p:       p,
		apiKey:  opts.APIKey,
		org:     opts.Organization,
		base:    opts.BaseModels,
		log:     opts.Log,
		mux:     http.NewServeMux(),
		isBase:  map[string]bool{},
		files:   map[string]*fileEntry{},
		doomed:  map[string]*doom{},
		hidden:  map[string]bool{},
		deleted: map[string]bool{},
		seen:    map[string]map[string]time.Time{},
	}
	if s.org == "" {
		s.org = DefaultOrganization
	}
	if s.base == nil {
		s.base = DefaultBaseModels
	}
	for _, m := range s.base {
		s.isBase[m] = true
	}
	if s.log == nil {
		s.log = log.Default()
	}
	if err := s.SetFaults(opts.Faults); err != nil {
		panic(fmt.Sprintf("server.New: %v", err))
	}
	s.route("POST /v1/files", s.uploadFile)
	s.route("GET /v1/files", s.listFiles)
	s.route("GET /v1/files/{id}", s.getFile)
	s.route("POST /v1/fine_tuning/jobs", s.createJob)
	s.route("GET /v1/fine_tuning/jobs", s.listJobs)
	s.route("GET /v1/fine_tuning/jobs/{id}", s.getJob)
	s.route("POST /v1/fine_tuning/jobs/{id}/cancel", s.cancelJob)
	s.route("GET /v1/fine_tuning/jobs/{id}/events", s.jobEvents)
	s.route("POST /v1/chat/completions", s.chat)
	s.route("GET /v1/models", s.listModels)
	s.route("GET /v1/models/{id}", s.getModel)
	s.route("DELETE /v1/models/{id}", s.deleteModel)
	s.mux.HandleFunc("GET /debug/counters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Counters
			RequestsByRoute map[string]map[string]int64 `json:"requests_by_route"`
		}{s.Counters(), s.Requests()})
	})
	return s
}

// route registers a handler that reports failures by returning them.
func (s *Server) route(pattern string, h func(http.ResponseWriter, *http.Request) error) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// ServeHTTP authenticates, injects faults, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Clients log this id with errors, as they do OpenAI's.
	w.Header().Set("X-Request-Id", fmt.Sprintf("req_%016x", s.reqSeq.Add(1)))
	if strings.HasPrefix(r.URL.Path, "/debug/") {
		if err := s.authorize(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.dispatch(w, r)
		return
	}
	s.count.requests.Add(1)
	start := time.Now()
	defer func() { s.count.requestNanos.Add(int64(time.Since(start))) }()
	rec := s.count.routes.Track(w, httpserve.Route(s.mux, r))
	defer rec.Done()
	f := s.drawFault()
	if f.latency > 0 && f.kind == faults.None && isChat(r) && s.authorize(r) == nil {
		// A provider's latency includes its work: the answer is made at
		// once and held until the latency has passed. Work added after
		// the latency instead would come in waves (the calls a client
		// sent together return together and queue for the CPU) and
		// count against the client.
		held := newHeldResponse()
		s.dispatch(held, r)
		if !wait(r.Context(), f.latency-time.Since(start)) {
			return
		}
		held.sendTo(rec)
		return
	}
	if f.latency > 0 && !wait(r.Context(), f.latency) {
		return
	}
	if err := s.authorize(r); err != nil {
		s.writeError(rec, r, err)
		return
	}
	switch f.kind {
	case faults.RateLimit:
		s.count.rateLimited.Add(1)
		faults.SetRetryAfter(rec.Header(), f.retryAfter)
		s.writeError(rec, r, &apiError{status: http.StatusTooManyRequests, typ: "requests", code: "rate_limit_exceeded",
			msg: fmt.Sprintf("Rate limit reached (injected fault). Please try again in %s.", f.retryAfter)})
		return
	case faults.ServerError:
		s.count.serverErrors.Add(1)
		s.writeError(rec, r, &apiError{status: http.StatusInternalServerError, typ: "server_error",
			msg: "The server had an error while processing your request (injected fault)."})
		return
	case faults.Drop:
		s.count.dropped.Add(1)
		rec.Count(httpserve.Dropped)
		httpserve.Drop(w, r, maxUploadBytes)
		return
	case faults.Lost:
		s.count.lostResponses.Add(1)
		// The request takes full effect; only its answer is lost.
		lost := &httpserve.Recorder{ResponseWriter: httpserve.Discard()}
		s.dispatch(lost, r)
		rec.Count(httpserve.Lost + lost.Outcome())
		httpserve.Drop(w, r, maxUploadBytes)
		return
	}
	s.dispatch(rec, r)
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.writeError(w, r, &apiError{status: http.StatusNotFound, typ: "invalid_request_error",
			msg: fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path)})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorize checks the bearer token, answering as OpenAI does.
func (s *Server) authorize(r *http.Request) error {
	if s.apiKey == "" {
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || got == "" {
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error",
			msg: "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."}
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(s.apiKey)) != 1 {
		return &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "invalid_api_key",
			msg: "Incorrect API key provided: " + redactKey(got) + "."}
	}
	return nil
}

// redactKey shows only the ends of a key, as OpenAI's message does.
func redactKey(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

// ListenAndServe serves on addr until ctx is done, then shuts down
// gracefully: requests in flight get shutdownGrace to finish.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve OpenAI-compatible API: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is ListenAndServe on a listener the caller opened, e.g. on port 0 to
// learn the address before serving. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Printf("serving the OpenAI-compatible API at http://%s/v1", ln.Addr())
	return httpserve.Serve(ctx, ln, s, s.log, "OpenAI-compatible API", shutdownGrace)
}

// Counters is what the server has done since it started.
type Counters struct {
	Requests         int64 `json:"requests"` // under /v1, faults included
	FileUploads      int64 `json:"file_uploads"`
	JobCreations     int64 `json:"job_creations"`
	JobCancellations int64 `json:"job_cancellations"`
	ChatCompletions  int64 `json:"chat_completions"`
	Injected429      int64 `json:"injected_429"`
	Injected500      int64 `json:"injected_500"`
	InjectedDrops    int64 `json:"injected_drops"`
	InjectedLost     int64 `json:"injected_lost_responses"`
	InjectedJobFails int64 `json:"injected_job_failures"`
	// RequestNanos is the time /v1 requests spent in the server, latency
	// included, summed: over a span of wall time, the average number of
	// requests the server had in hand.
	RequestNanos int64 `json:"request_nanos"`
}

type counters struct {
	requests, fileUploads, jobCreations, jobCancellations, chatCompletions atomic.Int64
	rateLimited, serverErrors, dropped, lostResponses, jobFailures         atomic.Int64
	requestNanos                                                           atomic.Int64

	routes httpserve.Outcomes
}

// Requests returns how many /v1 requests each route had, by outcome: the
// route is the pattern ("POST /v1/fine_tuning/jobs", "unrouted" for none),
// the outcome the HTTP status answered ("200", "429"), "dropped" for a
// connection closed unanswered, "lost 200" for an answer lost after the
// work was done, "client gone" when the client left first. The counts
// add up to Counters().Requests; GET /debug/counters has them as
// requests_by_route. The map is a copy.
func (s *Server) Requests() map[string]map[string]int64 { return s.count.routes.Snapshot() }

// Counters returns a snapshot of the counters, as GET /debug/counters does.
func (s *Server) Counters() Counters {
	c := &s.count
	return Counters{
		Requests:         c.requests.Load(),
		FileUploads:      c.fileUploads.Load(),
		JobCreations:     c.jobCreations.Load(),
		JobCancellations: c.jobCancellations.Load(),
		ChatCompletions:  c.chatCompletions.Load(),
		RequestNanos:     c.requestNanos.Load(),
		Injected429:      c.rateLimited.Load(),
		Injected500:      c.serverErrors.Load(),
		InjectedDrops:    c.dropped.Load(),
		InjectedLost:     c.lostResponses.Load(),
		InjectedJobFails: c.jobFailures.Load(),
	}
}

// apiError is an error answer in OpenAI's envelope. Empty code and param
// are sent as null.
type apiError struct {
	status         int
	typ, code, msg string
	param          string
	cause          error // logged for 5xx, never sent
}

func (e *apiError) Error() string { return fmt.Sprintf("HTTP %d %s: %s", e.status, e.typ, e.msg) }

func (e *apiError) Unwrap() error { return e.cause }

func badRequest(param, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: "invalid_request_error", param: param, msg: fmt.Sprintf(format, args...)}
}

func notFound(param, code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, typ: "invalid_request_error", param: param, code: code, msg: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Error errorObject `json:"error"`
}

type errorObject struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// writeError answers with err: an *apiError as is, anything else as a 500
// whose cause is logged. Handlers return provider errors unwrapped, as the
// provider already names the operation and the object.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client is gone; nobody would read the answer
	}
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{status: http.StatusInternalServerError, typ: "server_error",
			msg: "The server had an error while processing your request: " + err.Error(), cause: err}
	}
	if e.status >= 500 && e.cause != nil {
		s.log.Printf("%s %s: %v", r.Method, r.URL.Path, e.cause)
	}
	writeJSON(w, e.status, errorBody{Error: errorObject{Message: e.msg, Type: e.typ, Param: nullable(e.param), Code: nullable(e.code)}})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Our own types always marshal; a failure here is a bug.
		http.Error(w, `{"error":{"message":"encode response: `+err.Error()+`","type":"server_error","param":null,"code":null}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// decodeJSON reads a JSON request body into v, refusing what OpenAI refuses
// with the parameter at fault where it can tell.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxJSONBytes)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var typeErr *json.UnmarshalTypeError
		var maxErr *http.MaxBytesError
		switch {
		case errors.As(err, &maxErr):
			return &apiError{status: http.StatusRequestEntityTooLarge, typ: "invalid_request_error",
				msg: fmt.Sprintf("Request body larger than %d bytes.", maxJSONBytes)}
		case errors.As(err, &typeErr):
			return badRequest(typeErr.Field, "Invalid type for '%s': expected %s, but got a JSON %s.", typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return badRequest("", "We could not parse the JSON body of your request: %v. The OpenAI API expects a JSON payload.", err)
	}
	return nil
}
