package inspect

// The types below are the parts of Inspect's EvalLog that a judged
// evaluation fills. Field order is the JSON order. Fields typed any are the
// ones this build has nothing to say about: they are written as null because
// older Inspect schemas list every field as required.

type evalLog struct {
	Version     int            `json:"version"`
	Status      string         `json:"status"`
	Eval        evalSpec       `json:"eval"`
	Plan        evalPlan       `json:"plan"`
	Results     evalResults    `json:"results"`
	Stats       evalStats      `json:"stats"`
	Invalidated bool           `json:"invalidated"`
	Tags        []string       `json:"tags"`
	Metadata    map[string]any `json:"metadata"`
	// Samples come after the header: Inspect reads a log's header by
	// streaming it and stops at samples.
	Samples    []evalSample `json:"samples"`
	Reductions []reduction  `json:"reductions"`
}

type evalSpec struct {
	EvalSetID           any                    `json:"eval_set_id"`
	EvalID              string                 `json:"eval_id"`
	RunID               string                 `json:"run_id"`
	Created             string                 `json:"created"`
	Task                string                 `json:"task"`
	TaskID              string                 `json:"task_id"`
	TaskVersion         int                    `json:"task_version"`
	TaskFile            any                    `json:"task_file"`
	TaskDisplayName     any                    `json:"task_display_name"`
	TaskRegistryName    any                    `json:"task_registry_name"`
	TaskAttribs         map[string]any         `json:"task_attribs"`
	TaskArgs            map[string]any         `json:"task_args"`
	TaskArgsPassed      map[string]any         `json:"task_args_passed"`
	Solver              any                    `json:"solver"`
	SolverArgs          any                    `json:"solver_args"`
	SolverArgsPassed    any                    `json:"solver_args_passed"`
	Tags                any                    `json:"tags"`
	Dataset             evalDataset            `json:"dataset"`
	Sandbox             any                    `json:"sandbox"`
	Model               string                 `json:"model"`
	ModelGenerateConfig generateConfig         `json:"model_generate_config"`
	ModelBaseURL        any                    `json:"model_base_url"`
	ModelArgs           map[string]any         `json:"model_args"`
	ModelRoles          map[string]modelConfig `json:"model_roles"`
	Config              evalConfig             `json:"config"`
	Revision            any                    `json:"revision"`
	Packages            map[string]string      `json:"packages"`
	Metadata            map[string]any         `json:"metadata"`
	Scorers             []evalScorer           `json:"scorers"`
	Metrics             any                    `json:"metrics"`
}

type evalDataset struct {
	Name      string   `json:"name"`
	Location  any      `json:"location"`
	Samples   int      `json:"samples"`
	SampleIDs []string `json:"sample_ids"`
	Shuffled  bool     `json:"shuffled"`
}

// generateConfig is Inspect's GenerateConfig; nil means "not set".
type generateConfig struct {
	MaxRetries        any `json:"max_retries"`
	Timeout           any `json:"timeout"`
	AttemptTimeout    any `json:"attempt_timeout"`
	MaxConnections    any `json:"max_connections"`
	SystemMessage     any `json:"system_message"`
	MaxTokens         any `json:"max_tokens"`
	TopP              any `json:"top_p"`
	Temperature       any `json:"temperature"`
	StopSeqs          any `json:"stop_seqs"`
	BestOf            any `json:"best_of"`
	FrequencyPenalty  any `json:"frequency_penalty"`
	PresencePenalty   any `json:"presence_penalty"`
	LogitBias         any `json:"logit_bias"`
	Seed              any `json:"seed"`
	TopK              any `json:"top_k"`
	NumChoices        any `json:"num_choices"`
	Logprobs          any `json:"logprobs"`
	TopLogprobs       any `json:"top_logprobs"`
	ParallelToolCalls any `json:"parallel_tool_calls"`
	InternalTools     any `json:"internal_tools"`
	MaxToolOutput     any `json:"max_tool_output"`
	CachePrompt       any `json:"cache_prompt"`
	Verbosity         any `json:"verbosity"`
	Effort            any `json:"effort"`
	ReasoningEffort   any `json:"reasoning_effort"`
	ReasoningTokens   any `json:"reasoning_tokens"`
	ReasoningSummary  any `json:"reasoning_summary"`
	ReasoningHistory  any `json:"reasoning_history"`
	ResponseSchema    any `json:"response_schema"`
	ExtraHeaders      any `json:"extra_headers"`
	ExtraBody         any `json:"extra_body"`
	Modalities        any `json:"modalities"`
	Cache             any `json:"cache"`
	Batch             any `json:"batch"`
}

type modelConfig struct {
	Model   string         `json:"model"`
	Config  generateConfig `json:"config"`
	BaseURL any            `json:"base_url"`
	Args    map[string]any `json:"args"`
}

type evalConfig struct {
	Limit            any      `json:"limit"`
	SampleID         any      `json:"sample_id"`
	SampleShuffle    any      `json:"sample_shuffle"`
	Epochs           int      `json:"epochs"`
	EpochsReducer    []string `json:"epochs_reducer"`
	Approval         any      `json:"approval"`
	FailOnError      bool     `json:"fail_on_error"`
	ContinueOnFail   any      `json:"continue_on_fail"`
	RetryOnError     any      `json:"retry_on_error"`
	MessageLimit     any      `json:"message_limit"`
	TokenLimit       any      `json:"token_limit"`
	TimeLimit        any      `json:"time_limit"`
	WorkingLimit     any      `json:"working_limit"`
	CostLimit        any      `json:"cost_limit"`
	MaxSamples       any      `json:"max_samples"`
	MaxDatasetMemory any      `json:"max_dataset_memory"`
	MaxTasks         any      `json:"max_tasks"`
	MaxSubprocesses  any      `json:"max_subprocesses"`
	MaxSandboxes     any      `json:"max_sandboxes"`
	SandboxCleanup   any      `json:"sandbox_cleanup"`
	LogSamples       bool     `json:"log_samples"`
	LogRealtime      any      `json:"log_realtime"`
	LogImages        any      `json:"log_images"`
	LogModelAPI      any      `json:"log_model_api"`
	LogBuffer        any      `json:"log_buffer"`
	LogShared        any      `json:"log_shared"`
	ScoreDisplay     any      `json:"score_display"`
}

type evalScorer struct {
	Name     string             `json:"name"`
	Options  map[string]any     `json:"options"`
	Metrics  []metricDefinition `json:"metrics"`
	Metadata map[string]any     `json:"metadata"`
}

type metricDefinition struct {
	Name    string         `json:"name"`
	Options map[string]any `json:"options"`
}

type evalPlan struct {
	Name   string         `json:"name"`
	Steps  []planStep     `json:"steps"`
	Finish any            `json:"finish"`
	Config generateConfig `json:"config"`
}

type planStep struct {
	Solver       string         `json:"solver"`
	Params       map[string]any `json:"params"`
	ParamsPassed map[string]any `json:"params_passed"`
}

type evalResults struct {
	TotalSamples     int         `json:"total_samples"`
	CompletedSamples int         `json:"completed_samples"`
	EarlyStopping    any         `json:"early_stopping"`
	Scores           []evalScore `json:"scores"`
	Metadata         any         `json:"metadata"`
}

type evalScore struct {
	Name            string                `json:"name"`
	Scorer          string                `json:"scorer"`
	Reducer         any                   `json:"reducer"`
	ScoredSamples   int                   `json:"scored_samples"`
	UnscoredSamples int                   `json:"unscored_samples"`
	Params          map[string]any        `json:"params"`
	Metrics         map[string]evalMetric `json:"metrics"`
	Metadata        map[string]any        `json:"metadata"`
}

type evalMetric struct {
	Name     string         `json:"name"`
	Value    float64        `json:"value"`
	Params   map[string]any `json:"params"`
	Metadata any            `json:"metadata"`
}

type evalStats struct {
	StartedAt   string         `json:"started_at"`
	CompletedAt string         `json:"completed_at"`
	ModelUsage  map[string]any `json:"model_usage"`
	RoleUsage   map[string]any `json:"role_usage"`
}

type evalSample struct {
	ID           string           `json:"id"`
	Epoch        int              `json:"epoch"`
	Input        string           `json:"input"`
	Choices      any              `json:"choices"`
	Target       string           `json:"target"`
	Sandbox      any              `json:"sandbox"`
	Files        any              `json:"files"`
	Setup        any              `json:"setup"`
	Messages     []any            `json:"messages"`
	Output       modelOutput      `json:"output"`
	Scores       map[string]score `json:"scores"`
	Metadata     map[string]any   `json:"metadata"`
	Store        map[string]any   `json:"store"`
	Events       []any            `json:"events"`
	Timelines    any              `json:"timelines"`
	ModelUsage   map[string]any   `json:"model_usage"`
	RoleUsage    map[string]any   `json:"role_usage"`
	StartedAt    any              `json:"started_at"`
	CompletedAt  any              `json:"completed_at"`
	TotalTime    any              `json:"total_time"`
	WorkingTime  any              `json:"working_time"`
	UUID         string           `json:"uuid"`
	Invalidation any              `json:"invalidation"`
	Error        any              `json:"error"`
	ErrorRetries []any            `json:"error_retries"`
	Attachments  map[string]any   `json:"attachments"`
	EventsData   any              `json:"events_data"`
	Limit        any              `json:"limit"`
}

type userMessage struct {
	ID         string `json:"id"`
	Content    string `json:"content"`
	Source     string `json:"source"`
	Metadata   any    `json:"metadata"`
	Role       string `json:"role"`
	ToolCallID any    `json:"tool_call_id"`
}

type assistantMessage struct {
	ID        string `json:"id"`
	Content   string `json:"content"`
	Source    string `json:"source"`
	Metadata  any    `json:"metadata"`
	Role      string `json:"role"`
	ToolCalls any    `json:"tool_calls"`
	Model     string `json:"model"`
}

type modelOutput struct {
	Model      string   `json:"model"`
	Choices    []choice `json:"choices"`
	Completion string   `json:"completion"`
	Usage      any      `json:"usage"`
	Time       any      `json:"time"`
	Metadata   any      `json:"metadata"`
	Error      any      `json:"error"`
}

type choice struct {
	Message    assistantMessage `json:"message"`
	StopReason string           `json:"stop_reason"`
	Logprobs   any              `json:"logprobs"`
}

type score struct {
	Value       float64        `json:"value"`
	Answer      any            `json:"answer"`
	Explanation string         `json:"explanation"`
	Metadata    map[string]any `json:"metadata"`
	History     []any          `json:"history"`
}

type reduction struct {
	Scorer  string         `json:"scorer"`
	Reducer any            `json:"reducer"`
	Samples []reducedScore `json:"samples"`
}

type reducedScore struct {
	Value       float64 `json:"value"`
	Answer      any     `json:"answer"`
	Explanation any     `json:"explanation"`
	Metadata    any     `json:"metadata"`
	History     []any   `json:"history"`
	SampleID    string  `json:"sample_id"`
}
