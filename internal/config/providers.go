package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Provider kinds.
const (
	KindLocal  = "local"
	KindOpenAI = "openai"
)

// Provider is a fine-tuning and inference service. Kind "openai" speaks the
// OpenAI API at BaseURL (OpenAI itself, or vLLM, Ollama, a local server...).
type Provider struct {
	Name         string
	Kind         string
	APIKey       string // never written anywhere
	BaseURL      string
	Organization string
	Project      string
	Concurrency  int // chat calls in flight at once
	DeclRange    hcl.Range
}

// DefaultOpenAIBaseURL is where kind "openai" goes without a base_url.
const DefaultOpenAIBaseURL = "https://api.openai.com/v1"

// Identity is what distinguishes one provider's models and jobs from another's:
// kind and endpoint, never the key. The URL is normalised (scheme and host
// lower-cased, no trailing slash) so that spelling it differently does not
// retrain anything, and stripped of credentials and query so that none reach
// a stamp.
func (p Provider) Identity() string {
	if p.Kind == KindLocal {
		return KindLocal
	}
	return p.Kind + " " + normalizeURL(p.BaseURL)
}

func normalizeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Host == "" {
		return "invalid-url"
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

type providerBlock struct {
	Name         string   `hcl:"name,label"`
	Kind         *string  `hcl:"kind,optional"`
	APIKey       *string  `hcl:"api_key,optional"`
	BaseURL      *string  `hcl:"base_url,optional"`
	Organization *string  `hcl:"organization,optional"`
	Project      *string  `hcl:"project,optional"`
	Concurrency  *int     `hcl:"concurrency,optional"`
	Body         hcl.Body `hcl:",body"`
}

// decodeProviders returns the built-in providers overlaid with declared ones.
func decodeProviders(blocks []providerBlock) (map[string]Provider, hcl.Diagnostics) {
	baseURL := os.Getenv("OPENAI_BASE_URL")
	if baseURL == "" {
		baseURL = DefaultOpenAIBaseURL
	}
	out := map[string]Provider{
		KindLocal:  {Name: KindLocal, Kind: KindLocal, Concurrency: 32},
		KindOpenAI: {Name: KindOpenAI, Kind: KindOpenAI, APIKey: os.Getenv("OPENAI_API_KEY"), BaseURL: baseURL, Concurrency: 32},
	}
	declared := map[string]bool{}
	var diags hcl.Diagnostics
	for _, b := range blocks {
		rng := blockRange(b.Body)
		if declared[b.Name] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate provider", Detail: fmt.Sprintf("Provider %q is declared twice.", b.Name), Subject: rng.Ptr()})
			continue
		}
		declared[b.Name] = true
		p, builtin := out[b.Name]
		if !builtin {
			p = Provider{Name: b.Name, Kind: KindOpenAI, BaseURL: baseURL, Concurrency: 32}
		}
		p.DeclRange = rng
		setString(&p.Kind, b.Kind)
		if p.Kind != KindLocal && p.Kind != KindOpenAI {
			diags = append(diags, attrError(b.Body, "kind", "Unknown provider kind", fmt.Sprintf(`Kind %q is not known: use "local" or "openai" (any OpenAI-compatible API).`, p.Kind)))
		}
		setString(&p.APIKey, b.APIKey)
		setString(&p.BaseURL, b.BaseURL)
		setString(&p.Organization, b.Organization)
		setString(&p.Project, b.Project)
		if b.Concurrency != nil {
			if *b.Concurrency < 1 {
				diags = append(diags, attrError(b.Body, "concurrency", "Invalid concurrency", "concurrency must be at least 1."))
			}
			p.Concurrency = *b.Concurrency
		}
		out[b.Name] = p
	}
	return out, diags
}
