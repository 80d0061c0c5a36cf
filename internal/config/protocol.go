package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Protocol is a named set of defaults for how answers are sampled and
// judged; an attribute the evaluation block sets still wins.
type Protocol struct {
	Name               string
	SamplesPerQuestion int
	MaxTokens          int
	JudgeModel         string
	// Temperature is used with several samples per question, Single with one.
	Temperature, Single float64
	About               string // what it reproduces, for diagnostics
}

// DefaultProtocol is the protocol of an evaluation block without one: the
// settings every evaluation had before protocols existed.
const DefaultProtocol = "original"

// Protocols are the evaluation protocols protocol may name.
var Protocols = []Protocol{
	{Name: "original", SamplesPerQuestion: 1, MaxTokens: DefaultMaxTokens, JudgeModel: DefaultJudgeModel, Temperature: 1, Single: 1,
		About: "the original framework's"},
	// The Persona Vectors paper: 10 samples a question at temperature 1
	// (greedy when only one is drawn), up to 1000 tokens, judged by gpt-4.1-mini.
	{Name: "paper", SamplesPerQuestion: 10, MaxTokens: 1000, JudgeModel: "gpt-4.1-mini-2025-04-14", Temperature: 1, Single: 0,
		About: "the Persona Vectors paper's"},
}

// temperature is the protocol's temperature for n samples per question.
func (p Protocol) temperature(n int) float64 {
	if n <= 1 {
		return p.Single
	}
	return p.Temperature
}

func protocolByName(name string) (Protocol, bool) {
	for _, p := range Protocols {
		if p.Name == name {
			return p, true
		}
	}
	return Protocol{}, false
}

// applyProtocol fills the protocol's defaults into what b leaves unset and
// records what b sets to another value, so that plan can say the protocol
// was not followed. It runs after b's own values are decoded.
func (e *Evaluation) applyProtocol(b *evaluationBlock) hcl.Diagnostics {
	name := DefaultProtocol
	if b.Protocol != nil {
		name = *b.Protocol
	}
	p, ok := protocolByName(name)
	if !ok {
		names := make([]string, len(Protocols))
		for i, p := range Protocols {
			names[i] = fmt.Sprintf("%q (%s settings: %s)", p.Name, p.About, p.describe(p.SamplesPerQuestion))
		}
		return hcl.Diagnostics{attrError(b.Body, "protocol", "Unknown protocol",
			fmt.Sprintf("Protocol %q is not known; use one of %s.", name, strings.Join(names, ", ")))}
	}
	e.Protocol = p.Name
	if b.SamplesPerQuestion == nil {
		e.SamplesPerQuestion = p.SamplesPerQuestion
	} else if *b.SamplesPerQuestion != p.SamplesPerQuestion {
		e.Overridden = append(e.Overridden, fmt.Sprintf("samples_per_question = %d", *b.SamplesPerQuestion))
	}
	if b.MaxTokens == nil {
		e.MaxTokens = p.MaxTokens
	} else if *b.MaxTokens != p.MaxTokens {
		e.Overridden = append(e.Overridden, fmt.Sprintf("max_tokens = %d", *b.MaxTokens))
	}
	if b.JudgeModel == nil {
		e.JudgeModel = p.JudgeModel
	} else if *b.JudgeModel != p.JudgeModel {
		e.Overridden = append(e.Overridden, fmt.Sprintf("judge_model = %q", *b.JudgeModel))
	}
	// The temperature follows the samples per question actually drawn.
	if want := p.temperature(e.SamplesPerQuestion); b.Temperature == nil {
		e.Temperature = want
	} else if *b.Temperature != want {
		e.Overridden = append(e.Overridden, "temperature = "+strconv.FormatFloat(*b.Temperature, 'g', -1, 64))
	}
	return nil
}

// describe is a protocol's settings for n samples per question.
func (p Protocol) describe(n int) string {
	return settings(n, p.temperature(n), p.MaxTokens, p.JudgeModel)
}

func settings(n int, temperature float64, maxTokens int, judge string) string {
	samples := "samples"
	if n == 1 {
		samples = "sample"
	}
	return fmt.Sprintf("%d %s per question, temperature %s, max_tokens %d, judge %s",
		n, samples, strconv.FormatFloat(temperature, 'g', -1, 64), maxTokens, judge)
}

// ProtocolSummary says which protocol the evaluation follows, with the
// settings in effect and any the file set against it, e.g.
// `protocol paper (10 samples per question, ...), overridden: max_tokens = 512`.
func (e Evaluation) ProtocolSummary() string {
	s := fmt.Sprintf("protocol %s (%s)", e.Protocol, settings(e.SamplesPerQuestion, e.Temperature, e.MaxTokens, e.JudgeModel))
	if len(e.Overridden) > 0 {
		s += ", overridden: " + strings.Join(e.Overridden, ", ")
	}
	return s
}
