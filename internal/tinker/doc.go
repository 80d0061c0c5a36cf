// Package tinker is a client for Tinker, Thinking Machines' training API:
// session and heartbeat, LoRA training models (forward_backward, optim_step,
// save/load state, sampler weights), sampling, and the futures protocol that
// every mutating call returns. It speaks the wire protocol of the Python SDK
// 0.25.0 as described, with sources, in shared/ref/tinker/README.md; the
// protobuf half lives in package wire.
//
// Ordering: every model has one seq_id counter. Each request that touches
// the model (each forward_backward chunk, optim_step, save, load, sampler
// save) takes the next number r and sends seq_id r+1, and requests are
// submitted in that order under a per-model lock; the server executes them
// in seq_id order. A retried or resubmitted training request keeps its
// seq_id. Sampling requests count from 0 per sampling session.
//
// Retries follow the SDK: submissions and polls retry 408/409/429/5xx and
// network errors as the provider's outage policy says (Options.Outage, by
// default one of the client's own with Max RetryBudget): capped exponential
// backoff with jitter, Retry-After honoured, until the provider or the call
// has been failing for its maximum; 402 is a billing pause retried every 5 s for up
// to the server's billing_exception_max_pause_duration_sec. Polling
// (retrieve_future) is described on Future.Wait.
//
// The API key goes only into the X-API-Key header; it is never logged and
// never part of an error.
package tinker
