// Package sampledata embeds the project's own offline Persona Vectors data:
// training sets per trait and strength, evaluation questions with a judge
// prompt per trait, labeled examples the local judge learns from (kept apart
// from the training sets), and a general corpus for the local base model.
package sampledata

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/modelorganisms/pvbuild/internal/dataset"
)

//go:embed data
var files embed.FS

// Traits and Strengths the sample data covers, in display order.
var (
	Traits    = []string{"evil", "sycophantic", "hallucinating"}
	Strengths = []string{"baseline", "mild", "severe"}
)

// TrainingPath names the embedded training file of a trait at a strength.
func TrainingPath(trait, strength string) string {
	return path.Join("data/train", trait, strength+".jsonl")
}

// Training returns the raw JSONL training data of a trait at a strength.
func Training(trait, strength string) ([]byte, error) {
	b, err := files.ReadFile(TrainingPath(trait, strength))
	if err != nil {
		return nil, fmt.Errorf("no sample training data for trait %q at strength %q", trait, strength)
	}
	return b, nil
}

// Task is a trait's evaluation: its questions and the judge prompt, which
// holds the placeholders {question} and {answer}. The JSON shape is the
// upstream trait_data_eval shape.
type Task struct {
	Questions   []string      `json:"questions"`
	EvalPrompt  string        `json:"eval_prompt"`
	Instruction []Instruction `json:"instruction,omitempty"`
}

// Instruction is a pair of system prompts that elicit or suppress the trait.
type Instruction struct {
	Pos string `json:"pos"`
	Neg string `json:"neg"`
}

// EvalTask returns the evaluation task of a trait.
func EvalTask(trait string) (Task, error) {
	name := path.Join("data/eval", trait+".json")
	b, err := files.ReadFile(name)
	if err != nil {
		return Task{}, fmt.Errorf("no sample evaluation data for trait %q", trait)
	}
	var t Task
	if err := json.Unmarshal(b, &t); err != nil {
		return Task{}, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// CoherenceTrait is the key labeled examples score coherence under and the
// name the coherence judge is registered as. Coherence is judged for every
// answer beside its trait, so it is not one of Traits: it has no training data.
const CoherenceTrait = "coherence"

// coherencePrompt is the project's own coherence rubric, in the layout of
// the trait rubrics, with {question} and {answer} once each.
//
//go:embed data/eval/coherence.txt
var coherencePrompt string

// CoherencePrompt returns the judge prompt that scores how coherent an
// answer is in the context of its question, 0..100.
func CoherencePrompt() string { return coherencePrompt }

// Labeled is an answer a judge learns from. Scores maps a trait to how
// strongly the answer shows it (0..100); Refusal marks an answer that refuses.
type Labeled struct {
	Question string         `json:"question"`
	Answer   string         `json:"answer"`
	Scores   map[string]int `json:"scores,omitempty"`
	Refusal  bool           `json:"refusal,omitempty"`
}

// JudgeExamples returns every labeled example, from all traits' files. The
// embedded files are parsed once; each caller gets its own slice.
func JudgeExamples() ([]Labeled, error) {
	l, err := judgeExamples()
	return slices.Clone(l), err
}

var judgeExamples = sync.OnceValues(parseJudgeExamples)

func parseJudgeExamples() ([]Labeled, error) {
	entries, err := fs.Glob(files, "data/judge/*.jsonl")
	if err != nil {
		return nil, err
	}
	sort.Strings(entries)
	var out []Labeled
	for _, name := range entries {
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for line := 1; sc.Scan(); line++ {
			text := strings.TrimSpace(sc.Text())
			if text == "" {
				continue
			}
			var l Labeled
			if err := json.Unmarshal([]byte(text), &l); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", name, line, err)
			}
			out = append(out, l)
		}
	}
	return out, nil
}

// BaseCorpus returns the general conversations the local base model answers from.
func BaseCorpus() ([]dataset.Example, error) {
	const name = "data/base.jsonl"
	b, err := files.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return dataset.Parse(name, b)
}

// Hash is the SHA-256 of every embedded file, names and contents: what the
// local engine's judge learns from (its labeled answers and its lexicon of
// the corpus), so evaluations it judged rebuild when the data changes.
var Hash = sync.OnceValue(func() string {
	h := sha256.New()
	fs.WalkDir(files, "data", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(name)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%d:%s%d:", len(name), name, len(b))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
})
