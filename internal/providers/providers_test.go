package providers

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/modelorganisms/pvbuild/internal/provider"
	"github.com/modelorganisms/pvbuild/internal/tinkerserver"
)

// decode decodes a provider block body of kind openai.
func decode(t *testing.T, body string, env map[string]string) provider.Config {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(body), "p.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cfg, diags := (&OpenAI{}).Decode(provider.Settings{Name: "openai", Body: f.Body, Getenv: func(k string) string { return env[k] }})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return cfg
}

// The identity of an endpoint does not depend on how its URL is spelled,
// never holds a credential, and names the account that owns the models.
func TestOpenAIIdentity(t *testing.T) {
	a := decode(t, `base_url = "https://API.openai.com/v1/"`, nil)
	b := decode(t, ``, map[string]string{"OPENAI_BASE_URL": "https://api.openai.com/v1"})
	// Such a base_url is refused when decoded (TestAbuseBaseURLWithSecret);
	// one from the environment is refused when opened, and its identity
	// still holds no credential.
	c := decode(t, ``, map[string]string{"OPENAI_BASE_URL": "https://user:s3cret@gw.example/v1?key=s3cret"})
	if a.Identity() != b.Identity() {
		t.Fatalf("%q != %q", a.Identity(), b.Identity())
	}
	if strings.Contains(c.Identity(), "s3cret") {
		t.Fatalf("credentials in identity: %q", c.Identity())
	}
	org := decode(t, `
organization = "org-a"
project      = "proj-b"
api_key      = "sk-secret-key"`, nil)
	other := decode(t, `organization = "org-c"`, nil)
	if id := org.Identity(); !strings.Contains(id, "organization=org-a") || !strings.Contains(id, "project=proj-b") || strings.Contains(id, "sk-secret") {
		t.Fatalf("identity %q: want the account, never the key", id)
	}
	if org.Identity() == other.Identity() || org.Identity() == a.Identity() {
		t.Fatal("models of two accounts share an identity")
	}
}

func TestInvalidConcurrency(t *testing.T) {
	f, _ := hclsyntax.ParseConfig([]byte("concurrency = 0\n"), "p.hcl", hcl.InitialPos)
	_, diags := (&Local{}).Decode(provider.Settings{Name: "local", Body: f.Body})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), "p.hcl:1,15-16: Invalid concurrency") {
		t.Fatalf("diags: %v", diags)
	}
}

// What changes a Tinker model enters its training key, the tokenizer's
// content among it; what only changes how often it is saved does not, and
// neither does the key.
func TestTinkerTrainingSettings(t *testing.T) {
	dir := t.TempDir()
	tokFile := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(tokFile, tinkerserver.OfflineTokenizer(), 0o644); err != nil {
		t.Fatal(err)
	}
	settings := func(body string) string {
		t.Helper()
		f, diags := hclsyntax.ParseConfig([]byte(body+"\ntokenizer = \""+tokFile+"\"\n"), "p.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		cfg, diags := (&Tinker{}).Decode(provider.Settings{Name: "tinker", Body: f.Body})
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		s, err := cfg.(provider.TrainingSettings).TrainingSettings(context.Background(), dir, "Qwen/Qwen3-8B")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	base := settings(`lora_rank = 32`)
	if settings(`lora_rank = 64`) == base || settings("lora_rank = 32\nlr_schedule = \"cosine\"") == base {
		t.Fatal("a setting that changes the model left the training key as it was")
	}
	if settings("lora_rank = 32\ncheckpoint_every = 5\napi_key = \"tml-secret\"") != base {
		t.Fatal("checkpoint_every or the key changed the training key")
	}
	if !strings.Contains(base, "tokenizer=sha256:") {
		t.Fatalf("no tokenizer hash in %q", base)
	}
	f, _ := hclsyntax.ParseConfig([]byte("lora_rank = 3\n"), "p.hcl", hcl.InitialPos)
	if _, diags := (&Tinker{}).Decode(provider.Settings{Name: "tinker", Body: f.Body}); !diags.HasErrors() || !strings.Contains(diags.Error(), "lora_rank 3") {
		t.Fatalf("lora_rank 3: %v", diags)
	}
}
