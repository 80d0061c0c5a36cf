package inspect

// The types below are the parts of Inspect's EvalLog that a judged
// evaluation fills. Field order is the JSON order. Fields typed any are the
// ones this build has nothing to say about (or sets only sometimes): unset,
// they are left out of the log, as Inspect leaves out a field whose value is
// None. The fields Inspect's current schema requires are always written.

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
	EvalSetID           any                    `json:"eval_set_id,omitempty"`
	EvalID              string                 `json:"eval_id"`
	RunID               string                 `json:"run_id"`
	Created             string                 `json:"created"`
	Task                string                 `json:"task"`
	TaskID              string                 `json:"task_id"`
	TaskVersion         int                    `json:"task_version"`
	TaskFile            any                    `json:"task_file,omitempty"`
	TaskDisplayName     any                    `json:"task_display_name,omitempty"`
	TaskRegistryName    any                    `json:"task_registry_name,omitempty"`
	TaskAttribs         map[string]any         `json:"task_attribs"`
	TaskArgs            map[string]any         `json:"task_args"`
	TaskArgsPassed      map[string]any         `json:"task_args_passed"`
	Solver              any                    `json:"solver,omitempty"`
	SolverArgs          any                    `json:"solver_args,omitempty"`
	SolverArgsPassed    any                    `json:"solver_args_passed,omitempty"`
	Tags                any                    `json:"tags,omitempty"`
	Dataset             evalDataset            `json:"dataset"`
	Sandbox             any                    `json:"sandbox,omitempty"`
	Model               string                 `json:"model"`
	ModelGenerateConfig generateConfig         `json:"model_generate_config"`
	ModelBaseURL        any                    `json:"model_base_url,omitempty"`
	ModelArgs           map[string]any         `json:"model_args"`
	ModelRoles          map[string]modelConfig `json:"model_roles"`
	Config              evalConfig             `json:"config"`
	Revision            any                    `json:"revision,omitempty"`
	Packages            map[string]string      `json:"packages"`
	Metadata            map[string]any         `json:"metadata"`
	Scorers             []evalScorer           `json:"scorers"`
	Metrics             any                    `json:"metrics,omitempty"`
}

type evalDataset struct {
	Name      string   `json:"name"`
	Location  any      `json:"location,omitempty"`
	Samples   int      `json:"samples"`
	SampleIDs []string `json:"sample_ids"`
	Shuffled  bool     `json:"shuffled"`
}

// generateConfig is Inspect's GenerateConfig; nil means "not set".
type generateConfig struct {
	MaxRetries        any `json:"max_retries,omitempty"`
	Timeout           any `json:"timeout,omitempty"`
	AttemptTimeout    any `json:"attempt_timeout,omitempty"`
	MaxConnections    any `json:"max_connections,omitempty"`
	SystemMessage     any `json:"system_message,omitempty"`
	MaxTokens         any `json:"max_tokens,omitempty"`
	TopP              any `json:"top_p,omitempty"`
	Temperature       any `json:"temperature,omitempty"`
	StopSeqs          any `json:"stop_seqs,omitempty"`
	BestOf            any `json:"best_of,omitempty"`
	FrequencyPenalty  any `json:"frequency_penalty,omitempty"`
	PresencePenalty   any `json:"presence_penalty,omitempty"`
	LogitBias         any `json:"logit_bias,omitempty"`
	Seed              any `json:"seed,omitempty"`
	TopK              any `json:"top_k,omitempty"`
	NumChoices        any `json:"num_choices,omitempty"`
	Logprobs          any `json:"logprobs,omitempty"`
	TopLogprobs       any `json:"top_logprobs,omitempty"`
	ParallelToolCalls any `json:"parallel_tool_calls,omitempty"`
	InternalTools     any `json:"internal_tools,omitempty"`
	MaxToolOutput     any `json:"max_tool_output,omitempty"`
	CachePrompt       any `json:"cache_prompt,omitempty"`
	Verbosity         any `json:"verbosity,omitempty"`
	Effort            any `json:"effort,omitempty"`
	ReasoningEffort   any `json:"reasoning_effort,omitempty"`
	ReasoningTokens   any `json:"reasoning_tokens,omitempty"`
	ReasoningSummary  any `json:"reasoning_summary,omitempty"`
	ReasoningHistory  any `json:"reasoning_history,omitempty"`
	ResponseSchema    any `json:"response_schema,omitempty"`
	ExtraHeaders      any `json:"extra_headers,omitempty"`
	ExtraBody         any `json:"extra_body,omitempty"`
	Modalities        any `json:"modalities,omitempty"`
	Cache             any `json:"cache,omitempty"`
	Batch             any `json:"batch,omitempty"`
}

type modelConfig struct {
	Model   string         `json:"model"`
	Config  generateConfig `json:"config"`
	BaseURL any            `json:"base_url,omitempty"`
	Args    map[string]any `json:"args"`
}

type evalConfig struct {
	Limit            any      `json:"limit,omitempty"`
	SampleID         any      `json:"sample_id,omitempty"`
	SampleShuffle    any      `json:"sample_shuffle,omitempty"`
	Epochs           int      `json:"epochs"`
	EpochsReducer    []string `json:"epochs_reducer"`
	Approval         any      `json:"approval,omitempty"`
	FailOnError      bool     `json:"fail_on_error"`
	ContinueOnFail   any      `json:"continue_on_fail,omitempty"`
	RetryOnError     any      `json:"retry_on_error,omitempty"`
	MessageLimit     any      `json:"message_limit,omitempty"`
	TokenLimit       any      `json:"token_limit,omitempty"`
	TimeLimit        any      `json:"time_limit,omitempty"`
	WorkingLimit     any      `json:"working_limit,omitempty"`
	CostLimit        any      `json:"cost_limit,omitempty"`
	MaxSamples       any      `json:"max_samples,omitempty"`
	MaxDatasetMemory any      `json:"max_dataset_memory,omitempty"`
	MaxTasks         any      `json:"max_tasks,omitempty"`
	MaxSubprocesses  any      `json:"max_subprocesses,omitempty"`
	MaxSandboxes     any      `json:"max_sandboxes,omitempty"`
	SandboxCleanup   any      `json:"sandbox_cleanup,omitempty"`
	LogSamples       bool     `json:"log_samples"`
	LogRealtime      any      `json:"log_realtime,omitempty"`
	LogImages        any      `json:"log_images,omitempty"`
	LogModelAPI      any      `json:"log_model_api,omitempty"`
	LogBuffer        any      `json:"log_buffer,omitempty"`
	LogShared        any      `json:"log_shared,omitempty"`
	ScoreDisplay     any      `json:"score_display,omitempty"`
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
	Finish any            `json:"finish,omitempty"`
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
	EarlyStopping    any         `json:"early_stopping,omitempty"`
	Scores           []evalScore `json:"scores"`
	Metadata         any         `json:"metadata,omitempty"`
}

type evalScore struct {
	Name            string                `json:"name"`
	Scorer          string                `json:"scorer"`
	Reducer         any                   `json:"reducer,omitempty"`
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
	Metadata any            `json:"metadata,omitempty"`
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
	Choices      any              `json:"choices,omitempty"`
	Target       string           `json:"target"`
	Sandbox      any              `json:"sandbox,omitempty"`
	Files        any              `json:"files,omitempty"`
	Setup        any              `json:"setup,omitempty"`
	Messages     []any            `json:"messages"`
	Output       modelOutput      `json:"output"`
	Scores       map[string]score `json:"scores"`
	Metadata     map[string]any   `json:"metadata"`
	Store        map[string]any   `json:"store"`
	Events       []any            `json:"events"`
	Timelines    any              `json:"timelines,omitempty"`
	ModelUsage   map[string]any   `json:"model_usage"`
	RoleUsage    map[string]any   `json:"role_usage"`
	StartedAt    any              `json:"started_at,omitempty"`
	CompletedAt  any              `json:"completed_at,omitempty"`
	TotalTime    any              `json:"total_time,omitempty"`
	WorkingTime  any              `json:"working_time,omitempty"`
	UUID         string           `json:"uuid"`
	Invalidation any              `json:"invalidation,omitempty"`
	Error        any              `json:"error,omitempty"`
	ErrorRetries []any            `json:"error_retries"`
	Attachments  map[string]any   `json:"attachments"`
	EventsData   any              `json:"events_data,omitempty"`
	Limit        any              `json:"limit,omitempty"`
}

// modelUsage is Inspect's ModelUsage.
type modelUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

// modelEvent is Inspect's ModelEvent: one call of a model, shown in the
// sample's transcript.
type modelEvent struct {
	Timestamp    string         `json:"timestamp"`
	WorkingStart float64        `json:"working_start"`
	Event        string         `json:"event"`
	Model        string         `json:"model"`
	Role         any            `json:"role,omitempty"`
	Input        []any          `json:"input"`
	Tools        []any          `json:"tools"`
	ToolChoice   string         `json:"tool_choice"`
	Config       generateConfig `json:"config"`
	Output       modelOutput    `json:"output"`
	Completed    string         `json:"completed"`
	WorkingTime  float64        `json:"working_time"`
}

type userMessage struct {
	ID         string `json:"id"`
	Content    string `json:"content"`
	Source     string `json:"source"`
	Metadata   any    `json:"metadata,omitempty"`
	Role       string `json:"role"`
	ToolCallID any    `json:"tool_call_id,omitempty"`
}

type assistantMessage struct {
	ID        string `json:"id"`
	Content   string `json:"content"`
	Source    string `json:"source"`
	Metadata  any    `json:"metadata,omitempty"`
	Role      string `json:"role"`
	ToolCalls any    `json:"tool_calls,omitempty"`
	Model     string `json:"model"`
}

type modelOutput struct {
	Model      string   `json:"model"`
	Choices    []choice `json:"choices"`
	Completion string   `json:"completion"`
	Usage      any      `json:"usage,omitempty"`
	Time       any      `json:"time,omitempty"`
	Metadata   any      `json:"metadata,omitempty"`
	Error      any      `json:"error,omitempty"`
}

type choice struct {
	Message    assistantMessage `json:"message"`
	StopReason string           `json:"stop_reason"`
	Logprobs   any              `json:"logprobs,omitempty"`
}

type score struct {
	Value       float64        `json:"value"`
	Answer      string         `json:"answer"`
	Explanation string         `json:"explanation"`
	Metadata    map[string]any `json:"metadata"`
	History     []any          `json:"history"`
}

type reduction struct {
	Scorer  string         `json:"scorer"`
	Reducer any            `json:"reducer,omitempty"`
	Samples []reducedScore `json:"samples"`
}

type reducedScore struct {
	Value       float64 `json:"value"`
	Answer      any     `json:"answer,omitempty"`
	Explanation any     `json:"explanation,omitempty"`
	Metadata    any     `json:"metadata,omitempty"`
	History     []any   `json:"history"`
	SampleID    string  `json:"sample_id"`
}
