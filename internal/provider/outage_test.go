package provider

import (
	"fmt"
	"testing"
	"time"
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
