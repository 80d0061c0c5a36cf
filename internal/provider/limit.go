package provider

import "context"

// Limiter bounds the calls in flight to one provider. Chat and training
// calls share it, so a build never has more requests open at a provider
// than its concurrency setting allows.
type Limiter chan struct{}

// NewLimiter allows n calls at once (at least one).
func NewLimiter(n int) Limiter { return make(Limiter, max(n, 1)) }

// Do runs call within the limit, or returns ctx's error while waiting.
func Do[T any](ctx context.Context, l Limiter, call func() (T, error)) (T, error) {
	select {
	case l <- struct{}{}:
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
	defer func() { <-l }()
	return call()
}

// LimitSampler returns s with every call within l.
func LimitSampler(s Sampler, l Limiter) Sampler { return limitedSampler{s, l} }

type limitedSampler struct {
	s Sampler
	l Limiter
}

func (ls limitedSampler) Chat(ctx context.Context, req ChatRequest) (ChatResponse, error) {
	return Do(ctx, ls.l, func() (ChatResponse, error) { return ls.s.Chat(ctx, req) })
}
