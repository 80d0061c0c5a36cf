package config

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// Provider is a named provider of the experiment: its kind and the
// configuration that kind decoded from the block's body.
type Provider struct {
	Name      string
	Kind      string
	Config    provider.Config
	DeclRange hcl.Range
}

// Identity is the provider's identity (see provider.Config).
func (p Provider) Identity() string { return p.Config.Identity() }

// DefaultKind is the kind of a declared provider whose name is no kind and
// that says no kind: an OpenAI-compatible endpoint (vLLM, Ollama, ...).
const DefaultKind = "openai"

type providerBlock struct {
	Name string   `hcl:"name,label"`
	Kind *string  `hcl:"kind,optional"`
	Body hcl.Body `hcl:",remain"`
}

// decodeProviders returns one built-in provider per registered kind,
// overlaid with the declared ones; each kind decodes its own settings.
func decodeProviders(blocks []providerBlock, kinds provider.Registry, ctx *hcl.EvalContext, getenv func(string) string, dir string) (map[string]Provider, hcl.Diagnostics) {
	out := map[string]Provider{}
	var diags hcl.Diagnostics
	declared := map[string]bool{}
	for _, b := range blocks {
		rng := blockRange(b.Body)
		if declared[b.Name] {
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Duplicate provider", Detail: fmt.Sprintf("Provider %q is declared twice.", b.Name), Subject: rng.Ptr()})
			continue
		}
		declared[b.Name] = true
		kind := DefaultKind
		if _, ok := kinds[b.Name]; ok {
			kind = b.Name
		}
		if b.Kind != nil {
			kind = *b.Kind
		}
		k, ok := kinds[kind]
		if !ok {
			diags = append(diags, attrError(b.Body, "kind", "Unknown provider kind", fmt.Sprintf("Kind %q is not known: use one of %s.", kind, kinds.Names())))
			continue
		}
		cfg, d := k.Decode(provider.Settings{Name: b.Name, Body: b.Body, EvalCtx: ctx, Range: rng, Getenv: getenv, Dir: dir})
		diags = append(diags, d...)
		if !d.HasErrors() {
			out[b.Name] = Provider{Name: b.Name, Kind: kind, Config: cfg, DeclRange: rng}
		}
	}
	for name, k := range kinds {
		if declared[name] {
			continue
		}
		cfg, d := k.Decode(provider.Settings{Name: name, EvalCtx: ctx, Getenv: getenv, Dir: dir})
		diags = append(diags, d...)
		if !d.HasErrors() {
			out[name] = Provider{Name: name, Kind: name, Config: cfg}
		}
	}
	return out, diags
}
