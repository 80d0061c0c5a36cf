// Package httpserve serves an http.Handler until its context ends, then
// shuts it down gracefully: the loopback servers' common lifetime.
package httpserve

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
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
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
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
