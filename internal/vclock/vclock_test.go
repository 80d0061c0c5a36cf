package vclock

import (
	"context"
	"testing"
	"time"
)

func TestSleepMovesNowAndCallsOnSleep(t *testing.T) {
	c := New()
	start := c.Now()
	var seen []time.Duration
	c.OnSleep = func(now time.Time) { seen = append(seen, now.Sub(start)) }
	for _, d := range []time.Duration{time.Minute, -time.Second, 30 * time.Second} {
		if err := c.Sleep(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.Now().Sub(start); got != 90*time.Second || c.Elapsed() != 90*time.Second {
		t.Fatalf("after sleeping 1m, -1s and 30s: now +%s, elapsed %s; want 1m30s both", got, c.Elapsed())
	}
	if len(seen) != 3 || seen[0] != time.Minute || seen[2] != 90*time.Second {
		t.Fatalf("OnSleep saw %v", seen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Sleep(ctx, time.Hour); err == nil || c.Elapsed() != 90*time.Second {
		t.Fatalf("sleep on an ended context: %v, elapsed %s", err, c.Elapsed())
	}
}
