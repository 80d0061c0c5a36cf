package provider

import (
	"context"
	"time"
)

// Wait is Call().Wait for callers not yet moved to a Call of their own:
// it bounds nothing per call. To be removed once none is left.
func (o *Outage) Wait(ctx context.Context, attempt int, retryAfter time.Duration, err error) error {
	return o.Call().Wait(ctx, retryAfter, err)
}
