package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelorganisms/pvbuild/internal/server"
)

// TestErrors checks every refusal's HTTP status and OpenAI error envelope.
func TestErrors(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	_, url := startServer(t, eng, server.Options{APIKey: testKey})
	c := newClient(t, url, 0)
	file, err := c.UploadFile(t.Context(), "evil.jsonl", trainingData(t, "evil", "mild"))
	if err != nil {
		t.Fatal(err)
	}
	chat := func(extra string) string {
		return `{"model":"` + judgeModel + `","messages":[{"role":"user","content":"hi"}]` + extra + `}`
	}
	job := func(extra string) string {
		return `{"model":"` + baseModel + `","training_file":"` + file.ID + `"` + extra + `}`
	}
	many := make([]string, 17)
	for i := range many {
		many[i] = fmt.Sprintf(`"k%d":"v"`, i)
	}
	upload := func(purpose, name string) func(*testing.T) (io.Reader, string) {
		return func(t *testing.T) (io.Reader, string) { return multipartBody(t, purpose, name, []byte("{}\n")) }
	}

	tests := []struct {
		name      string
		method    string
		path      string
		key       string
		body      string
		multipart func(*testing.T) (io.Reader, string)
		status    int
		code      string // "" = null
		param     string // "" = null
	}{
		{name: "no key", method: "GET", path: "/v1/models", key: "-", status: 401},
		{name: "wrong key", method: "GET", path: "/v1/models", key: "sk-wrong-key-0000", status: 401, code: "invalid_api_key"},
		{name: "wrong key on debug route", method: "GET", path: "/debug/counters", key: "sk-wrong-key-0000", status: 401, code: "invalid_api_key"},
		{name: "unknown route", method: "GET", path: "/v1/assistants", status: 404},
		{name: "wrong method", method: "DELETE", path: "/v1/fine_tuning/jobs", status: 404},
		{name: "unknown job", method: "GET", path: "/v1/fine_tuning/jobs/ftjob-0123abcd", status: 404, param: "fine_tuning_job_id"},
		{name: "malformed job id", method: "GET", path: "/v1/fine_tuning/jobs/..%2Fsecrets", status: 404, param: "fine_tuning_job_id"},
		{name: "events of unknown job", method: "GET", path: "/v1/fine_tuning/jobs/ftjob-0123abcd/events", status: 404, param: "fine_tuning_job_id"},
		{name: "cancel unknown job", method: "POST", path: "/v1/fine_tuning/jobs/ftjob-0123abcd/cancel", status: 404, param: "fine_tuning_job_id"},
		{name: "unknown file", method: "GET", path: "/v1/files/file-nope", status: 404, param: "id"},
		{name: "unknown model", method: "GET", path: "/v1/models/gpt-9", status: 404, code: "model_not_found", param: "model"},

		{name: "chat: unknown model", method: "POST", path: "/v1/chat/completions", body: `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, status: 404, code: "model_not_found", param: "model"},
		{name: "chat: shut-down model", method: "POST", path: "/v1/chat/completions", body: `{"model":"gpt-4.1-nano-2025-04-14","messages":[{"role":"user","content":"hi"}]}`, status: 404, code: "model_not_found", param: "model"},
		{name: "chat: unknown fine-tune", method: "POST", path: "/v1/chat/completions", body: `{"model":"ft:gpt-4.1-mini-2025-04-14:local:x:deadbeef","messages":[{"role":"user","content":"hi"}]}`, status: 404, code: "model_not_found", param: "model"},
		{name: "chat: not JSON", method: "POST", path: "/v1/chat/completions", body: `{"model":`, status: 400},
		{name: "chat: no model", method: "POST", path: "/v1/chat/completions", body: `{"messages":[{"role":"user","content":"hi"}]}`, status: 400, param: "model"},
		{name: "chat: no messages", method: "POST", path: "/v1/chat/completions", body: `{"model":"` + judgeModel + `","messages":[]}`, status: 400, param: "messages"},
		{name: "chat: bad role", method: "POST", path: "/v1/chat/completions", body: `{"model":"` + judgeModel + `","messages":[{"role":"robot","content":"hi"}]}`, status: 400, param: "messages.[0].role"},
		{name: "chat: image part", method: "POST", path: "/v1/chat/completions", body: `{"model":"` + judgeModel + `","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, status: 400, param: "messages.[0].content"},
		{name: "chat: top_logprobs 21", method: "POST", path: "/v1/chat/completions", body: chat(`,"logprobs":true,"top_logprobs":21`), status: 400, param: "top_logprobs"},
		{name: "chat: top_logprobs without logprobs", method: "POST", path: "/v1/chat/completions", body: chat(`,"top_logprobs":5`), status: 400, param: "top_logprobs"},
		{name: "chat: temperature 3", method: "POST", path: "/v1/chat/completions", body: chat(`,"temperature":3`), status: 400, param: "temperature"},
		{name: "chat: n 0", method: "POST", path: "/v1/chat/completions", body: chat(`,"n":0`), status: 400, param: "n"},
		{name: "chat: n of the wrong type", method: "POST", path: "/v1/chat/completions", body: chat(`,"n":"two"`), status: 400, param: "n"},
		{name: "chat: max_tokens 0", method: "POST", path: "/v1/chat/completions", body: chat(`,"max_tokens":0`), status: 400, param: "max_tokens"},
		{name: "chat: stream", method: "POST", path: "/v1/chat/completions", body: chat(`,"stream":true`), status: 400, param: "stream"},

		{name: "job: no model", method: "POST", path: "/v1/fine_tuning/jobs", body: `{"training_file":"` + file.ID + `"}`, status: 400, param: "model"},
		{name: "job: no training file", method: "POST", path: "/v1/fine_tuning/jobs", body: `{"model":"` + baseModel + `"}`, status: 400, param: "training_file"},
		{name: "job: unknown training file", method: "POST", path: "/v1/fine_tuning/jobs", body: `{"model":"` + baseModel + `","training_file":"file-0123abcd"}`, status: 400, param: "training_file"},
		{name: "job: unknown base model", method: "POST", path: "/v1/fine_tuning/jobs", body: `{"model":"gpt-9","training_file":"` + file.ID + `"}`, status: 400, code: "model_not_available", param: "model"},
		{name: "job: unknown fine-tuned base", method: "POST", path: "/v1/fine_tuning/jobs", body: `{"model":"ft:gpt-4.1-mini-2025-04-14:local:x:deadbeef","training_file":"` + file.ID + `"}`, status: 400, code: "model_not_available", param: "model"},
		{name: "job: dpo", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"method":{"type":"dpo"}`), status: 400, param: "method.type"},
		{name: "job: 0 epochs", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"method":{"type":"supervised","supervised":{"hyperparameters":{"n_epochs":0}}}`), status: 400, param: "method.supervised.hyperparameters.n_epochs"},
		{name: "job: 2.5 epochs", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"hyperparameters":{"n_epochs":2.5}`), status: 400, param: "hyperparameters.n_epochs"},
		{name: "job: epochs not a number", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"hyperparameters":{"n_epochs":"many"}`), status: 400, param: "hyperparameters.n_epochs"},
		{name: "job: batch 257", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"hyperparameters":{"batch_size":257}`), status: 400, param: "hyperparameters.batch_size"},
		{name: "job: learning rate 0", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"hyperparameters":{"learning_rate_multiplier":0}`), status: 400, param: "hyperparameters.learning_rate_multiplier"},
		{name: "job: hyperparameters twice", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"hyperparameters":{"n_epochs":2},"method":{"type":"supervised","supervised":{"hyperparameters":{"n_epochs":3}}}`), status: 400, param: "hyperparameters"},
		{name: "job: 17 metadata pairs", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"metadata":{` + strings.Join(many, ",") + `}`), status: 400, param: "metadata"},
		{name: "job: metadata value not a string", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"metadata":{"k":1}`), status: 400, param: "metadata"},
		{name: "job: suffix of 65", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"suffix":"` + strings.Repeat("s", 65) + `"`), status: 400, param: "suffix"},
		{name: "job: negative seed", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"seed":-1`), status: 400, param: "seed"},
		{name: "job: validation file", method: "POST", path: "/v1/fine_tuning/jobs", body: job(`,"validation_file":"` + file.ID + `"`), status: 400, param: "validation_file"},
		{name: "jobs: limit 0", method: "GET", path: "/v1/fine_tuning/jobs?limit=0", status: 400, param: "limit"},
		{name: "jobs: after unknown job", method: "GET", path: "/v1/fine_tuning/jobs?after=ftjob-0123abcd", status: 404, param: "fine_tuning_job_id"},
		{name: "files: bad order", method: "GET", path: "/v1/files?order=random", status: 400, param: "order"},

		{name: "upload: purpose batch", method: "POST", path: "/v1/files", multipart: upload("batch", "a.jsonl"), status: 400, param: "purpose"},
		{name: "upload: no purpose", method: "POST", path: "/v1/files", multipart: upload("", "a.jsonl"), status: 400, param: "purpose"},
		{name: "upload: no file", method: "POST", path: "/v1/files", multipart: upload("fine-tune", ""), status: 400, param: "file"},
		{name: "upload: not .jsonl", method: "POST", path: "/v1/files", multipart: upload("fine-tune", "a.csv"), status: 400, param: "file"},
		{name: "upload: not multipart", method: "POST", path: "/v1/files", body: `{"purpose":"fine-tune"}`, status: 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testKey
			if tt.key == "-" {
				key = ""
			} else if tt.key != "" {
				key = tt.key
			}
			var body io.Reader = strings.NewReader(tt.body)
			ctype := "application/json"
			if tt.multipart != nil {
				body, ctype = tt.multipart(t)
			}
			status, _, out := call(t, tt.method, url+tt.path, key, body, ctype)
			if status != tt.status {
				t.Fatalf("HTTP %d %v, want %d", status, out, tt.status)
			}
			e, ok := out["error"].(map[string]any)
			if !ok || len(out) != 1 {
				t.Fatalf("body %v, want only an error object", out)
			}
			checkErrorObject(t, e)
			wantType := "invalid_request_error"
			if e["type"] != wantType || e["code"] != nullable(tt.code) || e["param"] != nullable(tt.param) {
				t.Errorf("error %v, want type %s, code %q, param %q", e, wantType, tt.code, tt.param)
			}
		})
	}
	if n := counters(t, url).JobCreations; n != 0 {
		t.Errorf("%d jobs created by refused requests", n)
	}
}

// nullable is what a JSON null or string decodes to.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// checkErrorObject checks OpenAI's Error schema: exactly message, type,
// param and code; message and type strings, param and code string or null.
func checkErrorObject(t *testing.T, e map[string]any) {
	t.Helper()
	keys := make([]string, 0, len(e))
	for k := range e {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"code", "message", "param", "type"}) {
		t.Errorf("error has keys %v", keys)
	}
	if m, _ := e["message"].(string); m == "" {
		t.Errorf("error without a message: %v", e)
	}
	for _, k := range []string{"param", "code"} {
		if _, isString := e[k].(string); e[k] != nil && !isString {
			t.Errorf("error %s = %#v, want a string or null", k, e[k])
		}
	}
}

// spec is the fine-tuning subset of OpenAI's OpenAPI description.
type spec struct {
	Components struct {
		Schemas map[string]struct {
			Required   []string                   `json:"required"`
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"schemas"`
	} `json:"components"`
}

func loadSpec(t *testing.T) (spec, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(refDir, "finetuning-spec-subset.json"))
	if errors.Is(err, os.ErrNotExist) {
		t.Logf("reference spec not present at %s; schema checks skipped", refDir)
		return spec{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var s spec
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	return s, true
}

// conforms checks that obj has every field the schema requires and, for the
// enums given, an allowed value.
func (s spec) conforms(t *testing.T, schema string, obj any) {
	t.Helper()
	m, ok := obj.(map[string]any)
	if !ok {
		t.Errorf("%s: %v is not an object", schema, obj)
		return
	}
	sc, ok := s.Components.Schemas[schema]
	if !ok {
		t.Fatalf("spec has no schema %s", schema)
	}
	for _, k := range sc.Required {
		if _, ok := m[k]; !ok {
			t.Errorf("%s lacks required %q: %v", schema, k, m)
		}
	}
	for k, raw := range sc.Properties {
		var p struct {
			Enum []any `json:"enum"`
		}
		json.Unmarshal(raw, &p)
		if v, present := m[k]; present && len(p.Enum) > 0 && !slices.Contains(p.Enum, v) {
			t.Errorf("%s.%s = %v, not one of %v", schema, k, v, p.Enum)
		}
	}
}

// TestWireFormat checks raw answers against the OpenAPI schemas, and the
// parts of the protocol this project's client does not use: "auto"
// hyperparameters, top-level hyperparameters, paging, metadata=null.
func TestWireFormat(t *testing.T) {
	t.Parallel()
	sp, haveSpec := loadSpec(t)
	eng := newEngine(t)
	_, url := startServer(t, eng, server.Options{})
	conform := func(schema string, obj any) {
		t.Helper()
		if haveSpec {
			sp.conforms(t, schema, obj)
		}
	}

	body, ctype := multipartBody(t, "fine-tune", "evil.jsonl", trainingData(t, "evil", "severe"))
	status, _, fileObj := call(t, http.MethodPost, url+"/v1/files", "", body, ctype)
	if status != http.StatusOK || fileObj["object"] != "file" || fileObj["purpose"] != "fine-tune" || fileObj["filename"] != "evil.jsonl" || fileObj["status"] != "processed" {
		t.Fatalf("upload: %d %v", status, fileObj)
	}
	conform("OpenAIFile", fileObj)
	fileID := fileObj["id"].(string)
	if _, got := get(t, url+"/v1/files/"+fileID, ""); !jsonEqual(got, fileObj) {
		t.Errorf("GET file = %v, want %v", got, fileObj)
	}
	for _, tt := range []struct {
		query string
		want  int
	}{{"", 1}, {"?purpose=fine-tune", 1}, {"?purpose=batch", 0}, {"?order=asc&limit=1", 1}, {"?after=" + fileID, 0}} {
		_, list := get(t, url+"/v1/files"+tt.query, "")
		data, _ := list["data"].([]any)
		if list["object"] != "list" || len(data) != tt.want || list["has_more"] != false {
			t.Errorf("GET /v1/files%s = %v, want %d files", tt.query, list, tt.want)
		}
		if tt.want > 0 && (list["first_id"] != fileID || list["last_id"] != fileID) {
			t.Errorf("GET /v1/files%s: first_id %v, last_id %v", tt.query, list["first_id"], list["last_id"])
		}
	}

	// Three jobs: "auto" everywhere, the deprecated top-level form, and
	// no hyperparameters or seed at all.
	var ids []string
	for i, extra := range []string{
		`,"method":{"type":"supervised","supervised":{"hyperparameters":{"n_epochs":"auto","batch_size":"auto","learning_rate_multiplier":"auto"}}},"metadata":{"run":"a","i":"0"},"seed":5`,
		`,"hyperparameters":{"n_epochs":2,"batch_size":4,"learning_rate_multiplier":0.5},"suffix":"top-level","metadata":{"run":"a","i":"1"}`,
		``,
	} {
		status, j := postJSON(t, url+"/v1/fine_tuning/jobs", "", `{"model":"`+baseModel+`","training_file":"`+fileID+`"`+extra+`}`)
		if status != http.StatusOK || j["object"] != "fine_tuning.job" || j["status"] != "validating_files" {
			t.Fatalf("job %d: %d %v", i, status, j)
		}
		conform("FineTuningJob", j)
		ids = append(ids, j["id"].(string))
		hp, _ := j["hyperparameters"].(map[string]any)
		method, _ := j["method"].(map[string]any)
		sup, _ := method["supervised"].(map[string]any)
		if method["type"] != "supervised" || !jsonEqual(sup["hyperparameters"], hp) {
			t.Errorf("job %d: method %v, want supervised with hyperparameters %v", i, method, hp)
		}
		switch i {
		case 0:
			// "auto" resolves to the engine's defaults, and is reported so.
			if hp["n_epochs"] != 3.0 || hp["batch_size"] != 1.0 || hp["learning_rate_multiplier"] != 1.0 || j["seed"] != 5.0 {
				t.Errorf("job 0: hyperparameters %v, seed %v", hp, j["seed"])
			}
		case 1:
			if hp["n_epochs"] != 2.0 || hp["batch_size"] != 4.0 || hp["learning_rate_multiplier"] != 0.5 || j["user_provided_suffix"] != "top-level" {
				t.Errorf("job 1: hyperparameters %v, suffix %v", hp, j["user_provided_suffix"])
			}
		case 2:
			if j["metadata"] != nil || j["user_provided_suffix"] != nil || j["error"] != nil || j["fine_tuned_model"] != nil || j["finished_at"] != nil {
				t.Errorf("job 2: want null metadata, suffix, error, model and finish: %v", j)
			}
		}
	}
	// Same request again: a new job, as OpenAI makes one per request.
	if status, j := postJSON(t, url+"/v1/fine_tuning/jobs", "", `{"model":"`+baseModel+`","training_file":"`+fileID+`"}`); status != http.StatusOK || j["id"] == ids[2] {
		t.Fatalf("repeated request: %d %v", status, j)
	} else {
		ids = append(ids, j["id"].(string))
	}

	listIDs := func(query string) ([]string, bool) {
		t.Helper()
		status, list := get(t, url+"/v1/fine_tuning/jobs"+query, "")
		if status != http.StatusOK || list["object"] != "list" {
			t.Fatalf("list %s: %d %v", query, status, list)
		}
		conform("ListPaginatedFineTuningJobsResponse", list)
		var out []string
		for _, j := range list["data"].([]any) {
			conform("FineTuningJob", j)
			out = append(out, j.(map[string]any)["id"].(string))
		}
		return out, list["has_more"].(bool)
	}
	all, more := listIDs("")
	if len(all) != 4 || more {
		t.Fatalf("all jobs: %v (has_more %v)", all, more)
	}
	var paged []string
	for after := ""; ; {
		q := "?limit=3"
		if after != "" {
			q += "&after=" + after
		}
		page, more := listIDs(q)
		paged = append(paged, page...)
		if !more {
			break
		}
		after = page[len(page)-1]
	}
	if !slices.Equal(paged, all) {
		t.Errorf("paged %v, want %v", paged, all)
	}
	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"?metadata[run]=a", []string{ids[1], ids[0]}},
		{"?metadata%5Brun%5D=a&metadata%5Bi%5D=1", []string{ids[1]}},
		{"?metadata[run]=b", nil},
		{"?metadata=null", nil}, // filled below: the jobs without metadata
	} {
		want := tt.want
		if tt.query == "?metadata=null" {
			want = slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == ids[0] || id == ids[1] })
		}
		got, _ := listIDs(tt.query)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("list %s = %v, want %v", tt.query, got, want)
		}
	}

	job, _ := waitJob(t, eng, ids[0])
	status, events := get(t, url+"/v1/fine_tuning/jobs/"+ids[0]+"/events?limit=2", "")
	if status != http.StatusOK || events["has_more"] != true || len(events["data"].([]any)) != 2 {
		t.Fatalf("events page: %d %v", status, events)
	}
	conform("ListFineTuningJobEventsResponse", events)
	for _, e := range events["data"].([]any) {
		conform("FineTuningJobEvent", e)
	}
	// Newest first: the job's end comes first.
	if first := events["data"].([]any)[0].(map[string]any); first["message"] != "The job has successfully completed" {
		t.Errorf("newest event %v", first)
	}

	status, resp := postJSON(t, url+"/v1/chat/completions", "", `{"model":"`+judgeModel+`","messages":[{"role":"user","content":[{"type":"text","text":"`+
		jsonEscape(judgeCases(t, 1)[0].prompt)+`"}]}],"max_completion_tokens":1,"temperature":0,"logprobs":true,"top_logprobs":5,"n":2}`)
	if status != http.StatusOK || resp["object"] != "chat.completion" {
		t.Fatalf("chat: %d %v", status, resp)
	}
	choices := resp["choices"].([]any)
	usage, _ := resp["usage"].(map[string]any)
	if len(choices) != 2 || usage["prompt_tokens"].(float64) < 50 || usage["total_tokens"] != usage["prompt_tokens"].(float64)+usage["completion_tokens"].(float64) {
		t.Fatalf("chat: %d choices, usage %v", len(choices), usage)
	}
	for i, ch := range choices {
		ch := ch.(map[string]any)
		msg := ch["message"].(map[string]any)
		lp := ch["logprobs"].(map[string]any)
		content := lp["content"].([]any)
		if ch["index"] != float64(i) || msg["role"] != "assistant" || ch["finish_reason"] != "length" || len(content) != 1 || lp["refusal"] != nil {
			t.Fatalf("choice %d: %v", i, ch)
		}
		conform("ChatCompletionTokenLogprob", content[0])
		first := content[0].(map[string]any)
		top := first["top_logprobs"].([]any)
		if first["token"] != msg["content"] || len(top) != 5 || !jsonEqual(top[0].(map[string]any)["token"], first["token"]) {
			t.Errorf("choice %d: first token %v, content %q", i, first, msg["content"])
		}
		if b := first["bytes"].([]any); len(b) != len(first["token"].(string)) {
			t.Errorf("bytes %v of token %q", b, first["token"])
		}
	}
	// logprobs without top_logprobs: the chosen token, no alternatives.
	_, resp = postJSON(t, url+"/v1/chat/completions", "", `{"model":"`+judgeModel+`","messages":[{"role":"user","content":"`+
		jsonEscape(judgeCases(t, 1)[0].prompt)+`"}],"logprobs":true}`)
	first := resp["choices"].([]any)[0].(map[string]any)["logprobs"].(map[string]any)["content"].([]any)[0].(map[string]any)
	if top := first["top_logprobs"].([]any); len(top) != 0 || first["logprob"] == nil {
		t.Errorf("logprobs without top_logprobs: %v", first)
	}

	_, models := get(t, url+"/v1/models", "")
	if !hasModel(models, job.FineTunedModel) || !hasModel(models, "gpt-4o") || hasModel(models, "gpt-4.1-nano-2025-04-14") {
		t.Errorf("models %v", models)
	}
	for _, id := range []string{job.FineTunedModel, "gpt-4o-2024-08-06", "gpt-4o"} {
		status, m := get(t, url+"/v1/models/"+id, "")
		if status != http.StatusOK || m["id"] != id || m["object"] != "model" || m["created"].(float64) <= 0 || m["owned_by"] == "" {
			t.Errorf("GET model %s: %d %v", id, status, m)
		}
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
