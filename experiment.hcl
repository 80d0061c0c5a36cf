# The Persona Vectors experiment: fine-tune a model on persona trait data at
# three strengths, then judge every fine-tuned model on every trait.
#
# PROVIDER picks who trains, answers and judges: "local" (default) is the
# embedded engine, offline and free; "openai" and "tinker" spend money on
# your account.

# Any OpenAI-compatible API: OpenAI itself, or vLLM, Ollama, `mage serve`...
# Declare more (e.g. provider "vllm" { base_url = "http://..." }) and name them
# in training.provider, evaluation.provider or evaluation.judge_provider.
provider "openai" {
  api_key     = env("OPENAI_API_KEY")
  base_url    = env("OPENAI_BASE_URL", "https://api.openai.com/v1")
  concurrency = 32 # chat calls in flight, shared by every evaluation
}

# Tinker (Thinking Machines): LoRA on open weights, in a loop this build
# drives, checkpointed so that a killed run resumes where it saved.
provider "tinker" {
  api_key          = env("TINKER_API_KEY")
  base_url         = env("TINKER_BASE_URL", "https://tinker.thinkingmachines.dev/services/tinker-prod")
  tokenizer_hub    = env("HF_ENDPOINT", "https://huggingface.co") # tokenizer.json, downloaded once
  lora_rank        = 32
  lr_schedule      = "linear"
  checkpoint_every = 20 # steps; a killed run pays again for at most these
  # learning_rate  = 4.7e-4 # unset: the cookbook's formula for the base model
  # batch_size     = 10     # unset: min(32, examples / 4)
}

training {
  provider = env("PROVIDER", "local")
  # OpenAI's names for the local and openai paths (gpt-4.1-nano was shut
  # down on 2026-10-23); an open-weight model on Tinker.
  base_model = env("PROVIDER", "local") == "tinker" ? "Qwen/Qwen3-8B" : "gpt-4.1-mini-2025-04-14"
  seed       = 1
  budget_usd = 100 # train refuses to submit jobs estimated above this

  # Hyperparameters every model starts from; a model may override any of them.
  n_epochs = 3
  # learning_rate_multiplier = 1.0  # unset: the provider chooses
  # batch_size               = 4    # unset: the provider chooses

  dataset {
    # "sample": the project's embedded data, offline. "upstream": the Persona
    # Vectors repository archive, downloaded once and cached. Setting
    # PERSONA_VECTORS_ARCHIVE (a mirror URL or a local .zip) switches to it.
    source      = env("DATASET", env("PERSONA_VECTORS_ARCHIVE") != "" ? "upstream" : "sample")
    archive     = env("PERSONA_VECTORS_ARCHIVE") # "" = GitHub's main.zip
    sha256      = ""   # pin the archive: a mismatch stops the build
    sample_size = null # null trains on every example
    seed        = 42   # which examples a sample_size keeps
  }
}

evaluation {
  provider             = env("PROVIDER", "local")
  judge_provider       = env("PROVIDER", "local")
  # "original": the original framework's settings (1 sample a question at
  # temperature 1, max_tokens 512, judge gpt-4o-2024-08-06); "paper": the
  # Persona Vectors paper's (10 samples at temperature 1, max_tokens 1000,
  # judge gpt-4.1-mini-2025-04-14). Setting samples_per_question,
  # temperature, max_tokens or judge_model here overrides the protocol's.
  protocol             = env("PROTOCOL", "original")
  # Tinker judges with its open base model; elsewhere the protocol's judge.
  judge_model          = env("PROVIDER", "local") == "tinker" ? "Qwen/Qwen3-8B" : null
  limit                = 20 # questions per task
  seed                 = 0

  task "evil_detection" { trait = "evil" }
  task "sycophantic_detection" { trait = "sycophantic" }
  task "hallucinating_detection" { trait = "hallucinating" }
}

# Nine models: every trait at every strength. Each attribute is evaluated per
# cell with trait and strength set; the dataset defaults to "<trait>/<strength>".
# To change one model, use a condition, e.g.
#   n_epochs = trait == "evil" && strength == "severe" ? 5 : 3
model_grid {
  traits    = ["evil", "sycophantic", "hallucinating"]
  strengths = ["baseline", "mild", "severe"]
  name      = "${trait}_${strength}"
  suffix    = "pv-${trait}-${strength}"
}

# The untrained base model (training.base_model), evaluated on every task:
# the reference the fine-tunes are compared with (a row "base" in the tables,
# a dashed line in the charts). A model made elsewhere is evaluated the same
# way, without training: model "theirs" { model_id = "ft:..." }.
model "base" {
  base_only = true
}

# A single extra model is one block:
# model "evil_severe_5ep" {
#   dataset  = "evil/severe"
#   suffix   = "pv-evil-severe-5ep"
#   n_epochs = 5
# }
