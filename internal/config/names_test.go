package config

import (
	"regexp"
	"strings"
	"testing"
)

// The hand-written name rules admit exactly what these patterns match.
var namePatterns = []struct {
	name string
	rule nameRule
	re   *regexp.Regexp
}{
	{"name", safeName, regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)},
	{"suffix", safeSuffix, regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)},
	{"model id", safeModelID, regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:/@+=-]{0,255}$`)},
}

func FuzzNameRulesArePatterns(f *testing.F) {
	for _, s := range []string{"", "a", "-a", "_a", "evil", "m0001", "a..b", "a b", "a\x00", "é", "ft:gpt-4.1-mini-2025-04-14:org:suffix:id",
		"Qwen/Qwen3-8B", "tinker://run/sampler_weights/final", "a\n", string(make([]byte, 64)), "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, p := range namePatterns {
			if got, want := p.rule.admits(s), p.re.MatchString(s); got != want {
				t.Errorf("%s %q: admitted %v, pattern %v", p.name, s, got, want)
			}
		}
	})
}

func TestNameRulesAtTheirLengthLimits(t *testing.T) {
	for _, p := range namePatterns {
		for _, n := range []int{p.rule.max - 1, p.rule.max, p.rule.max + 1} {
			s := "a" + strings.Repeat("b", n-1)
			if got, want := p.rule.admits(s), p.re.MatchString(s); got != want {
				t.Errorf("%s of %d bytes: admitted %v, pattern %v", p.name, n, got, want)
			}
		}
	}
}
