// Package tinkersample answers provider.Sampler chat requests with Tinker's
// native sampling: the trained models (tinker://…/sampler_weights/… paths)
// answer the evaluation questions and a base model judges the answers.
//
// # Why native sampling, not Tinker's OpenAI-compatible endpoint
//
// The judge needs the top-k distribution of the first answer token. Native
// sampling can give it (topk_prompt_logprobs, see below); whether the
// OpenAI-compatible endpoint returns logprobs at all is unverified
// (shared/ref/tinker §12, §18). Native sampling also renders prompts with
// the cookbook renderer the model was trained with (package chatrender), so
// answering and judging share one code path and one prompt format. The
// OpenAI route is still there for whoever wants it: the openai provider kind
// pointed at tinker.Client.OpenAIBaseURL with the tinker:// path as the
// model.
//
// # Answering
//
// The messages are rendered as the model's renderer's generation prompt and
// sampled once with num_samples = N, max_tokens, temperature and seed, stopping
// at the renderer's stop tokens; each sequence is decoded without its final
// stop token. A model is sampled through one sampling session, created on
// first use and shared by all later calls.
//
// # Judging
//
// A request with Logprobs, TopLogprobs k > 0 and MaxTokens 1 is a judge call.
// Tinker 0.25.0 returns no top-k for sampled tokens, but it does for prompt
// tokens: row i of topk_prompt_logprobs is the model's distribution of the
// token at position i given the tokens before it. So one sample request on
// the generation prompt plus one placeholder token (any id; its own value is
// never read) with topk_prompt_logprobs = k, num_samples 1 and max_tokens 1
// yields, in the placeholder's row, the top-k of the first answer token. Each
// token id is decoded to text and returned as TopLogprobs, which judge.Score
// turns into a score by the paper's rule, as for the OpenAI judge.
//
// That is the rule's input exactly when every integer "0".."100" is a single
// token (Llama 3 style). Qwen2/3 tokenizers split numbers into digits ("85" is
// "8", "5"), so the first token alone would score 8 for 85. For those
// tokenizers, detected with SingleTokenNumbers, the answer's number is
// reconstructed: every digit token among the top k with probability >=
// MinExpandProb that can begin a number <= 100 gets one more request, on the
// prompt + that token + placeholder, for the next token's distribution. A
// digit continuation forms the longer number ("8","5" is 85; "1","0" is
// continued once more for 100); a non-digit, and the top-k tail the server
// did not return, end the number; a continuation that makes no number in
// 0..100 ("05", "853") is non-number mass. The probabilities of the integers
// 0..100 are returned as tokens "0".."100", with the non-number mass as the
// tokens (texts) themselves, so judge.Score sees numbers, not digits.
//
// Bounds and approximations: at most MaxExtraRequests (12 by default) extra
// requests per judgement, most probable prefix first, each round run
// concurrently (for Qwen: at most 9 for the first digits 1..9, then 1 for
// "10" → 100); they share the prompt, so Tinker's prefix cache serves most of
// their prefill (a provider.Limiter around the Sampler counts a judgement
// as one call). Each level sees only the top k, so a continuation outside
// it is counted as ending the number, and a digit prefix below MinExpandProb
// or beyond the budget is left out (its mass counts as neither number nor
// non-number), where the single-token rule would also only see the top k. A
// two-digit number is not checked for a third digit (as the single-token rule
// does not look past its token). Options.DisableNumberExpansion switches the
// expansion off.
//
// The judge's base model needs a renderer whose generation prompt leads
// straight to the answer (qwen3_disable_thinking or qwen3_instruct, not
// qwen3, whose first token would be <think>); the provider kind picks it.
package tinkersample
