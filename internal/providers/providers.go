// Package providers registers the provider kinds this build ships: the
// embedded local engine, OpenAI-compatible APIs and Tinker. Each kind decodes its
// own provider block and opens a provider.Conn; nothing outside this package
// names a concrete provider.
package providers

import (
	"net/url"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/modelorganisms/pvbuild/internal/provider"
)

// Default is the registry of the shipped kinds with their production settings.
func Default() provider.Registry {
	return provider.Registry{
		"local":  &Local{},
		"openai": &OpenAI{},
		"tinker": &Tinker{},
	}
}

// decodeBody decodes a provider block's body into v; a built-in provider
// the file does not declare has no body and keeps v's defaults.
func decodeBody(s provider.Settings, v any) hcl.Diagnostics {
	if s.Body == nil {
		return nil
	}
	return gohcl.DecodeBody(s.Body, s.EvalCtx, v)
}

func concurrency(s provider.Settings, v *int, def int) (int, hcl.Diagnostics) {
	if v == nil {
		return def, nil
	}
	if *v < 1 {
		return 0, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid concurrency",
			Detail: "concurrency must be at least 1.", Subject: attrRange(s, "concurrency")}}
	}
	return *v, nil
}

// attrRange is where an attribute of the block is, for diagnostics.
func attrRange(s provider.Settings, name string) *hcl.Range {
	if s.Body != nil {
		if attrs, diags := s.Body.JustAttributes(); !diags.HasErrors() {
			if a, ok := attrs[name]; ok {
				return a.Expr.Range().Ptr()
			}
		}
	}
	return s.Range.Ptr()
}

// normalizeURL keeps an endpoint's identity stable however it is spelled
// (scheme and host case, a trailing slash) and strips credentials and query
// so that none reach a stamp.
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
