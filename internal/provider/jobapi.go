package provider

import (
	"context"
	"fmt"
	"time"
)

// JobAPI is a fine-tuning service in the shape of OpenAI's job API: upload a
// file, create a job tagged with metadata, poll it, list by metadata, cancel.
// The OpenAI client and the local engine implement it; package jobs turns
// one into a Trainer.
type JobAPI interface {
	// UploadFile stores a training file (purpose fine-tune). Implementations
	// may return an existing file with identical bytes instead of a new one.
	UploadFile(ctx context.Context, name string, data []byte) (File, error)
	// CreateJob submits a fine-tune. An error wrapping ErrMaybeCreated means
	// the job may exist anyway.
	CreateJob(ctx context.Context, req JobRequest) (Job, error)
	// GetJob returns the job's current state; ErrNotFound if unknown.
	GetJob(ctx context.Context, id string) (Job, error)
	// ListJobs returns, newest first, the jobs whose metadata holds every pair.
	ListJobs(ctx context.Context, metadata map[string]string) ([]Job, error)
	// CancelJob stops a job; ErrConflict if it has already ended.
	CancelJob(ctx context.Context, id string) (Job, error)
}

// EventLister is implemented by job services that keep a log per job.
type EventLister interface {
	JobEvents(ctx context.Context, jobID string) ([]Event, error)
}

// StateFiles is implemented by services that keep a trained model's state
// in local files (the local engine): the files a finished job's model needs.
// They become outputs of the training target, so deleting them makes the
// training stale instead of breaking the evaluation that follows.
type StateFiles interface {
	JobFiles(jobID string) ([]string, error)
}

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
	// LoRARank is the adapter rank of a LoRA training (0 = the provider's
	// setting); only a provider that is a LoRATrainer honours it.
	LoRARank int `json:"lora_rank,omitempty"`
}

// LoRATrainer is a provider configuration that trains LoRA adapters, so
// that a per-model lora_rank means something to it; the experiment refuses
// a lora_rank for any other before a request is made.
type LoRATrainer interface {
	TrainsLoRA() bool
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

// Event is one entry of a job's log, e.g. "Step 120/300: training loss=0.52".
type Event struct {
	ID        string
	CreatedAt time.Time
	Level     string // info, warn or error
	Type      string // message or metrics, where the service says
	Message   string
	Data      []byte // metrics for Type "metrics"; may be empty
}
