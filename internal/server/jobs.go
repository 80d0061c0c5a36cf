package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// createJobRequest is the body of POST /v1/fine_tuning/jobs.
// Hyperparameters stay raw until their parameter path is known, so that
// errors can name it.
type createJobRequest struct {
	Model           *string           `json:"model"`
	TrainingFile    *string           `json:"training_file"`
	Hyperparameters *rawHyper         `json:"hyperparameters"`
	Suffix          *string           `json:"suffix"`
	ValidationFile  *string           `json:"validation_file"`
	Integrations    json.RawMessage   `json:"integrations"`
	Seed            *int64            `json:"seed"`
	Method          *methodRequest    `json:"method"`
	Metadata        map[string]string `json:"metadata"`
}

type methodRequest struct {
	Type       string `json:"type"`
	Supervised *struct {
		Hyperparameters *rawHyper `json:"hyperparameters"`
	} `json:"supervised"`
}

type rawHyper struct {
	NEpochs                json.RawMessage `json:"n_epochs"`
	BatchSize              json.RawMessage `json:"batch_size"`
	LearningRateMultiplier json.RawMessage `json:"learning_rate_multiplier"`
}

// jobObject is OpenAI's fine_tuning.job object. user_provided_suffix is
// not in the OpenAPI schema but OpenAI sends it, and clients read it.
type jobObject struct {
	Object             string            `json:"object"`
	ID                 string            `json:"id"`
	Model              string            `json:"model"`
	CreatedAt          int64             `json:"created_at"`
	FinishedAt         *int64            `json:"finished_at"`
	FineTunedModel     *string           `json:"fine_tuned_model"`
	OrganizationID     string            `json:"organization_id"`
	ResultFiles        []string          `json:"result_files"`
	Status             string            `json:"status"`
	ValidationFile     *string           `json:"validation_file"`
	TrainingFile       string            `json:"training_file"`
	Hyperparameters    hyperObject       `json:"hyperparameters"`
	TrainedTokens      *int64            `json:"trained_tokens"`
	Error              *jobErrorObject   `json:"error"`
	Seed               int               `json:"seed"`
	Integrations       []any             `json:"integrations"`
	EstimatedFinish    *int64            `json:"estimated_finish"`
	Method             methodObject      `json:"method"`
	Metadata           map[string]string `json:"metadata"`
	UserProvidedSuffix *string           `json:"user_provided_suffix"`
}

// hyperObject holds numbers, or "auto" where the provider did not say.
type hyperObject struct {
	NEpochs                any `json:"n_epochs"`
	BatchSize              any `json:"batch_size"`
	LearningRateMultiplier any `json:"learning_rate_multiplier"`
}

type methodObject struct {
	Type       string `json:"type"`
	Supervised struct {
		Hyperparameters hyperObject `json:"hyperparameters"`
	} `json:"supervised"`
}

type jobErrorObject struct {
	Code    string  `json:"code"`
	Message string  `json:"message"`
	Param   *string `json:"param"`
}

type jobList struct {
	Object  string      `json:"object"`
	Data    []jobObject `json:"data"`
	HasMore bool        `json:"has_more"`
}

type eventObject struct {
	Object    string `json:"object"`
	ID        string `json:"id"`
	CreatedAt int64  `json:"created_at"`
	Level     string `json:"level"`
	Message   string `json:"message"`
	Type      string `json:"type"`
}

type eventList struct {
	Object  string        `json:"object"`
	Data    []eventObject `json:"data"`
	HasMore bool          `json:"has_more"`
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request) error {
	var body createJobRequest
	if err := decodeJSON(w, r, &body); err != nil {
		return err
	}
	req, err := s.jobRequest(body)
	if err != nil {
		return err
	}
	if !s.modelExists(r.Context(), req.Model) {
		return modelNotAvailable(req.Model)
	}
	job, err := s.p.CreateJob(r.Context(), req)
	var param *provider.ParamError
	switch {
	case errors.As(err, &param) && param.Param == "model":
		return modelNotAvailable(req.Model)
	case errors.As(err, &param) && param.Param == "training_file":
		return badRequest("training_file", "invalid training_file: %s", req.TrainingFile)
	case errors.Is(err, provider.ErrInvalid):
		return badRequest("", "%v", err)
	case err != nil:
		return err
	}
	n := s.count.jobCreations.Add(1)
	injected := ""
	if f, ok := s.jobFailure(req.Suffix); ok {
		s.mu.Lock()
		s.doomed[job.ID] = &doom{err: provider.JobError{Code: f.Code, Message: f.Message, Param: f.Param}}
		s.mu.Unlock()
		s.count.jobFailures.Add(1)
		injected = fmt.Sprintf(", set to fail with %s", f.Code)
	}
	s.log.Printf("job creation #%d: %s on %s, training file %s, suffix %q, metadata %v%s",
		n, job.ID, job.Model, job.TrainingFile, job.Suffix, job.Metadata, injected)
	writeJSON(w, http.StatusOK, s.present(job))
	return nil
}

func modelNotAvailable(model string) error {
	return badRequest("model", "Model %s is not available for fine-tuning or does not exist.", model).withCode("model_not_available")
}

func (e *apiError) withCode(code string) *apiError {
	e.code = code
	return e
}

// jobRequest validates a job request as OpenAI does (limits from the API
// reference) and converts it.
func (s *Server) jobRequest(b createJobRequest) (provider.JobRequest, error) {
	var req provider.JobRequest
	switch {
	case b.Model == nil || *b.Model == "":
		return req, badRequest("model", "Missing required parameter: 'model'.")
	case b.TrainingFile == nil || *b.TrainingFile == "":
		return req, badRequest("training_file", "Missing required parameter: 'training_file'.")
	case b.ValidationFile != nil:
		return req, badRequest("validation_file", "This server does not support validation files.")
	case len(b.Integrations) > 0 && !bytes.Equal(b.Integrations, []byte("null")) && !bytes.Equal(b.Integrations, []byte("[]")):
		return req, badRequest("integrations", "This server does not support integrations.")
	case b.Suffix != nil && utf8.RuneCountInString(*b.Suffix) > 64:
		return req, badRequest("suffix", "Invalid 'suffix': string too long. Expected a string with maximum length 64, but got a string with length %d instead.", utf8.RuneCountInString(*b.Suffix))
	case b.Seed != nil && (*b.Seed < 0 || *b.Seed > math.MaxInt32):
		return req, badRequest("seed", "Invalid 'seed': expected an integer between 0 and 2147483647, got %d.", *b.Seed)
	case len(b.Metadata) > 16:
		return req, badRequest("metadata", "Invalid 'metadata': too many properties. Expected an object with at most 16 properties, but got an object with %d properties instead.", len(b.Metadata))
	}
	for k, v := range b.Metadata {
		if k == "" || utf8.RuneCountInString(k) > 64 {
			return req, badRequest("metadata", "Invalid 'metadata': key '%s' must be 1 to 64 characters long.", k)
		}
		if utf8.RuneCountInString(v) > 512 {
			return req, badRequest("metadata."+k, "Invalid 'metadata.%s': string too long. Expected a string with maximum length 512.", k)
		}
	}
	hyper, path := b.Hyperparameters, "hyperparameters"
	if m := b.Method; m != nil {
		if m.Type != "supervised" {
			return req, badRequest("method.type", "This server supports only supervised fine-tuning, not method '%s'.", m.Type)
		}
		if m.Supervised != nil && m.Supervised.Hyperparameters != nil {
			if hyper != nil {
				return req, badRequest("hyperparameters", "Specify hyperparameters under method.supervised only, not also at the top level.")
			}
			hyper, path = m.Supervised.Hyperparameters, "method.supervised.hyperparameters"
		}
	}
	var hp provider.Hyperparameters
	if hyper != nil {
		var err error
		if hp, err = parseHyper(*hyper, path); err != nil {
			return req, err
		}
	}
	req = provider.JobRequest{
		Model:           *b.Model,
		TrainingFile:    *b.TrainingFile,
		Hyperparameters: hp,
		Metadata:        b.Metadata,
	}
	if b.Suffix != nil {
		req.Suffix = *b.Suffix
	}
	if b.Seed != nil {
		req.Seed = int(*b.Seed)
	} else {
		// OpenAI picks a seed when none is given; deriving it from the
		// request keeps reruns reproducible.
		h := fnv.New32a()
		fmt.Fprintf(h, "%q %q %q", req.Model, req.TrainingFile, req.Suffix)
		req.Seed = int(h.Sum32() & math.MaxInt32)
	}
	return req, nil
}

// parseHyper reads hyperparameters; "auto", null and absent leave the
// provider's default (zero).
func parseHyper(h rawHyper, path string) (provider.Hyperparameters, error) {
	var hp provider.Hyperparameters
	epochs, err := autoNumber(h.NEpochs, path+".n_epochs", true, 1, 50)
	if err != nil {
		return hp, err
	}
	batch, err := autoNumber(h.BatchSize, path+".batch_size", true, 1, 256)
	if err != nil {
		return hp, err
	}
	lr, err := autoNumber(h.LearningRateMultiplier, path+".learning_rate_multiplier", false, 0, math.Inf(1))
	if err != nil {
		return hp, err
	}
	return provider.Hyperparameters{NEpochs: int(epochs), BatchSize: int(batch), LearningRateMultiplier: lr}, nil
}

// autoNumber parses "auto" (0) or a number in [lo, hi]; lo is exclusive for
// non-integers, as the learning rate multiplier must be positive.
func autoNumber(raw json.RawMessage, param string, integer bool, lo, hi float64) (float64, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "auto" {
			return 0, nil
		}
		return 0, badRequest(param, "Invalid '%s': expected 'auto' or a number, got '%s'.", param, s)
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, badRequest(param, "Invalid '%s': expected 'auto' or a number, got %s.", param, raw)
	}
	switch {
	case integer && (v != math.Trunc(v) || v < lo || v > hi):
		return 0, badRequest(param, "Invalid '%s': expected 'auto' or an integer between %g and %g, got %s.", param, lo, hi, raw)
	case !integer && !(v > lo && v <= hi):
		return 0, badRequest(param, "Invalid '%s': expected 'auto' or a number above %g, got %s.", param, lo, raw)
	}
	return v, nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	job, err := s.fetchJob(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.present(job))
	return nil
}

func (s *Server) fetchJob(ctx context.Context, id string) (provider.Job, error) {
	job, err := s.p.GetJob(ctx, id)
	if errors.Is(err, provider.ErrNotFound) {
		return job, jobNotFound(id)
	}
	if err != nil {
		return job, err
	}
	return job, nil
}

func jobNotFound(id string) error {
	return notFound("fine_tuning_job_id", "", "No fine-tuning job found with id '%s'.", id)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"), 20, math.MaxInt)
	if err != nil {
		return err
	}
	filter := map[string]string{}
	noMetadata := false
	for k, vs := range q {
		if name, ok := strings.CutPrefix(k, "metadata["); ok && strings.HasSuffix(name, "]") {
			filter[strings.TrimSuffix(name, "]")] = vs[0]
		}
		if k == "metadata" && vs[0] == "null" {
			noMetadata = true // the spec's way to ask for jobs without metadata
		}
	}
	jobs, err := s.p.ListJobs(r.Context(), filter)
	if err != nil {
		return err
	}
	if noMetadata {
		jobs = slices.DeleteFunc(jobs, func(j provider.Job) bool { return len(j.Metadata) > 0 })
	}
	// Newest first, as OpenAI lists them; the provider promises no order.
	sort.SliceStable(jobs, func(i, k int) bool { return newer(jobs[i], jobs[k]) })
	if after := q.Get("after"); after != "" {
		cursor, err := s.fetchJob(r.Context(), after)
		if err != nil {
			return err
		}
		// Positional, not by index, so the cursor need not match the filter.
		i := sort.Search(len(jobs), func(i int) bool { return !newer(jobs[i], cursor) && jobs[i].ID != cursor.ID })
		jobs = jobs[i:]
	}
	list := jobList{Object: "list", Data: []jobObject{}}
	if len(jobs) > limit {
		jobs, list.HasMore = jobs[:limit], true
	}
	for _, j := range jobs {
		list.Data = append(list.Data, s.present(j))
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// newer orders jobs newest first, by id among those created together.
func newer(a, b provider.Job) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	job, err := s.p.CancelJob(r.Context(), id)
	switch {
	case errors.Is(err, provider.ErrNotFound):
		return jobNotFound(id)
	case errors.Is(err, provider.ErrConflict):
		return badRequest("", "Job %s has already %s and cannot be cancelled.", id, s.present(job).Status)
	case err != nil:
		return err
	}
	s.count.jobCancellations.Add(1)
	writeJSON(w, http.StatusOK, s.present(job))
	return nil
}

// present turns a provider job into OpenAI's job object, applying an
// injected failure and noting when each state was first reported.
func (s *Server) present(j provider.Job) jobObject {
	s.mu.Lock()
	if d, ok := s.doomed[j.ID]; ok && provider.Terminal(j.Status) {
		d.settled = true
		if j.Status == provider.StatusSucceeded {
			// The provider finished the job; report it failed at that moment.
			s.hidden[j.FineTunedModel] = true
			jerr := d.err
			j.Status, j.FineTunedModel, j.Error = provider.StatusFailed, "", &jerr
		}
	}
	seen := s.seen[j.ID]
	if seen == nil {
		seen = map[string]time.Time{}
		s.seen[j.ID] = seen
	}
	if _, ok := seen[j.Status]; !ok {
		seen[j.Status] = time.Now()
	}
	s.mu.Unlock()

	hp := hyperObject{NEpochs: autoIfZero(j.Hyperparameters.NEpochs), BatchSize: autoIfZero(j.Hyperparameters.BatchSize),
		LearningRateMultiplier: autoIfZero(j.Hyperparameters.LearningRateMultiplier)}
	o := jobObject{
		Object:          "fine_tuning.job",
		ID:              j.ID,
		Model:           j.Model,
		CreatedAt:       j.CreatedAt.Unix(),
		OrganizationID:  s.org,
		ResultFiles:     []string{},
		Status:          j.Status,
		TrainingFile:    j.TrainingFile,
		Hyperparameters: hp,
		Seed:            j.Seed,
		Metadata:        j.Metadata,
	}
	o.Method.Type = "supervised"
	o.Method.Supervised.Hyperparameters = hp
	if len(o.Metadata) == 0 {
		o.Metadata = nil
	}
	if !j.FinishedAt.IsZero() {
		t := j.FinishedAt.Unix()
		o.FinishedAt = &t
	}
	o.FineTunedModel = nullable(j.FineTunedModel)
	o.UserProvidedSuffix = nullable(j.Suffix)
	if j.Error != nil {
		o.Error = &jobErrorObject{Code: j.Error.Code, Message: j.Error.Message, Param: nullable(j.Error.Param)}
	}
	return o
}

func autoIfZero[T int | float64](v T) any {
	if v == 0 {
		return "auto"
	}
	return v
}

// modelExists reports whether model may be used: a served base model, or a
// fine-tuned model that is not the fine-tune of a job made to fail. Whether
// the provider has the fine-tune is for the provider to say.
func (s *Server) modelExists(ctx context.Context, model string) bool {
	if !strings.HasPrefix(model, "ft:") {
		return s.isBase[model]
	}
	s.mu.Lock()
	hidden := s.hidden[model] || s.deleted[model]
	var pending []string
	for id, d := range s.doomed {
		if !d.settled {
			pending = append(pending, id)
		}
	}
	s.mu.Unlock()
	if hidden {
		return false
	}
	// Doomed jobs not looked at since they finished are looked at now, so
	// that a client guessing the model's name cannot use it early.
	for _, id := range pending {
		if j, err := s.p.GetJob(ctx, id); err == nil && j.FineTunedModel == model {
			s.present(j)
			return false
		}
	}
	return true
}

func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	q := r.URL.Query()
	limit, err := limitParam(q.Get("limit"), 20, math.MaxInt)
	if err != nil {
		return err
	}
	job, err := s.fetchJob(r.Context(), id)
	if err != nil {
		return err
	}
	events := s.events(job, s.present(job))
	slices.Reverse(events) // newest first, as OpenAI pages them
	if after := q.Get("after"); after != "" {
		i := slices.IndexFunc(events, func(e eventObject) bool { return e.ID == after })
		if i < 0 {
			return badRequest("after", "No event '%s' of job %s to list after.", after, id)
		}
		events = events[i+1:]
	}
	list := eventList{Object: "list", Data: events}
	if len(events) > limit {
		list.Data, list.HasMore = events[:limit], true
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

// events synthesises a job's log, oldest first, from the states it went
// through. A state's time is when the server first reported it; one it never
// reported is dated to the next known time (it happened by then).
func (s *Server) events(j provider.Job, o jobObject) []eventObject {
	s.mu.Lock()
	seen := map[string]time.Time{}
	for k, v := range s.seen[j.ID] {
		seen[k] = v
	}
	_, doomed := s.doomed[j.ID]
	s.mu.Unlock()

	type step struct {
		key, level, msg string
		at              time.Time
	}
	steps := []step{
		{key: "created", msg: "Created fine-tuning job: " + j.ID, at: j.CreatedAt},
		{key: provider.StatusValidatingFiles, msg: "Validating training file: " + j.TrainingFile, at: j.CreatedAt},
	}
	_, sawQueued := seen[provider.StatusQueued]
	_, sawRunning := seen[provider.StatusRunning]
	passedQueue := o.Status == provider.StatusQueued || o.Status == provider.StatusRunning || o.Status == provider.StatusSucceeded || doomed || sawQueued || sawRunning
	if passedQueue {
		steps = append(steps, step{key: provider.StatusQueued, msg: "Files validated, moving job to queued state", at: seen[provider.StatusQueued]})
	}
	if o.Status == provider.StatusRunning || o.Status == provider.StatusSucceeded || doomed || sawRunning {
		steps = append(steps, step{key: provider.StatusRunning, msg: "Fine-tuning job started", at: seen[provider.StatusRunning]})
	}
	end := seen[o.Status]
	if !j.FinishedAt.IsZero() {
		end = j.FinishedAt
	}
	switch o.Status {
	case provider.StatusSucceeded:
		steps = append(steps,
			step{key: "model", msg: "New fine-tuned model created: " + j.FineTunedModel, at: end},
			step{key: provider.StatusSucceeded, msg: "The job has successfully completed", at: end})
	case provider.StatusFailed:
		msg := "The job failed"
		if o.Error != nil {
			msg = o.Error.Message
		}
		steps = append(steps, step{key: provider.StatusFailed, level: "error", msg: msg, at: end})
	case provider.StatusCancelled:
		steps = append(steps, step{key: provider.StatusCancelled, msg: "Fine-tuning job cancelled", at: end})
	}
	// Undated steps take the next known time, then times never go back.
	for i := len(steps) - 2; i >= 0; i-- {
		if steps[i].at.IsZero() {
			steps[i].at = steps[i+1].at
		}
	}
	out := make([]eventObject, len(steps))
	for i, st := range steps {
		if i > 0 && st.at.Before(steps[i-1].at) {
			steps[i].at = steps[i-1].at
			st.at = steps[i].at
		}
		sum := sha256.Sum256([]byte(j.ID + "/" + st.key))
		level := st.level
		if level == "" {
			level = "info"
		}
		out[i] = eventObject{Object: "fine_tuning.job.event", ID: "ftevent-" + hex.EncodeToString(sum[:12]),
			CreatedAt: st.at.Unix(), Level: level, Message: st.msg, Type: "message"}
	}
	return out
}
