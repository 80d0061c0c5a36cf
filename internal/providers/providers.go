// Package providers registers the provider kinds this build ships: the
// embedded local engine, OpenAI-compatible APIs and Tinker. Each kind decodes its
// own provider block and opens a provider.Conn; nothing outside this package
// names a concrete provider.
package providers

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/modelorganisms/pvbuild/internal/openai"
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

// maxOutage reads max_outage, a Go duration ("10m", "90s"); unset is the
// default.
func maxOutage(s provider.Settings, v *string) (time.Duration, hcl.Diagnostics) {
	if v == nil {
		return provider.DefaultMaxOutage, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(*v))
	if err != nil || d <= 0 {
		return 0, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid max_outage",
			Detail:  fmt.Sprintf("max_outage must be a positive duration such as \"10m\" or \"90s\", not %q.", *v),
			Subject: attrRange(s, "max_outage")}}
	}
	return d, nil
}

// checkURL refuses an endpoint URL given as attribute attr that carries a
// query, fragment or user:password: every path appended to it would break,
// and a secret there would reach error messages. The diagnostic never
// repeats the URL.
func checkURL(s provider.Settings, attr, raw string) hcl.Diagnostics {
	err := openai.CheckBaseURL(raw)
	if err == nil {
		return nil
	}
	return hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Invalid " + attr,
		Detail:  fmt.Sprintf("Provider %q: %s %v.", s.Name, attr, err),
		Subject: attrRange(s, attr)}}
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
