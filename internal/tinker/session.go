package tinker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

const (
	// HeartbeatInterval is how often the SDK beats.
	HeartbeatInterval = 10 * time.Second
	heartbeatTimeout  = 10 * time.Second
	// heartbeatWarnAfter: the SDK warns that the session will be ended
	// after this long without a successful beat.
	heartbeatWarnAfter = 120 * time.Second
)

// Session is one client session: it owns the counters for created models
// and sampling sessions and must be kept alive with Heartbeat.
type Session struct {
	c  *Client
	ID string

	mu         sync.Mutex
	modelSeq   int // next model_seq_id
	samplerSeq int // next sampling_session_seq_id
	dead       error
}

// Start fetches the client config (and a JWT when required) and creates a
// session. Run Heartbeat on the result for as long as it is used.
func (c *Client) Start(ctx context.Context) (*Session, error) {
	if _, err := c.FetchConfig(ctx); err != nil {
		return nil, err
	}
	return c.CreateSession(ctx)
}

// CreateSession registers a new session (POST /api/v1/create_session).
func (c *Client) CreateSession(ctx context.Context) (*Session, error) {
	tags := c.opts.Tags
	if tags == nil {
		tags = []string{}
	}
	req := map[string]any{"tags": tags, "user_metadata": map[string]any{}, "sdk_version": SDKVersion, "type": "create_session"}
	if c.opts.ProjectID != "" {
		req["project_id"] = c.opts.ProjectID
	}
	var out struct {
		SessionID      string `json:"session_id"`
		InfoMessage    string `json:"info_message"`
		WarningMessage string `json:"warning_message"`
		ErrorMessage   string `json:"error_message"`
	}
	if err := c.postJSON(ctx, "/api/v1/create_session", req, &out, reqInfo{}); err != nil {
		return nil, err
	}
	if out.SessionID == "" {
		return nil, errors.New("tinker /api/v1/create_session: answer has no session_id")
	}
	// The server's notes about the session (deprecations, limits).
	if out.InfoMessage != "" {
		c.log.Info("tinker: "+out.InfoMessage, "session", out.SessionID)
	}
	if out.WarningMessage != "" {
		c.log.Warn("tinker: "+out.WarningMessage, "session", out.SessionID)
	}
	if out.ErrorMessage != "" {
		c.log.Error("tinker: "+out.ErrorMessage, "session", out.SessionID)
	}
	return &Session{c: c, ID: out.SessionID}, nil
}

// Err is the reason the session is dead (wrapping ErrSessionDead), or nil.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// Heartbeat beats every 10 s until ctx ends (then it returns ctx.Err()) or
// the server disowns the session: a 404, 403 or 410 answer returns an error
// wrapping ErrSessionDead (and ErrNotFound for 404), also kept in Err().
// Other failures are tolerated as in the SDK, with a warning once no beat
// has succeeded for 120 s.
func (s *Session) Heartbeat(ctx context.Context) error {
	c := s.c
	lastOK := c.now()
	warned := false
	for {
		if err := c.beat(ctx, HeartbeatInterval); err != nil {
			return err
		}
		body := map[string]any{"session_id": s.ID, "type": "session_heartbeat"}
		raw, _ := json.Marshal(body)
		r, err := c.send(ctx, http.MethodPost, "/api/v1/session_heartbeat", "application/json", raw, "", reqInfo{}, heartbeatTimeout)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err == nil && r.status >= 200 && r.status < 300:
			lastOK, warned = c.now(), false
			continue
		case err == nil && (r.status == http.StatusNotFound || r.status == http.StatusForbidden || r.status == http.StatusGone):
			dead := fmt.Errorf("%w: session %s: %w", ErrSessionDead, s.ID, c.apiError("/api/v1/session_heartbeat", r, reqInfo{}))
			s.mu.Lock()
			s.dead = dead
			s.mu.Unlock()
			return dead
		}
		if since := c.now().Sub(lastOK); since >= heartbeatWarnAfter && !warned {
			warned = true
			reason := "no answer"
			if err != nil {
				reason = err.Error()
			} else {
				reason = fmt.Sprintf("HTTP %d", r.status)
			}
			c.log.Warn("tinker: no successful heartbeat; the server will end the session if this persists",
				"session", s.ID, "since", since, "last_error", reason)
		}
	}
}

func (s *Session) nextModelSeq() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.modelSeq
	s.modelSeq++
	return n
}

func (s *Session) nextSamplerSeq() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.samplerSeq
	s.samplerSeq++
	return n
}
