// Package httpserve serves an http.Handler until its context ends, then
// shuts it down gracefully: the loopback servers' common lifetime, with
// the parts of their fault injection that touch the wire (dropped and lost
// answers) and their counts of requests by route and outcome.
package httpserve

import (
	"context"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Serve serves h on ln until ctx is done, then lets requests in flight
// finish for up to grace before closing what is left. It closes ln. what
// names the service in errors ("OpenAI-compatible API").
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *log.Logger, what string, grace time.Duration) error {
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: logger}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve %s on %s: %w", what, ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-done // http.ErrServerClosed, now that Shutdown was called
	if err != nil {
		hs.Close()
		return fmt.Errorf("shut down %s on %s: %w", what, ln.Addr(), err)
	}
	return nil
}

// Drop closes the connection without an answer, as a crashed server or a
// proxy would: a fault the loopback servers inject. Up to limit bytes of the
// body are read first, so that the client sees the close rather than a
// reset while still sending.
func Drop(w http.ResponseWriter, r *http.Request, limit int64) {
	io.Copy(io.Discard, io.LimitReader(r.Body, limit))
	// Through wrappers such as Recorder, by their Unwrap.
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
		return
	}
	// HTTP/2, or a writer that cannot be hijacked: abort the stream, still
	// without an answer (net/http recovers this sentinel quietly).
	panic(http.ErrAbortHandler)
}

// Discard is a ResponseWriter that swallows an answer that is to be lost
// after the work is done.
func Discard() http.ResponseWriter { return discardWriter{h: http.Header{}} }

type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

// Outcomes counts requests by route and outcome, so that tests can see
// what a server under faults really answered. It is safe for concurrent
// use; the zero value is ready.
type Outcomes struct {
	mu sync.Mutex
	m  map[string]map[string]int64
}

// Add counts one request of route with outcome.
func (o *Outcomes) Add(route, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.m == nil {
		o.m = map[string]map[string]int64{}
	}
	if o.m[route] == nil {
		o.m[route] = map[string]int64{}
	}
	o.m[route][outcome]++
}

// Track returns a Recorder answering through w that counts one request
// of route as soon as its outcome is known: when the status is written,
// before the client can see the answer, so that a client reading the
// counts after its last answer finds that answer counted.
func (o *Outcomes) Track(w http.ResponseWriter, route string) *Recorder {
	return &Recorder{ResponseWriter: w, outcomes: o, route: route}
}

// Route is mux's pattern for r ("POST /v1/files"), or "unrouted".
func Route(mux *http.ServeMux, r *http.Request) string {
	if _, pattern := mux.Handler(r); pattern != "" {
		return pattern
	}
	return "unrouted"
}

// Snapshot returns a copy of the counts: route, then outcome.
func (o *Outcomes) Snapshot() map[string]map[string]int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]map[string]int64, len(o.m))
	for route, outcomes := range o.m {
		out[route] = maps.Clone(outcomes)
	}
	return out
}

// Outcome names for Outcomes: besides an HTTP status ("200"), a connection
// closed unanswered, an answer lost after the work was done (Lost+"200"),
// and a client that left before the answer.
const (
	Dropped    = "dropped"
	Lost       = "lost "
	ClientGone = "client gone"
)

// Recorder is a ResponseWriter that notes the status it answers and,
// made by Outcomes.Track, counts it.
type Recorder struct {
	http.ResponseWriter
	Status int // 0 until answered

	outcomes *Outcomes
	route    string
	counted  bool
}

func (w *Recorder) WriteHeader(status int) {
	if w.Status == 0 {
		w.Status = status
		w.Count(strconv.Itoa(status))
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *Recorder) Write(b []byte) (int, error) {
	if w.Status == 0 {
		w.Status = http.StatusOK
		w.Count(strconv.Itoa(w.Status))
	}
	return w.ResponseWriter.Write(b)
}

// Count counts the request with outcome now, unless it was counted: for
// outcomes the status does not tell (Dropped, Lost+"200"), before the
// connection closes.
func (w *Recorder) Count(outcome string) {
	if w.outcomes == nil || w.counted {
		return
	}
	w.counted = true
	w.outcomes.Add(w.route, outcome)
}

// Done counts a request that ended unanswered and uncounted: ClientGone.
func (w *Recorder) Done() { w.Count(ClientGone) }

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *Recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Outcome is the status as an Outcomes key; ClientGone when unanswered.
func (w *Recorder) Outcome() string {
	if w.Status == 0 {
		return ClientGone
	}
	return strconv.Itoa(w.Status)
}
