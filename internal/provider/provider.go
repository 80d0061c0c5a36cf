// Package provider is the contract between the build and the services that
// train and answer: a Trainer turns training data into a model reference,
// idempotently by the build's target key; a Sampler answers chat requests,
// with logprobs for the judge. How a service gets there is its own affair:
// OpenAI and the local engine run server-side jobs (see JobAPI and package
// jobs), a loop-driven service such as Tinker is driven step by step by its
// client. Errors carry their meaning through the sentinels in errors.go, so no
// caller inspects another package's concrete error types.
//
// Providers are registered by kind (Registry) and decode their own settings
// from the experiment file's provider block, as Terraform leaves a provider's
// configuration body to the provider.
package provider
