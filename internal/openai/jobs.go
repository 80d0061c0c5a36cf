package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// The typed half of the client: the fine-tuning and file-listing calls that
// go-openai lacks, in OpenAI's wire format (finetuning-spec-subset.json).

const pageLimit = 100

// do sends a JSON request through the shared transport and decodes a JSON
// answer into out (if non-nil).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := c.baseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.tr.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("decode %s %s answer: %w", method, path, err)
	}
	return nil
}

// Wire types.

type createJobBody struct {
	Model        string            `json:"model"`
	TrainingFile string            `json:"training_file"`
	Suffix       string            `json:"suffix,omitempty"`
	Seed         *int              `json:"seed,omitempty"`
	Method       wireMethod        `json:"method"`
	Metadata     map[string]string `json:"metadata,omitempty"`
}

type wireMethod struct {
	Type       string          `json:"type"`
	Supervised *wireSupervised `json:"supervised,omitempty"`
}

type wireSupervised struct {
	Hyperparameters *wireHyper `json:"hyperparameters,omitempty"`
}

// wireHyper omits zeros so that OpenAI picks "auto" for them.
type wireHyper struct {
	NEpochs                autoNumber `json:"n_epochs,omitempty"`
	LearningRateMultiplier autoNumber `json:"learning_rate_multiplier,omitempty"`
	BatchSize              autoNumber `json:"batch_size,omitempty"`
}

// autoNumber is a hyperparameter: a number, or "auto" (read as 0) until
// OpenAI resolves it.
type autoNumber float64

func (n *autoNumber) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		// "auto", null, or a future spelling: unknown, not fatal to
		// reading the job.
		*n = 0
		return nil
	}
	*n = autoNumber(f)
	return nil
}

type wireJob struct {
	ID                 string            `json:"id"`
	Status             string            `json:"status"`
	Model              string            `json:"model"`
	FineTunedModel     string            `json:"fine_tuned_model"`
	TrainingFile       string            `json:"training_file"`
	UserProvidedSuffix string            `json:"user_provided_suffix"`
	Seed               int               `json:"seed"`
	Hyperparameters    *wireHyper        `json:"hyperparameters"`
	Method             *wireMethod       `json:"method"`
	Metadata           map[string]string `json:"metadata"`
	CreatedAt          int64             `json:"created_at"`
	FinishedAt         int64             `json:"finished_at"`
	Error              *struct {
		Code    json.RawMessage `json:"code"`
		Message json.RawMessage `json:"message"`
		Param   json.RawMessage `json:"param"`
	} `json:"error"`
}

type jobList struct {
	Data    []wireJob `json:"data"`
	HasMore bool      `json:"has_more"`
}

type wireEvent struct {
	ID        string          `json:"id"`
	CreatedAt int64           `json:"created_at"`
	Level     string          `json:"level"`
	Type      string          `json:"type"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
}

type eventList struct {
	Data    []wireEvent `json:"data"`
	HasMore bool        `json:"has_more"`
}

type wireFile struct {
	ID        string `json:"id"`
	Bytes     int64  `json:"bytes"`
	Filename  string `json:"filename"`
	Purpose   string `json:"purpose"`
	Status    string `json:"status"`
	ExpiresAt int64  `json:"expires_at"`
}

type fileList struct {
	Data    []wireFile `json:"data"`
	HasMore bool       `json:"has_more"`
}

func (w wireJob) toJob() provider.Job {
	j := provider.Job{
		ID:             w.ID,
		Status:         w.Status,
		Model:          w.Model,
		FineTunedModel: w.FineTunedModel,
		TrainingFile:   w.TrainingFile,
		Suffix:         w.UserProvidedSuffix,
		Seed:           w.Seed,
		Metadata:       w.Metadata,
	}
	if j.Suffix == "" {
		j.Suffix = suffixOf(w.FineTunedModel)
	}
	// Newer jobs report hyperparameters under method; the top-level field
	// is deprecated but still filled for older ones.
	h := w.Hyperparameters
	if w.Method != nil && w.Method.Supervised != nil && w.Method.Supervised.Hyperparameters != nil {
		h = w.Method.Supervised.Hyperparameters
	}
	if h != nil {
		j.Hyperparameters = provider.Hyperparameters{
			NEpochs:                int(h.NEpochs),
			LearningRateMultiplier: float64(h.LearningRateMultiplier),
			BatchSize:              int(h.BatchSize),
		}
	}
	if w.CreatedAt > 0 {
		j.CreatedAt = time.Unix(w.CreatedAt, 0).UTC()
	}
	if w.FinishedAt > 0 {
		j.FinishedAt = time.Unix(w.FinishedAt, 0).UTC()
	}
	// A succeeded job carries "error": {} rather than null.
	if w.Error != nil {
		e := provider.JobError{
			Code:    looseString(w.Error.Code),
			Message: looseString(w.Error.Message),
			Param:   looseString(w.Error.Param),
		}
		if e.Code != "" || e.Message != "" {
			j.Error = &e
		}
	}
	return j
}

// suffixOf reads the suffix out of "ft:<base>:<org>:<suffix>:<id>".
func suffixOf(model string) string {
	parts := strings.Split(model, ":")
	if len(parts) == 5 && parts[0] == "ft" {
		return parts[3]
	}
	return ""
}

// CreateJob starts a supervised fine-tune. It is never resent once it may
// have reached OpenAI: if the outcome is unknown the error matches
// ErrMaybeCreated, and the caller should ListJobs by req.Metadata and adopt
// what it finds before creating again. Refusals match ErrModelShutDown,
// ErrModelUnavailable, ErrFineTuningClosed, ErrDailyJobLimit or
// ErrInsufficientQuota.
func (c *Client) CreateJob(ctx context.Context, req provider.JobRequest) (provider.Job, error) {
	if err := validateJob(req); err != nil {
		return provider.Job{}, fmt.Errorf("openai: create fine-tuning job: %w", err)
	}
	seed := req.Seed // always sent: an unset seed would be random, not reproducible
	body := createJobBody{
		Model:        req.Model,
		TrainingFile: req.TrainingFile,
		Suffix:       req.Suffix,
		Seed:         &seed,
		Method:       wireMethod{Type: "supervised", Supervised: &wireSupervised{}},
		Metadata:     req.Metadata,
	}
	if hp := req.Hyperparameters; hp != (provider.Hyperparameters{}) {
		body.Method.Supervised.Hyperparameters = &wireHyper{
			NEpochs:                autoNumber(hp.NEpochs),
			LearningRateMultiplier: autoNumber(hp.LearningRateMultiplier),
			BatchSize:              autoNumber(hp.BatchSize),
		}
	}
	var w wireJob
	if err := c.do(withNoReplay(ctx), http.MethodPost, "/fine_tuning/jobs", nil, body, &w); err != nil {
		classifyJobRefusal(err, req.Model)
		return provider.Job{}, fmt.Errorf("openai: create fine-tuning job on %s: %w", req.Model, err)
	}
	return w.toJob(), nil
}

// validateJob rejects what OpenAI would refuse (limits from the API
// reference), before spending a request.
func validateJob(req provider.JobRequest) error {
	hp := req.Hyperparameters
	switch {
	case req.Model == "":
		return errors.New("no model")
	case req.TrainingFile == "":
		return errors.New("no training file")
	case utf8.RuneCountInString(req.Suffix) > 64:
		return fmt.Errorf("suffix %q longer than 64 characters", req.Suffix)
	case req.Seed < 0 || req.Seed > 2147483647:
		return fmt.Errorf("seed %d outside [0, 2147483647]", req.Seed)
	case hp.NEpochs < 0 || hp.NEpochs > 50:
		return fmt.Errorf("n_epochs %d outside [1, 50]", hp.NEpochs)
	case hp.BatchSize < 0 || hp.BatchSize > 256:
		return fmt.Errorf("batch_size %d outside [1, 256]", hp.BatchSize)
	case hp.LearningRateMultiplier < 0 || math.IsNaN(hp.LearningRateMultiplier) || math.IsInf(hp.LearningRateMultiplier, 0):
		return fmt.Errorf("learning_rate_multiplier %v is not positive", hp.LearningRateMultiplier)
	case len(req.Metadata) > 16:
		return fmt.Errorf("%d metadata pairs, at most 16", len(req.Metadata))
	}
	for k, v := range req.Metadata {
		if k == "" || utf8.RuneCountInString(k) > 64 {
			return fmt.Errorf("metadata key %q must be 1 to 64 characters", k)
		}
		if utf8.RuneCountInString(v) > 512 {
			return fmt.Errorf("metadata %q value longer than 512 characters", k)
		}
	}
	return nil
}

// GetJob returns the job's current state.
func (c *Client) GetJob(ctx context.Context, id string) (provider.Job, error) {
	if id == "" {
		return provider.Job{}, errors.New("openai: get fine-tuning job: empty id")
	}
	var w wireJob
	if err := c.do(ctx, http.MethodGet, "/fine_tuning/jobs/"+url.PathEscape(id), nil, nil, &w); err != nil {
		return provider.Job{}, fmt.Errorf("openai: get fine-tuning job %s: %w", id, err)
	}
	return w.toJob(), nil
}

// CancelJob asks OpenAI to stop the job and returns its state.
func (c *Client) CancelJob(ctx context.Context, id string) (provider.Job, error) {
	if id == "" {
		return provider.Job{}, errors.New("openai: cancel fine-tuning job: empty id")
	}
	var w wireJob
	if err := c.do(ctx, http.MethodPost, "/fine_tuning/jobs/"+url.PathEscape(id)+"/cancel", nil, nil, &w); err != nil {
		return provider.Job{}, fmt.Errorf("openai: cancel fine-tuning job %s: %w", id, err)
	}
	return w.toJob(), nil
}

// ListJobs returns every job whose metadata holds all the given pairs
// (all jobs if none), newest first, as OpenAI orders them.
func (c *Client) ListJobs(ctx context.Context, metadata map[string]string) ([]provider.Job, error) {
	q := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	for k, v := range metadata {
		q.Set("metadata["+k+"]", v)
	}
	var jobs []provider.Job
	after := ""
	for {
		if after != "" {
			q.Set("after", after)
		}
		var page jobList
		if err := c.do(ctx, http.MethodGet, "/fine_tuning/jobs", q, nil, &page); err != nil {
			return nil, fmt.Errorf("openai: list fine-tuning jobs %s: %w", describeFilter(metadata), err)
		}
		for _, w := range page.Data {
			// The server filters; checking again costs nothing and keeps
			// the contract if a gateway ignores the filter.
			if hasAll(w.Metadata, metadata) {
				jobs = append(jobs, w.toJob())
			}
		}
		next := lastID(page.Data, func(w wireJob) string { return w.ID })
		if !page.HasMore || next == "" || next == after {
			return jobs, nil
		}
		after = next
	}
}

// JobEvents returns all of a job's events, oldest first.
func (c *Client) JobEvents(ctx context.Context, jobID string) ([]provider.Event, error) {
	if jobID == "" {
		return nil, errors.New("openai: list fine-tuning job events: empty job id")
	}
	path := "/fine_tuning/jobs/" + url.PathEscape(jobID) + "/events"
	q := url.Values{"limit": {strconv.Itoa(pageLimit)}}
	var events []provider.Event
	after := ""
	for {
		if after != "" {
			q.Set("after", after)
		}
		var page eventList
		if err := c.do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return nil, fmt.Errorf("openai: list events of fine-tuning job %s: %w", jobID, err)
		}
		for _, w := range page.Data {
			events = append(events, provider.Event{
				ID:        w.ID,
				CreatedAt: time.Unix(w.CreatedAt, 0).UTC(),
				Level:     w.Level,
				Type:      w.Type,
				Message:   w.Message,
				Data:      w.Data,
			})
		}
		next := lastID(page.Data, func(w wireEvent) string { return w.ID })
		if !page.HasMore || next == "" || next == after {
			break
		}
		after = next
	}
	// OpenAI pages newest first; a build log reads better in order.
	// Pages come newest first; reverse, then order by time, so events within
	// one second keep their true order.
	slices.Reverse(events)
	sort.SliceStable(events, func(i, j int) bool { return events[i].CreatedAt.Before(events[j].CreatedAt) })
	return events, nil
}

// findFile returns the newest fine-tune file named filename with the given
// size, or nil.
func (c *Client) findFile(ctx context.Context, filename string, size int64) (*provider.File, error) {
	q := url.Values{"purpose": {"fine-tune"}, "limit": {"10000"}, "order": {"desc"}}
	after := ""
	// A file that is about to expire would vanish under the job.
	soon := time.Now().Add(24 * time.Hour).Unix()
	for {
		if after != "" {
			q.Set("after", after)
		}
		var page fileList
		if err := c.do(ctx, http.MethodGet, "/files", q, nil, &page); err != nil {
			return nil, fmt.Errorf("list files: %w", err)
		}
		for _, f := range page.Data {
			if f.Filename == filename && f.Bytes == size && f.Purpose == "fine-tune" &&
				f.Status != "error" && (f.ExpiresAt == 0 || f.ExpiresAt > soon) {
				return &provider.File{ID: f.ID, Name: f.Filename, Bytes: f.Bytes}, nil
			}
		}
		next := lastID(page.Data, func(f wireFile) string { return f.ID })
		if !page.HasMore || next == "" || next == after {
			return nil, nil
		}
		after = next
	}
}

func lastID[T any](items []T, id func(T) string) string {
	if len(items) == 0 {
		return ""
	}
	return id(items[len(items)-1])
}

func hasAll(have, want map[string]string) bool {
	for k, v := range want {
		if got, ok := have[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func describeFilter(metadata map[string]string) string {
	if len(metadata) == 0 {
		return "(no filter)"
	}
	keys := make([]string, 0, len(metadata))
	for k := range metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + metadata[k]
	}
	return "with metadata " + strings.Join(parts, ",")
}
