// Package httpserve serves an http.Handler until its context ends, then
// shuts it down gracefully: the loopback servers' common lifetime.
package httpserve

import (
	"context"
	"fmt"
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
