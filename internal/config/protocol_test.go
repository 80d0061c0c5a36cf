package config

import (
	"slices"
	"strings"
	"testing"
)

const protocolModel = "model \"m\" {\n  dataset = \"evil/mild\"\n  suffix = \"m\"\n}\n"

// evaluation decodes an evaluation block with the given attributes and one task.
func evaluation(t *testing.T, attrs string) Evaluation {
	t.Helper()
	exp, err := Parse("x.hcl", []byte("evaluation {\n"+attrs+"\n  task \"a\" { trait = \"evil\" }\n}\n"+protocolModel), opts(nil))
	if err != nil {
		t.Fatal(err)
	}
	return exp.Evaluation
}

func TestProtocols(t *testing.T) {
	for _, tt := range []struct {
		name, attrs string
		protocol    string
		samples     int
		temperature float64
		maxTokens   int
		judge       string
		overridden  []string
	}{
		{"none", "", "original", 1, 1, 512, "gpt-4o-2024-08-06", nil},
		{"original", `protocol = "original"`, "original", 1, 1, 512, "gpt-4o-2024-08-06", nil},
		{"paper", `protocol = "paper"`, "paper", 10, 1, 1000, "gpt-4.1-mini-2025-04-14", nil},
		// One sample a question is drawn greedily under the paper's protocol.
		{"paper, one sample", "protocol = \"paper\"\nsamples_per_question = 1", "paper", 1, 0, 1000, "gpt-4.1-mini-2025-04-14",
			[]string{"samples_per_question = 1"}},
		{"paper, one sample at temperature 1", "protocol = \"paper\"\nsamples_per_question = 1\ntemperature = 1", "paper", 1, 1, 1000, "gpt-4.1-mini-2025-04-14",
			[]string{"samples_per_question = 1", "temperature = 1"}},
		{"paper, overridden", "protocol = \"paper\"\nmax_tokens = 512\njudge_model = \"gpt-4o-2024-08-06\"\ntemperature = 0.5", "paper", 10, 0.5, 512, "gpt-4o-2024-08-06",
			[]string{"max_tokens = 512", `judge_model = "gpt-4o-2024-08-06"`, "temperature = 0.5"}},
		// Setting a protocol's own value is following it, not overriding it.
		{"paper, restated", "protocol = \"paper\"\nmax_tokens = 1000\nsamples_per_question = 10", "paper", 10, 1, 1000, "gpt-4.1-mini-2025-04-14", nil},
		{"original, overridden", "samples_per_question = 5\nmax_tokens = 100", "original", 5, 1, 100, "gpt-4o-2024-08-06",
			[]string{"samples_per_question = 5", "max_tokens = 100"}},
		// A null judge_model (the shipped file off Tinker) leaves the protocol's.
		{"null judge", "protocol = \"paper\"\njudge_model = null", "paper", 10, 1, 1000, "gpt-4.1-mini-2025-04-14", nil},
	} {
		e := evaluation(t, tt.attrs)
		if e.Protocol != tt.protocol || e.SamplesPerQuestion != tt.samples || e.Temperature != tt.temperature ||
			e.MaxTokens != tt.maxTokens || e.JudgeModel != tt.judge || !slices.Equal(e.Overridden, tt.overridden) {
			t.Errorf("%s: got protocol %q, %d samples, temperature %g, max_tokens %d, judge %q, overridden %q",
				tt.name, e.Protocol, e.SamplesPerQuestion, e.Temperature, e.MaxTokens, e.JudgeModel, e.Overridden)
		}
	}
}

func TestProtocolSummary(t *testing.T) {
	got := evaluation(t, "protocol = \"paper\"\nmax_tokens = 512").ProtocolSummary()
	want := "protocol paper (10 samples per question, temperature 1, max_tokens 512, judge gpt-4.1-mini-2025-04-14), overridden: max_tokens = 512"
	if got != want {
		t.Fatalf("summary\n%s\nwant\n%s", got, want)
	}
	if got := evaluation(t, "").ProtocolSummary(); got != "protocol original (1 sample per question, temperature 1, max_tokens 512, judge gpt-4o-2024-08-06)" {
		t.Fatalf("default summary: %s", got)
	}
}

func TestUnknownProtocolIsLocated(t *testing.T) {
	_, err := Parse("x.hcl", []byte("evaluation {\n  protocol = \"papers\"\n  task \"a\" { trait = \"evil\" }\n}\n"+protocolModel), opts(nil))
	if err == nil || !IsConfigError(err) {
		t.Fatalf("got %v, want a located config error", err)
	}
	for _, want := range []string{`x.hcl:2:14: Unknown protocol: Protocol "papers" is not known; use one of "original"`, `"paper" (the Persona Vectors paper's`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error\n%v\nwant it to contain %q", err, want)
		}
	}
}

// The shipped file chooses the protocol with PROTOCOL, and keeps a judge
// Tinker serves on Tinker.
func TestShippedProtocols(t *testing.T) {
	for _, tt := range []struct {
		env         map[string]string
		protocol    string
		samples     int
		judge       string
		overridden  bool
		maxTokens   int
		temperature float64
	}{
		{nil, "original", 1, DefaultJudgeModel, false, 512, 1},
		{map[string]string{"PROTOCOL": "paper"}, "paper", 10, "gpt-4.1-mini-2025-04-14", false, 1000, 1},
		{map[string]string{"PROTOCOL": "paper", "PROVIDER": "tinker"}, "paper", 10, "Qwen/Qwen3-8B", true, 1000, 1},
	} {
		exp, err := Load("../../experiment.hcl", opts(tt.env))
		if err != nil {
			t.Fatal(err)
		}
		e := exp.Evaluation
		if e.Protocol != tt.protocol || e.SamplesPerQuestion != tt.samples || e.JudgeModel != tt.judge ||
			(len(e.Overridden) > 0) != tt.overridden || e.MaxTokens != tt.maxTokens || e.Temperature != tt.temperature {
			t.Errorf("%v: %s", tt.env, e.ProtocolSummary())
		}
	}
}
