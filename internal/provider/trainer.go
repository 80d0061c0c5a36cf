package provider

import (
	"context"
	"time"
)

// Trainer turns training data into a trained model, idempotently by the
// build's target key: a second Train with a key it has seen adopts or
// resumes what the first started (a recorded job, a checkpoint) and never
// pays for the same work twice, even after the first process was killed at
// any point. What it starts it records durably before it waits on it.
type Trainer interface {
	// Train returns the model for req.Key, saying what it does on the
	// provider's log. A training that the service ends without a model
	// (failed, cancelled) is an error naming its job or run.
	Train(ctx context.Context, req TrainRequest) (Trained, error)
	// Recorded is what this trainer has on record for key, without asking
	// the service; nil when it has started nothing for it.
	Recorded(key string) (*Progress, error)
	// Status lists every recorded training as the service sees it now, so a
	// second process can show a running build's progress.
	Status(ctx context.Context) ([]Progress, error)
	// Cancel stops every recorded training that has not ended and returns
	// those it stopped.
	Cancel(ctx context.Context) ([]Progress, error)
}

// TrainRequest is one training target's work.
type TrainRequest struct {
	Key             string   // the target key: same key, same work, done once
	Models          []string // the experiment's models it serves, for records and messages
	Data            []byte   // training examples, chat JSON lines
	BaseModel       string
	Suffix          string
	Seed            int
	Hyperparameters Hyperparameters
	// Gone is a model trained for this key before that the provider no
	// longer serves (deleted, its base shut down): whatever made it must
	// not be adopted again.
	Gone string
}

// Trained is a trained model's reference.
type Trained struct {
	// Model is what a Sampler takes as ChatRequest.Model: a fine-tuned
	// model id, a tinker:// path.
	Model           string
	JobID           string // the service's handle of the work: job or run id
	BaseModel       string
	Hyperparameters Hyperparameters // as the service resolved them
	// Files are local files (absolute paths) the model lives in; the build
	// records them with the training target's outputs.
	Files []string
}

// Progress is one training as last seen: live from the service, or from
// the trainer's record.
type Progress struct {
	Key      string
	Models   []string
	Provider string // name of the provider it was started on
	JobID    string
	State    string // one of the Status* values
	// Step of Steps, for a trainer that drives the loop itself; 0 if unknown.
	Step, Steps int
	Loss        *float64 // last training loss, when known
	Model       string   // the trained model, once there is one
	Event       string   // the newest line of the service's log, if it keeps one
	Error       string   // why it failed, or why it could not be queried
	Started     time.Time
	Finished    time.Time
}

// RecordName is the file name of a training key's durable records (a job
// record, a spending-ledger entry): the key's first 16 hex digits.
func RecordName(key string) string {
	return key[:min(16, len(key))] + ".json"
}
