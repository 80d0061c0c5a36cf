package openai

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// testKey is deliberately distinctive so a leak is easy to spot.
const testKey = "sk-test-LEAKCHECK-0123456789abcdef"

const refDir = "../../../shared/ref/openai"

// newTestClient serves h over loopback and returns a client for it with
// backoffs short enough for tests.
func newTestClient(t *testing.T, h http.Handler, mod ...func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg := Config{
		APIKey:       testKey,
		BaseURL:      srv.URL + "/v1",
		Organization: "org-test",
		Project:      "proj_test",
		HTTPClient:   srv.Client(),
		MaxRetries:   3,
		MinBackoff:   time.Millisecond,
		MaxBackoff:   5 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// apiErrorBody is OpenAI's error envelope.
func apiErrorBody(message, typ, code string, param any) map[string]any {
	var c any
	if code != "" {
		c = code
	}
	return map[string]any{"error": map[string]any{"message": message, "type": typ, "param": param, "code": c}}
}

// dropConnection reads the request and closes the connection without an
// answer, as a proxy or a crashed server would.
func dropConnection(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	conn, _, err := w.(http.Hijacker).Hijack()
	if err != nil {
		// Not retried, so the test that expected a drop fails loudly.
		http.Error(w, "cannot hijack: "+err.Error(), http.StatusTeapot)
		return
	}
	conn.Close()
}

// jobObject is a fine_tuning.job with every field the spec requires,
// overridden by over.
func jobObject(id, status string, over map[string]any) map[string]any {
	j := map[string]any{
		"object":           "fine_tuning.job",
		"id":               id,
		"model":            "gpt-4.1-mini-2025-04-14",
		"created_at":       1764000000,
		"finished_at":      nil,
		"fine_tuned_model": nil,
		"organization_id":  "org-test",
		"result_files":     []string{},
		"status":           status,
		"validation_file":  nil,
		"training_file":    "file-abc123",
		"hyperparameters":  map[string]any{"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
		"trained_tokens":   nil,
		"error":            nil,
		"seed":             42,
		"integrations":     nil,
		"estimated_finish": nil,
		"method": map[string]any{"type": "supervised", "supervised": map[string]any{
			"hyperparameters": map[string]any{"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
		}},
		"metadata": nil,
	}
	for k, v := range over {
		j[k] = v
	}
	return j
}

// facts is the part of facts.json the tests use.
type facts struct {
	Deprecations struct {
		Legacy    []string `json:"legacy_snapshots_announced_2026-04-22_shutdown_2026-10-23"`
		NotListed []string `json:"not_listed_as_deprecated_in_newest_copy"`
	} `json:"deprecations"`
	Observed []struct {
		What  string          `json:"what"`
		Value json.RawMessage `json:"value"`
	} `json:"observed_error_payloads"`
}

// readFacts reads facts.json, or reports that it is absent.
func readFacts(t *testing.T) (facts, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(refDir, "facts.json"))
	if errors.Is(err, os.ErrNotExist) {
		t.Logf("reference facts not present at %s; checks against real payloads skipped", refDir)
		return facts{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var f facts
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatalf("facts.json: %v", err)
	}
	return f, true
}

func loadFacts(t *testing.T) facts {
	t.Helper()
	f, ok := readFacts(t)
	if !ok {
		t.Skip("needs facts.json")
	}
	return f
}

// observed returns the payload facts.json records under what.
func (f facts) observed(t *testing.T, what string) json.RawMessage {
	t.Helper()
	for _, o := range f.Observed {
		if o.What == what {
			return o.Value
		}
	}
	t.Fatalf("facts.json has no observed payload %q", what)
	return nil
}

// specSchema returns a schema's properties and required list from
// finetuning-spec-subset.json; ok is false if the spec is absent.
func specSchema(t *testing.T, name string) (props map[string]json.RawMessage, required []string, ok bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(refDir, "finetuning-spec-subset.json"))
	if errors.Is(err, os.ErrNotExist) {
		t.Logf("reference spec not present at %s; schema check skipped", refDir)
		return nil, nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]json.RawMessage `json:"properties"`
				Required   []string                   `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(data, &spec); err != nil {
		t.Fatalf("spec: %v", err)
	}
	s, found := spec.Components.Schemas[name]
	if !found {
		t.Fatalf("spec has no schema %s", name)
	}
	return s.Properties, s.Required, true
}
