package openai

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// Sentinels for errors.Is. A *APIError unwraps to the one that says what the
// refusal means, so callers can branch without parsing messages.
var (
	// ErrMaybeCreated: creating a job failed after the request may have
	// reached OpenAI (connection dropped, timeout, 5xx). The job may exist:
	// list jobs by the request's metadata and adopt it before creating again.
	ErrMaybeCreated = fmt.Errorf("the job %w: list jobs by metadata before creating it again", provider.ErrMaybeCreated)
	// ErrInsufficientQuota: the account is out of credit. Not retried.
	ErrInsufficientQuota = errors.New("OpenAI quota exhausted")
	// ErrDailyJobLimit: the organisation hit its daily fine-tuning job cap
	// for the model. Not retried.
	ErrDailyJobLimit = errors.New("daily fine-tuning job limit reached")
	// ErrModelShutDown: the model (or the base of a fine-tuned model) is a
	// snapshot OpenAI has shut down.
	ErrModelShutDown = errors.New("model shut down")
	// ErrModelUnavailable: the model cannot be fine-tuned by this
	// organisation, or does not exist.
	ErrModelUnavailable = errors.New("model not available for fine-tuning")
	// ErrFineTuningClosed: OpenAI no longer accepts fine-tuning jobs from
	// this organisation (self-serve fine-tuning is being wound down).
	ErrFineTuningClosed = errors.New("fine-tuning closed to this organisation")
)

// APIError is an error answer from the OpenAI API, after any retries.
type APIError struct {
	Status  int // HTTP status code
	Type    string
	Code    string
	Param   string
	Message string
	// RetryAfter is the wait the server asked for, if it said.
	RetryAfter time.Duration
	// Attempts is how many times the request was sent.
	Attempts int

	kind error  // sentinel for errors.Is, nil if none applies
	hint string // what the refusal means and what to do
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP %d", e.Status)
	switch {
	case e.Code != "":
		fmt.Fprintf(&b, " %s", e.Code)
	case e.Type != "":
		fmt.Fprintf(&b, " %s", e.Type)
	}
	if e.Param != "" {
		fmt.Fprintf(&b, " (param %s)", e.Param)
	}
	if e.hint != "" {
		fmt.Fprintf(&b, ": %s; %s", strings.TrimRight(e.Message, ". "), e.hint)
	} else {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (server asked to retry after %s)", e.RetryAfter.Round(time.Millisecond))
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (gave up after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Unwrap exposes the refusal's sentinel, and the provider sentinel that
// says what the status means to a caller, to errors.Is.
func (e *APIError) Unwrap() []error {
	var errs []error
	if e.kind != nil {
		errs = append(errs, e.kind)
	}
	if class := e.class(); class != nil {
		errs = append(errs, class)
	}
	return errs
}

// class maps the HTTP status to the provider's error contract. 408 and 429
// are temporary whatever their body says; so is every 5xx.
func (e *APIError) class() error {
	switch {
	case e.kind == ErrInsufficientQuota || e.kind == ErrDailyJobLimit || e.kind == ErrFineTuningClosed:
		return provider.ErrRefused
	case e.kind == ErrModelShutDown || e.Status == http.StatusNotFound:
		// A model that is shut down is one the provider no longer has.
		return provider.ErrNotFound
	case e.Status == http.StatusConflict:
		return provider.ErrConflict
	case e.Status == http.StatusBadRequest || e.Status == http.StatusUnprocessableEntity:
		return provider.ErrInvalid
	case e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests:
		return nil
	case e.Status >= 400 && e.Status < 500:
		return provider.ErrRefused
	}
	return nil
}

// redact removes the API key from anything the server echoed back.
func (e *APIError) redact(key string) {
	if len(key) < 4 {
		return
	}
	for _, s := range []*string{&e.Type, &e.Code, &e.Param, &e.Message} {
		*s = strings.ReplaceAll(*s, key, "[redacted]")
	}
}

// parseAPIError reads OpenAI's {"error": {...}} envelope; other bodies (a
// proxy's HTML page) become the message, shortened.
func parseAPIError(status int, h http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{Status: status, RetryAfter: retryAfter(h, now)}
	var env struct {
		Error *struct {
			Message json.RawMessage `json:"message"`
			Type    json.RawMessage `json:"type"`
			Param   json.RawMessage `json:"param"`
			Code    json.RawMessage `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err == nil && env.Error != nil {
		e.Message = looseString(env.Error.Message)
		e.Type = looseString(env.Error.Type)
		e.Param = looseString(env.Error.Param)
		e.Code = looseString(env.Error.Code)
	} else {
		e.Message = snippet(body)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	switch {
	case e.Code == "insufficient_quota" || e.Type == "insufficient_quota":
		e.kind = ErrInsufficientQuota
		e.hint = "the account is out of credit or over its spending limit; add credit or raise the limit, retrying will not help"
	case e.Code == "daily_rate_limit_exceeded":
		e.kind = ErrDailyJobLimit
		e.hint = "the organisation has used today's fine-tuning jobs for this model; try again tomorrow or use another base model"
	}
	return e
}

// looseString renders a JSON string, number, or list of strings as text;
// null and absent become "". Other APIs behind compatible gateways send
// numeric codes and message lists.
func looseString(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		return strings.Join(list, "; ")
	}
	return string(raw)
}

func snippet(body []byte) string {
	s := strings.TrimSpace(string(body))
	const limit = 200
	if len(s) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return strings.Join(strings.Fields(s), " ")
}

// Legacy snapshots whose shutdown OpenAI announced on 2026-04-22 for
// 2026-10-23 (developers.openai.com/api/docs/deprecations). Fine-tuned
// models on them stopped serving too.
const legacyShutdown = "2026-10-23"

var (
	shutDownModels = map[string]bool{
		"gpt-4.1-nano":            true,
		"gpt-4.1-nano-2025-04-14": true,
		"o4-mini-2025-04-16":      true,
		"gpt-4o-2024-05-13":       true,
		"gpt-3.5-turbo-0125":      true,
	}
	// Bases whose fine-tunes were shut down; a base matches itself and its
	// dated snapshots ("gpt-4" matches "gpt-4-0613", not "gpt-4o").
	shutDownFineTuneBases = []string{
		"gpt-4.1-nano-2025-04-14",
		"o4-mini-2025-04-16",
		"gpt-3.5-turbo",
		"gpt-4",
	}
)

// Base models still listed as fine-tunable, offered as replacements.
const suggestedBaseModels = "gpt-4.1-mini-2025-04-14, gpt-4.1-2025-04-14 or gpt-4o-mini-2024-07-18"

// shutDown reports whether model, or the base of fine-tuned model
// "ft:<base>:<org>:<suffix>:<id>", was shut down, and which name it was.
func shutDown(model string) (name string, fineTuned bool, ok bool) {
	if base, found := strings.CutPrefix(model, "ft:"); found {
		base, _, _ = strings.Cut(base, ":")
		for _, b := range shutDownFineTuneBases {
			if base == b || strings.HasPrefix(base, b+"-") {
				return base, true, true
			}
		}
		return "", false, false
	}
	return model, false, shutDownModels[model]
}

// modelRefusal reports whether an error is about the model itself rather
// than the request or account.
func modelRefusal(e *APIError, model string) bool {
	if e.Status != http.StatusBadRequest && e.Status != http.StatusForbidden && e.Status != http.StatusNotFound {
		return false
	}
	code := strings.ToLower(e.Code)
	return strings.Contains(code, "model") || e.Param == "model" ||
		(model != "" && strings.Contains(e.Message, model))
}

// classifyJobRefusal names what a refused job creation means, so the build
// can report "pick another base model" rather than an opaque 400.
func classifyJobRefusal(err error, model string) {
	var e *APIError
	if !errors.As(err, &e) || e.kind != nil {
		return
	}
	if modelRefusal(e, model) {
		if name, _, ok := shutDown(model); ok {
			e.kind = ErrModelShutDown
			e.hint = fmt.Sprintf("base model %s is a legacy snapshot OpenAI shut down on %s; pick another base model (e.g. %s)",
				name, legacyShutdown, suggestedBaseModels)
			return
		}
	}
	msg := strings.ToLower(e.Message)
	// A 403 also answers a key without the fine-tuning scope or a blocked
	// region; those keep their own message.
	otherForbidden := strings.Contains(msg, "scope") || strings.Contains(e.Code, "region")
	if (e.Status == http.StatusForbidden && !otherForbidden) ||
		(strings.Contains(msg, "fine-tun") && (strings.Contains(msg, "no longer") || strings.Contains(msg, "organization"))) {
		e.kind = ErrFineTuningClosed
		e.hint = "OpenAI is winding down self-serve fine-tuning: since 2026-05-07 it is closed to organisations that never fine-tuned, " +
			"since 2026-07-02 to those with no fine-tuned-model inference in the past 60 days, and from 2027-01-06 to everyone; " +
			"fine-tuned models keep serving; train with the local engine instead"
		return
	}
	if modelRefusal(e, model) {
		e.kind = ErrModelUnavailable
		e.hint = fmt.Sprintf("model %s cannot be fine-tuned by this organisation or does not exist; pick a supported base model (e.g. %s)",
			model, suggestedBaseModels)
	}
}

// classifyChatRefusal explains a chat call to a model that no longer serves.
func classifyChatRefusal(err error, model string) {
	var e *APIError
	if !errors.As(err, &e) || e.kind != nil || !modelRefusal(e, model) {
		return
	}
	name, fineTuned, ok := shutDown(model)
	if !ok {
		return
	}
	e.kind = ErrModelShutDown
	if fineTuned {
		e.hint = fmt.Sprintf("fine-tuned models on %s stopped serving when OpenAI shut that base down on %s; fine-tune again on another base model (e.g. %s)",
			name, legacyShutdown, suggestedBaseModels)
		return
	}
	e.hint = fmt.Sprintf("model %s is a legacy snapshot OpenAI shut down on %s; pick another model", name, legacyShutdown)
}

// RetryDelay is the wait the server asked for (provider.RetryAfter reads it).
func (e *APIError) RetryDelay() time.Duration { return e.RetryAfter }
