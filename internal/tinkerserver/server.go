// Package tinkerserver serves the embedded local engine as a loopback
// Tinker deployment, so that the project's Tinker client (package tinker)
// can train, sample and judge offline, against real HTTP.
//
// The engine has no neural network. Training recovers the conversations
// behind the token data (forward_backward datums decode back to chats through
// the tokenizer and the renderer's markers, and the loss weights say which
// assistant turns are trained), counts how often each was seen, and
// save_weights_for_sampler turns those counts into a local fine-tuning job
// whose epochs are the examples seen per distinct example. Sampling decodes
// the prompt back into a conversation and asks the engine's Chat, then
// encodes the answer; top-k prompt logprobs carry the local judge's
// distribution over its first answer token.
//
// Routes (JSON unless noted; errors are FastAPI's {"detail": "..."}):
//
//	POST /api/v1/client/config, /client/dynamic_config, /auth/token
//	POST /api/v1/create_session, /session_heartbeat
//	POST /api/v1/create_model, /get_info, /unload_model, /weights_info
//	POST /api/v1/forward_backward        protobuf ForwardBackwardRequest
//	POST /api/v1/optim_step, /save_weights, /load_weights, /save_weights_for_sampler
//	POST /api/v1/create_sampling_session, /asample
//	POST /api/v1/retrieve_future         protobuf results when Accept asks
//	GET  /api/v1/healthz, /get_server_capabilities
//	POST /oai/api/v1/chat/completions    OpenAI-compatible, tinker:// models
//	GET  /hf/{owner}/{name}/resolve/main/tokenizer.json   (no auth)
//	GET  /debug/counters
package tinkerserver

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelorganisms/pvbuild/internal/chatrender"
	"github.com/modelorganisms/pvbuild/internal/config"
	"github.com/modelorganisms/pvbuild/internal/httpserve"
	"github.com/modelorganisms/pvbuild/internal/local"
	"github.com/modelorganisms/pvbuild/internal/tokenizer"
)

// DefaultBaseModel is the one base model served when Options.BaseModels is
// nil.
const DefaultBaseModel = "Qwen/Qwen3-8B"

// DefaultSessionTTL is how long a session lives without a heartbeat when
// Options.SessionTTL is zero. The SDK beats every 10 s and warns after 120 s
// without success, so five minutes is generous.
const DefaultSessionTTL = 5 * time.Minute

// DefaultPollWait is Options.PollWait's default: long enough that a client
// waiting on a local job polls a few times a second, short against the
// client's 45 s poll timeout.
const DefaultPollWait = time.Second

// Limits on request bodies and on what one request may ask for.
const (
	maxJSONBytes  = 32 << 20
	maxProtoBytes = 256 << 20
	maxSamples    = 128
	maxTopK       = 20
	maxFutures    = 1 << 16
	shutdownGrace = 10 * time.Second
)

// BaseModel is one servable base model.
type BaseModel struct {
	Name string // e.g. "Qwen/Qwen3-8B"
	// Renderer is the chatrender name whose markers the server reads:
	// qwen3, qwen3_disable_thinking, qwen3_instruct or llama3.
	Renderer string
	// TokenizerJSON is the model's tokenizer.json; nil means
	// OfflineTokenizer() (Qwen renderers only).
	TokenizerJSON []byte
	// TokenizerID is what get_info reports and /hf serves TokenizerJSON
	// under; default OfflineTokenizerID for the offline tokenizer, else Name.
	TokenizerID string
	// MaxContext is reported by get_server_capabilities; default 32768.
	MaxContext int
}

// Options configure a Server. The zero value serves DefaultBaseModel with
// the offline tokenizer, no authentication and no faults.
type Options struct {
	// APIKey, if set, must arrive in X-API-Key (or as an OpenAI bearer
	// token on /oai); with JWTAuth, a JWT from /auth/token instead.
	APIKey string
	// JWTAuth turns on pjwt_auth_enabled: /api/v1/auth/token exchanges
	// the API key for a JWT valid JWTTTL (default 1 h), which every other
	// route then requires.
	JWTAuth bool
	JWTTTL  time.Duration
	// BaseModels served; nil means one DefaultBaseModel rendered as
	// qwen3_disable_thinking.
	BaseModels []BaseModel
	// EngineBaseModel is the engine model fine-tunes start from and base
	// models answer as; default config.DefaultBaseModel.
	EngineBaseModel string
	// StateDir, if set, keeps checkpoints, sampler paths and the session
	// counter there, so that they survive a restart.
	StateDir string
	// Now is the clock of sessions, JWTs and futures; default time.Now.
	// (Jobs run on the engine's own clock.)
	Now func() time.Time
	// PollWait is how long retrieve_future holds a pending request before
	// answering try_again (the long poll); 0 means DefaultPollWait,
	// negative answers at once.
	PollWait time.Duration
	// SessionTTL is how long a session lives without a heartbeat;
	// 0 means DefaultSessionTTL, negative means forever.
	SessionTTL time.Duration
	// FwdbwdMaxChunkLen and FwdbwdMaxChunkBytes are announced by
	// /client/config; 0 means the SDK defaults (1024, 5 000 000).
	FwdbwdMaxChunkLen   int
	FwdbwdMaxChunkBytes int
	// Faults to inject; see Faults. Open refuses invalid ones.
	Faults Faults
	// Log receives a line per local job and per internal error; nil means
	// log.Default().
	Log *log.Logger
}

// base is a BaseModel ready to use.
type base struct {
	BaseModel
	tok    *tokenizer.Tokenizer
	format chatFormat
	stop   int // end-of-turn token
}

// Server is an http.Handler speaking Tinker's API over a local engine. It is
// safe for concurrent use.
type Server struct {
	eng        *local.Engine
	opts       Options
	apiKey     string
	jwtKey     []byte
	now        func() time.Time
	engineBase string
	bases      map[string]*base
	baseOrder  []string
	byTokID    map[string]*base
	log        *log.Logger
	mux        *http.ServeMux
	store      *store

	faults faultState
	count  counters
	reqSeq atomic.Uint64

	mu          sync.Mutex
	sessionN    int
	sessions    map[string]*session
	models      map[string]*model
	samplers    map[string]*sampler
	futures     map[string]*future
	futureOrder []string
	expired     map[string]bool           // futures dropped (410) or forgotten
	states      map[string]*trainingState // by tinker://…/weights/… path
	samplerCk   map[string]*samplerCheckpoint
	jobsByKey   map[string]string // run + file + epochs → local job id
}

// New is Open for options known to be valid: it panics on invalid ones (a
// tokenizer that does not parse, bad fault rates).
func New(eng *local.Engine, opts Options) *Server {
	s, err := Open(eng, opts)
	if err != nil {
		panic(fmt.Sprintf("tinkerserver.New: %v", err))
	}
	return s
}

// Open checks the options and returns a Server over eng.
func Open(eng *local.Engine, opts Options) (*Server, error) {
	if eng == nil {
		return nil, errors.New("tinker server: no engine")
	}
	s := &Server{
		eng:        eng,
		opts:       opts,
		apiKey:     opts.APIKey,
		now:        opts.Now,
		engineBase: opts.EngineBaseModel,
		bases:      map[string]*base{},
		byTokID:    map[string]*base{},
		log:        opts.Log,
		mux:        http.NewServeMux(),
		sessions:   map[string]*session{},
		models:     map[string]*model{},
		samplers:   map[string]*sampler{},
		futures:    map[string]*future{},
		expired:    map[string]bool{},
		states:     map[string]*trainingState{},
		samplerCk:  map[string]*samplerCheckpoint{},
		jobsByKey:  map[string]string{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.engineBase == "" {
		s.engineBase = config.DefaultBaseModel
	}
	if s.log == nil {
		s.log = log.Default()
	}
	if s.opts.JWTTTL <= 0 {
		s.opts.JWTTTL = time.Hour
	}
	if s.opts.PollWait == 0 {
		s.opts.PollWait = DefaultPollWait
	}
	if s.opts.SessionTTL == 0 {
		s.opts.SessionTTL = DefaultSessionTTL
	}
	s.jwtKey = make([]byte, 32)
	if _, err := rand.Read(s.jwtKey); err != nil {
		return nil, fmt.Errorf("tinker server: JWT key: %w", err)
	}
	bases := opts.BaseModels
	if bases == nil {
		bases = []BaseModel{{Name: DefaultBaseModel, Renderer: chatrender.Qwen3DisableThinking}}
	}
	for _, bm := range bases {
		b, err := newBase(bm)
		if err != nil {
			return nil, fmt.Errorf("tinker server: base model %q: %w", bm.Name, err)
		}
		if _, dup := s.bases[b.Name]; dup {
			return nil, fmt.Errorf("tinker server: base model %q listed twice", b.Name)
		}
		s.bases[b.Name] = b
		s.baseOrder = append(s.baseOrder, b.Name)
		s.byTokID[b.TokenizerID] = b
		// A client that prices a plan before any session asks the hub for
		// the base model's own name, as it would on Hugging Face.
		if _, taken := s.byTokID[b.Name]; !taken {
			s.byTokID[b.Name] = b
		}
	}
	if err := s.SetFaults(opts.Faults); err != nil {
		return nil, err
	}
	if opts.StateDir != "" {
		st, err := openStore(opts.StateDir)
		if err != nil {
			return nil, err
		}
		s.store = st
		if err := s.loadStore(); err != nil {
			return nil, err
		}
	}
	s.routes()
	return s, nil
}

func newBase(bm BaseModel) (*base, error) {
	if bm.Name == "" {
		return nil, errors.New("no name")
	}
	if bm.TokenizerJSON == nil {
		bm.TokenizerJSON = OfflineTokenizer()
		if bm.TokenizerID == "" {
			bm.TokenizerID = OfflineTokenizerID
		}
	}
	if bm.TokenizerID == "" {
		bm.TokenizerID = bm.Name
	}
	if bm.MaxContext <= 0 {
		bm.MaxContext = 32768
	}
	tok, err := tokenizer.Parse(bm.TokenizerJSON)
	if err != nil {
		return nil, err
	}
	r, err := chatrender.New(bm.Renderer, tok)
	if err != nil {
		return nil, err
	}
	f, err := formatFor(bm.Renderer, tok)
	if err != nil {
		return nil, err
	}
	return &base{BaseModel: bm, tok: tok, format: f, stop: r.StopTokens()[0]}, nil
}

func (s *Server) routes() {
	api := func(pattern string, h func(http.ResponseWriter, *http.Request) error) {
		s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if err := h(w, r); err != nil {
				s.writeError(w, r, err)
			}
		})
	}
	api("POST /api/v1/client/config", s.clientConfig)
	api("POST /api/v1/client/dynamic_config", s.dynamicConfig)
	api("POST /api/v1/auth/token", s.authToken)
	api("POST /api/v1/create_session", s.createSession)
	api("POST /api/v1/session_heartbeat", s.heartbeat)
	api("POST /api/v1/create_model", s.createModel)
	api("POST /api/v1/get_info", s.getInfo)
	api("POST /api/v1/unload_model", s.unloadModel)
	api("POST /api/v1/weights_info", s.weightsInfo)
	api("POST /api/v1/forward_backward", s.forwardBackward)
	api("POST /api/v1/optim_step", s.optimStep)
	api("POST /api/v1/save_weights", s.saveWeights)
	api("POST /api/v1/load_weights", s.loadWeights)
	api("POST /api/v1/save_weights_for_sampler", s.saveForSampler)
	api("POST /api/v1/create_sampling_session", s.createSamplingSession)
	api("POST /api/v1/asample", s.asample)
	api("POST /api/v1/retrieve_future", s.retrieveFuture)
	api("GET /api/v1/healthz", func(w http.ResponseWriter, r *http.Request) error {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		return nil
	})
	api("GET /api/v1/get_server_capabilities", s.capabilities)
	s.mux.HandleFunc("POST /oai/api/v1/chat/completions", s.openAIChat)
	s.mux.HandleFunc("GET /hf/{owner}/{name}/resolve/main/tokenizer.json", s.hfTokenizer)
	s.mux.HandleFunc("GET /hf/{name}/resolve/main/tokenizer.json", s.hfTokenizer)
	s.mux.HandleFunc("GET /debug/counters", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Counters
			RequestsByRoute map[string]map[string]int64 `json:"requests_by_route"`
		}{s.Counters(), s.Requests()})
	})
}

// ServeHTTP authenticates, injects faults, then routes. The tokenizer
// route is public and fault-free, as the hub it stands in for.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", fmt.Sprintf("req_%016x", s.reqSeq.Add(1)))
	path := r.URL.Path
	switch {
	case strings.HasPrefix(path, "/hf/"):
		s.mux.ServeHTTP(w, r)
		return
	case strings.HasPrefix(path, "/debug/"):
		if err := s.authorize(r, false); err != nil {
			s.writeError(w, r, err)
			return
		}
		s.mux.ServeHTTP(w, r)
		return
	}
	s.count.requests.Add(1)
	rec := s.count.routes.Track(w, httpserve.Route(s.mux, r))
	defer rec.Done()
	if err := s.authorize(r, path == "/api/v1/auth/token" || path == "/api/v1/client/config"); err != nil {
		s.writeError(rec, r, err)
		return
	}
	if !s.injectHTTPFault(rec, r) {
		return
	}
	s.dispatch(rec, r)
}

func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.writeError(w, r, &httpError{status: http.StatusNotFound, msg: "Not Found"})
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorize checks the credential: X-API-Key, or a bearer token (what
// OpenAI's clients send to /oai). With JWT auth on, routes other than
// apiKeyOK ones need a JWT this server issued and that has not expired.
func (s *Server) authorize(r *http.Request, apiKeyOK bool) error {
	if s.apiKey == "" && !s.opts.JWTAuth {
		return nil
	}
	got := r.Header.Get("X-API-Key")
	if got == "" {
		got, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	if got == "" {
		return &httpError{status: http.StatusUnauthorized, msg: "No API key: send it in the X-API-Key header"}
	}
	isKey := s.apiKey == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.apiKey)) == 1
	if s.opts.JWTAuth && strings.HasPrefix(got, "eyJ") {
		if s.validJWT(got) {
			return nil
		}
		return &httpError{status: http.StatusUnauthorized, msg: "Invalid JWT"}
	}
	if !isKey {
		return &httpError{status: http.StatusUnauthorized, msg: "Invalid API key"}
	}
	// The OpenAI-compatible endpoint and debug routes take the API key even
	// with JWT auth on: OpenAI's clients know nothing of JWTs.
	if s.opts.JWTAuth && !apiKeyOK && strings.HasPrefix(r.URL.Path, "/api/") {
		return &httpError{status: http.StatusUnauthorized, msg: "Invalid JWT: JWT auth is enabled; exchange the API key at /api/v1/auth/token"}
	}
	return nil
}

// issueJWT signs {sub, exp} with HMAC-SHA256 under a per-process key.
func (s *Server) issueJWT() string {
	enc := base64.RawURLEncoding
	header := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	claims, _ := json.Marshal(map[string]any{"sub": "user:local", "email": "local@pvbuild.invalid", "exp": s.now().Add(s.opts.JWTTTL).Unix()})
	body := header + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, s.jwtKey)
	mac.Write([]byte(body))
	return body + "." + enc.EncodeToString(mac.Sum(nil))
}

func (s *Server) validJWT(tok string) bool {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return false
	}
	mac := hmac.New(sha256.New, s.jwtKey)
	mac.Write([]byte(parts[0] + "." + parts[1]))
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, mac.Sum(nil)) {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return false
	}
	var c struct {
		Exp int64 `json:"exp"`
	}
	return json.Unmarshal(raw, &c) == nil && s.now().Unix() < c.Exp
}

// ListenAndServe serves on addr until ctx is done, then shuts down
// gracefully.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("serve Tinker API: %w", err)
	}
	return s.Serve(ctx, ln)
}

// Serve is ListenAndServe on a listener the caller opened. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Printf("serving the Tinker API at http://%s (OpenAI-compatible at /oai/api/v1, tokenizers at /hf)", ln.Addr())
	return httpserve.Serve(ctx, ln, s, s.log, "Tinker API", shutdownGrace)
}

// httpError is an error answer: {"detail": msg} with status.
type httpError struct {
	status int
	msg    string
	cause  error // logged for 5xx, never sent
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.msg) }
func (e *httpError) Unwrap() error { return e.cause }

func badRequest(format string, args ...any) *httpError {
	return &httpError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

func notFound(format string, args ...any) *httpError {
	return &httpError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

// writeError answers with err: an *httpError as is, anything else as a 500
// whose cause is logged.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return
	}
	var e *httpError
	if !errors.As(err, &e) {
		e = &httpError{status: http.StatusInternalServerError, msg: "Internal server error: " + err.Error(), cause: err}
	}
	if e.status >= 500 && e.cause != nil {
		s.log.Printf("%s %s: %v", r.Method, r.URL.Path, e.cause)
	}
	writeJSON(w, e.status, map[string]string{"detail": e.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"detail":"encode response failed"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// readBody reads a request body of at most limit bytes.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body larger than %d bytes", limit)}
		}
		return nil, badRequest("could not read the request body: %v", err)
	}
	return b, nil
}

// decodeJSON reads a JSON body into v.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := readBody(w, r, maxJSONBytes)
	if err != nil {
		return err
	}
	return unmarshalBody(b, v)
}

func unmarshalBody(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return badRequest("invalid type for %q: expected %s, got a JSON %s", typeErr.Field, typeErr.Type, typeErr.Value)
		}
		return badRequest("invalid JSON body: %v", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
