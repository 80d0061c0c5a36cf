package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelorganisms/pvbuild/internal/vclock"
)

// Moved here from internal/openai with the backoff itself.
func TestBackoffBounds(t *testing.T) {
	o := NewOutage("test", OutagePolicy{MinBackoff: 500 * time.Millisecond, MaxBackoff: 30 * time.Second}, nil)
	tests := []struct {
		attempt int
		ceil    time.Duration
	}{
		{1, 500 * time.Millisecond},
		{2, time.Second},
		{4, 4 * time.Second},
		{7, 30 * time.Second},
		{100, 30 * time.Second}, // no overflow
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("attempt ", tt.attempt), func(t *testing.T) {
			var top time.Duration
			for range 200 {
				d := o.backoff(tt.attempt)
				if d < 0 || d > tt.ceil {
					t.Fatalf("backoff = %s, want within [0, %s]", d, tt.ceil)
				}
				top = max(top, d)
			}
			if top < tt.ceil/4 {
				t.Fatalf("200 draws all below %s: not jittered over [0, %s]", top, tt.ceil)
			}
		})
	}
}

// Many calls waiting out one outage share its clock and its log: one line
// a second into it and then at most one every 10 s, not one per attempt;
// each gives up once the provider has failed for Max; a success ends the
// outage for everyone.
func TestAbuseOutageSharedAcrossCalls(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	sleep := func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		// Eight sleepers share the clock; each moves it a little, at least
		// a millisecond, so the outage's end is reached.
		now = now.Add(max(d/8, time.Millisecond))
		mu.Unlock()
		return ctx.Err()
	}
	var log bytes.Buffer
	var logMu sync.Mutex
	o := NewOutage("p", OutagePolicy{Max: time.Minute, Sleep: sleep, Now: clock}, writerFunc(func(b []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return log.Write(b)
	}))
	refused := errors.New("connection refused")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			call := o.Call()
			for {
				if err := call.Wait(context.Background(), 0, refused); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		var oe *OutageError
		if !errors.As(err, &oe) || !errors.Is(err, ErrUnreachable) || !errors.Is(err, refused) || oe.For < time.Minute {
			t.Fatalf("err = %v, want an *OutageError after a minute", err)
		}
	}
	lines := strings.Count(log.String(), "provider p: unreachable for ")
	if lines == 0 || lines > 7 {
		t.Fatalf("%d progress lines for a 1-minute outage, want 1 to 7:\n%s", lines, log.String())
	}
	o.OK()
	if err := o.Call().Wait(context.Background(), 0, refused); err != nil {
		t.Fatalf("after a success the outage starts again: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// One call that keeps failing while other calls succeed gives up after Max
// of its own failures: the others' successes end the provider's outage,
// not this call's.
func TestAbuseOutageOneCallFailingWhileOthersSucceed(t *testing.T) {
	clock := vclock.New()
	o := NewOutage("p", OutagePolicy{Max: time.Minute, Sleep: clock.Sleep, Now: clock.Now}, nil)
	refused := errors.New("HTTP 500")
	call := o.Call()
	start := clock.Now()
	for attempt := 1; ; attempt++ {
		o.OK() // another call got an answer meanwhile
		err := call.Wait(context.Background(), 0, refused)
		if err == nil {
			if attempt > 10000 {
				t.Fatalf("still retrying after %d attempts and %s", attempt, clock.Now().Sub(start))
			}
			continue
		}
		var oe *OutageError
		if !errors.As(err, &oe) || !errors.Is(err, ErrUnreachable) || !errors.Is(err, refused) {
			t.Fatalf("err = %v, want an *OutageError", err)
		}
		if d := clock.Now().Sub(start); d < time.Minute {
			t.Fatalf("gave up after %s, want a minute", d)
		}
		return
	}
}

// A call that loops past answers (a poll) counts its failures from its
// last answer: failures spread over longer than Max, with answers between,
// do not end it.
func TestAbuseOutageCallAnsweredStartsAfresh(t *testing.T) {
	clock := vclock.New()
	o := NewOutage("p", OutagePolicy{Max: time.Minute, MinBackoff: 10 * time.Second, MaxBackoff: 10 * time.Second, Sleep: clock.Sleep, Now: clock.Now}, nil)
	failed := errors.New("HTTP 503")
	call := o.Call()
	for range 20 { // 20 failures, each about 10 s apart, answers between
		if err := call.Wait(context.Background(), 10*time.Second, failed); err != nil {
			t.Fatalf("after %s: %v", clock.Elapsed(), err)
		}
		call.OK()
	}
}
