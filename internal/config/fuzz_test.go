package config

import (
	"os"
	"strings"
	"testing"
)

// No experiment file, however broken, makes the decoder panic: it either
// decodes or says where it is wrong.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile("../../experiment.hcl"); err == nil {
		f.Add(b)
	}
	f.Add([]byte(minimal + "model_grid {\n traits = [\"a\"]\n strengths = [\"b\"]\n name = \"${trait}\"\n suffix = \"s\"\n}"))
	f.Add([]byte("trait \"x\" {\n description = \"d\"\n questions = [\"q\"]\n}\n" + minimal))
	f.Add([]byte(minimal + "model \"b\" {\n base_only = true\n model_id = \"ft:x\"\n strength = \"s\"\n}\nmodel_grid {\n traits = [\"a\"]\n strengths = [\"b\"]\n name = \"${trait}\"\n model_id = \"\"\n}"))
	// Deep nesting used to overflow HCL's parser stack (a fatal error).
	f.Add([]byte("x = " + strings.Repeat("(", 4096)))
	f.Add([]byte("x = \"" + strings.Repeat("${\"", 300)))
	f.Add([]byte("x = <<EOF\n${[[[\nEOF\n" + minimal))
	f.Fuzz(func(t *testing.T, src []byte) {
		exp, err := Parse("fuzz.hcl", src, opts(nil))
		if err == nil && (exp == nil || len(exp.Models) == 0) {
			t.Fatalf("decoded an experiment without models")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}
