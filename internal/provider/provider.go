// Package provider defines what the build needs from a fine-tuning and
// inference service: files, fine-tuning jobs and chat completions with
// logprobs. The embedded local engine and the OpenAI client both implement it,
// so the orchestration code runs the same paths against either.
package provider

import (
	"context"
	"fmt"
	"time"
)

// Job states, spelled as in OpenAI's fine-tuning API.
const (
	StatusValidatingFiles = "validating_files"
	StatusQueued          = "queued"
	StatusRunning         = "running"
	StatusSucceeded       = "succeeded"
	StatusFailed          = "failed"
	StatusCancelled       = "cancelled"
)

// Terminal reports whether a job in this state will never change again.
func Terminal(status string) bool {
	return status == StatusSucceeded || status == StatusFailed || status == StatusCancelled
}

// Provider is a fine-tuning and chat service.
type Provider interface {
	// UploadFile stores a training file (purpose fine-tune). Implementations
	// may return an existing file with identical bytes instead of a new one.
	UploadFile(ctx context.Context, name string, data []byte) (File, error)
	CreateJob(ctx context.Context, req JobRequest) (Job, error)
	GetJob(ctx context.Context, id string) (Job, error)
	// ListJobs returns the jobs whose metadata holds every given pair.
	ListJobs(ctx context.Context, metadata map[string]string) ([]Job, error)
	CancelJob(ctx context.Context, id string) (Job, error)
	Chat(ctx context.Context, req ChatRequest) (ChatResponse, error)
}

// File is an uploaded training file.
type File struct {
	ID    string
	Name  string
	Bytes int64
}

// Hyperparameters of a supervised fine-tune. Zero values mean "provider default".
type Hyperparameters struct {
	NEpochs                int     `json:"n_epochs,omitempty"`
	LearningRateMultiplier float64 `json:"learning_rate_multiplier,omitempty"`
	BatchSize              int     `json:"batch_size,omitempty"`
}

// JobRequest asks for a supervised fine-tune.
type JobRequest struct {
	Model           string
	TrainingFile    string
	Suffix          string
	Seed            int
	Hyperparameters Hyperparameters
	Metadata        map[string]string
}

// JobError is the reason a job failed, as the provider reported it.
type JobError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
}

func (e *JobError) Error() string {
	if e.Code == "" {
		return e.Message
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Job is a fine-tuning job as last seen.
type Job struct {
	ID              string            `json:"id"`
	Status          string            `json:"status"`
	Model           string            `json:"model"`
	FineTunedModel  string            `json:"fine_tuned_model,omitempty"`
	TrainingFile    string            `json:"training_file"`
	Suffix          string            `json:"suffix,omitempty"`
	Seed            int               `json:"seed"`
	Hyperparameters Hyperparameters   `json:"hyperparameters"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	CreatedAt       time.Time         `json:"created_at"`
	FinishedAt      time.Time         `json:"finished_at,omitzero"`
	Error           *JobError         `json:"error,omitempty"`
}

// Message is one chat message.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatRequest is a chat completion request. Seed is optional.
type ChatRequest struct {
	Model       string
	Messages    []Message
	Temperature float64
	MaxTokens   int
	N           int
	Seed        *int
	Logprobs    bool
	TopLogprobs int
}

// TokenLogprob is one candidate token and its log probability.
type TokenLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
}

// Choice is one completion. TopLogprobs holds, when requested, the top
// candidates for the first generated token.
type Choice struct {
	Content     string
	TopLogprobs []TokenLogprob
}

// ChatResponse holds N choices.
type ChatResponse struct {
	Model   string
	Choices []Choice
}

// Event is one entry of a job's log, e.g. "Step 120/300: training loss=0.52".
type Event struct {
	CreatedAt time.Time
	Level     string // info, warn or error
	Message   string
}

// EventLister is implemented by providers that keep a log per job.
type EventLister interface {
	JobEvents(ctx context.Context, jobID string) ([]Event, error)
}
