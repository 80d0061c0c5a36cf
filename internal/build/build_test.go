package build

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func inputs(epochs string) Inputs {
	var in Inputs
	in.Add("format", 1)
	in.Add("n_epochs", epochs)
	in.Add("dataset", Hash([]byte("data")))
	return in
}

func TestFreshness(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	check := func(in Inputs) Status {
		t.Helper()
		st, err := s.Check("train/a", in)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := check(inputs("3")); st.Fresh || st.Reason != "never built" {
		t.Fatalf("before build: %+v", st)
	}
	if _, err := s.Commit("train/a", inputs("3"), map[string][]byte{"train/a.json": []byte(`{"model":"m"}`)}, nil); err != nil {
		t.Fatal(err)
	}
	if st := check(inputs("3")); !st.Fresh {
		t.Fatalf("after build: %+v", st)
	}
	if st := check(inputs("5")); st.Fresh || st.Reason != "n_epochs changed (3 -> 5)" {
		t.Fatalf("changed epochs: %+v", st)
	}

	// New modification times (a CI cache restore) change nothing.
	out := s.Path("train/a.json")
	os.Chtimes(out, time0, time0)
	if st := check(inputs("3")); !st.Fresh {
		t.Fatalf("after touching: %+v", st)
	}

	os.WriteFile(out, []byte(`{"model":"tampered"}`), 0o644)
	if st := check(inputs("3")); st.Fresh || !strings.Contains(st.Reason, "train/a.json was modified") {
		t.Fatalf("after tampering: %+v", st)
	}
	os.Remove(out)
	if st := check(inputs("3")); st.Fresh || !strings.Contains(st.Reason, "missing") {
		t.Fatalf("after removal: %+v", st)
	}
}

func TestCopiedStoreIsFresh(t *testing.T) {
	src := &Store{Root: t.TempDir()}
	if _, err := src.Commit("results", inputs("3"), map[string][]byte{"eval_results.json": []byte("[]")}, nil); err != nil {
		t.Fatal(err)
	}
	dst := &Store{Root: filepath.Join(t.TempDir(), "artifacts")}
	if err := os.CopyFS(dst.Root, os.DirFS(src.Root)); err != nil {
		t.Fatal(err)
	}
	if st, err := dst.Check("results", inputs("3")); err != nil || !st.Fresh {
		t.Fatalf("copied store: %+v, %v", st, err)
	}
}

func TestKeyIgnoresOrder(t *testing.T) {
	a := Inputs{{"x", "1"}, {"y", "2"}}
	b := Inputs{{"y", "2"}, {"x", "1"}}
	if a.Key() != b.Key() {
		t.Fatal("key depends on input order")
	}
	// Length-prefixing keeps "ab"+"c" apart from "a"+"bc".
	if (Inputs{{"a", "bc"}}).Key() == (Inputs{{"ab", "c"}}).Key() {
		t.Fatal("ambiguous key encoding")
	}
}

func TestLockExcludesSecondRun(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	l, err := s.Lock()
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Lock()
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "process ") {
		t.Fatalf("second lock: %v", err)
	}
	l.Unlock()
	l2, err := s.Lock()
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	l2.Unlock()
}

var time0 = time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)

func TestStampRoundTrip(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	in := Inputs{{"provider", "local"}, {"odd name \"x\"", "line1\nline2 with spaces"}, {"empty", ""}}
	if _, err := s.Commit("a/b", in, map[string][]byte{"dir/out file.json": []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stamp("a/b")
	if err != nil || st == nil {
		t.Fatalf("stamp: %v, %v", st, err)
	}
	if st.Key != in.Key() || len(st.Inputs) != 3 || st.Inputs[1] != in[1] || st.Outputs["dir/out file.json"] != Hash([]byte("x")) {
		t.Fatalf("round trip: %+v", st)
	}
	if got, _ := s.Check("a/b", in); !got.Fresh {
		t.Fatalf("not fresh: %+v", got)
	}
	// A damaged stamp makes the target stale instead of failing the build.
	os.WriteFile(s.stampPath("a/b"), []byte("garbage\x00"), 0o644)
	if got, err := s.Check("a/b", in); err != nil || got.Fresh || got.Reason != "its stamp is damaged" {
		t.Fatalf("damaged stamp: %+v, %v", got, err)
	}
}

func TestCommitRemovesOutputsNoLongerMade(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	if _, err := s.Commit("log/a", inputs("3"), map[string][]byte{"logs/2026-01-01_a.json": []byte("1")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit("log/a", inputs("4"), map[string][]byte{"logs/2026-01-02_a.json": []byte("2")}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path("logs/2026-01-01_a.json")); !os.IsNotExist(err) {
		t.Fatalf("the previous build's output is still there: %v", err)
	}
	if b, _ := os.ReadFile(s.Path("logs/2026-01-02_a.json")); string(b) != "2" {
		t.Fatal("new output missing")
	}
}

// A stamp vouches only for itself: cut to its key line, edited by hand, or
// naming no output, it makes its target stale, never fresh, even when the
// outputs were edited to match what someone wants to see.
func TestDamagedStampIsNeverFresh(t *testing.T) {
	in := inputs("3")
	for _, tc := range []struct {
		name   string
		damage func(stamp []byte) []byte
	}{
		{"truncated to its key line", func(b []byte) []byte { return b[:bytes.IndexByte(b, '\n')+1] }},
		{"sum line dropped", func(b []byte) []byte {
			return b[:bytes.LastIndex(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))+1]
		}},
		{"output hash edited", func(b []byte) []byte {
			return bytes.Replace(b, []byte(Hash([]byte(`{"mean":12.5}`))), []byte(Hash([]byte(`{"mean":99.9}`))), 1)
		}},
		{"outputs removed, sum recomputed", func(b []byte) []byte {
			var kept []byte
			for _, line := range bytes.SplitAfter(b, []byte("\n")) {
				if !bytes.HasPrefix(line, []byte("output ")) && !bytes.HasPrefix(line, []byte("sum ")) {
					kept = append(kept, line...)
				}
			}
			return append(kept, fmt.Sprintf("sum %s\n", Hash(kept))...)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{Root: t.TempDir()}
			if _, err := s.Commit("eval/m/t", in, map[string][]byte{"evals/m/t.json": []byte(`{"mean":12.5}`)}, nil); err != nil {
				t.Fatal(err)
			}
			stamp, _ := os.ReadFile(s.stampPath("eval/m/t"))
			os.WriteFile(s.stampPath("eval/m/t"), tc.damage(stamp), 0o644)
			os.WriteFile(s.Path("evals/m/t.json"), []byte(`{"mean":99.9}`), 0o644)
			st, err := s.Check("eval/m/t", in)
			if err != nil || st.Fresh || st.Reason != "its stamp is damaged" {
				t.Fatalf("check: %+v, %v", st, err)
			}
		})
	}
}

// Every read of a recorded output is checked against its stamp.
func TestReadVerifiesOutput(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	st, err := s.Commit("train/a", inputs("3"), map[string][]byte{"train/a.json": []byte("v1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := s.Read(st, "train/a.json"); err != nil || string(b) != "v1" {
		t.Fatalf("read: %q, %v", b, err)
	}
	os.WriteFile(s.Path("train/a.json"), []byte("v2"), 0o644)
	if _, err := s.Read(st, "train/a.json"); err == nil || !strings.Contains(err.Error(), "modified after train/a built it") {
		t.Fatalf("read of an edited output: %v", err)
	}
	if _, err := s.Read(st, "other.json"); err == nil {
		t.Fatal("read an output the stamp does not name")
	}
	if _, err := s.Commit("empty", inputs("3"), nil, nil); err == nil {
		t.Fatal("committed a target without outputs")
	}
}

// Files a target depends on but does not own (a provider's state) make it
// stale when they go, and are never removed by a rebuild.
func TestRecordedFiles(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	os.MkdirAll(s.Path("engine"), 0o755)
	os.WriteFile(s.Path("engine/job.json"), []byte("job"), 0o644)
	commit := func(epochs string) {
		t.Helper()
		if _, err := s.Commit("train/a", inputs(epochs), map[string][]byte{"train/a.json": []byte(epochs)}, []string{"engine/job.json"}); err != nil {
			t.Fatal(err)
		}
	}
	commit("3")
	commit("4")
	if st, _ := s.Check("train/a", inputs("4")); !st.Fresh {
		t.Fatalf("after rebuild: %+v", st)
	}
	os.Remove(s.Path("engine/job.json"))
	if st, _ := s.Check("train/a", inputs("4")); st.Fresh || st.Reason != "provider state engine/job.json is missing" {
		t.Fatalf("after the provider's state went: %+v", st)
	}
}

// An invalidated target is stale with its reason until rebuilt.
func TestInvalidate(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	if _, err := s.Commit("train/a", inputs("3"), map[string][]byte{"train/a.json": []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Invalidate("train/a", "provider no longer serves ft:x"); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Check("train/a", inputs("3")); st.Fresh || st.Reason != "provider no longer serves ft:x" {
		t.Fatalf("after invalidate: %+v", st)
	}
	if st, _ := s.Check("train/a", inputs("5")); !strings.Contains(st.Reason, "n_epochs changed (3 -> 5)") {
		t.Fatalf("changed inputs still named: %+v", st)
	}
	if _, err := s.Commit("train/a", inputs("3"), map[string][]byte{"train/a.json": []byte("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Check("train/a", inputs("3")); !st.Fresh {
		t.Fatalf("after rebuild: %+v", st)
	}
}

// No stamp file, however damaged, makes a check panic, and a stamp that
// parses writes back as a stamp that parses to the same key and outputs.
func FuzzParseStamp(f *testing.F) {
	st := &Stamp{Key: inputs("3").Key(), Inputs: inputs("3"), Outputs: map[string]string{"a b": Hash(nil)}, Files: map[string]string{"f": Hash(nil)}, Stale: "why"}
	f.Add(st.marshal())
	f.Add([]byte("sum x\n"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseStamp(b)
		if !ok {
			return
		}
		again, ok := parseStamp(got.marshal())
		if !ok || again.Key != got.Key || !maps.Equal(again.Outputs, got.Outputs) || !maps.Equal(again.Files, got.Files) {
			t.Fatalf("parsed %q into a stamp that does not round-trip", b)
		}
	})
}

// A stamp is only self-checked, so anyone can forge one: a stamp that names
// a file outside the store (a restored CI cache from elsewhere, say) is
// damaged, and neither Check nor a rebuild reads or removes that file.
func TestAbuseStampNamingFileOutsideStore(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "paper.tex")
	if err := os.WriteFile(victim, []byte("results"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Store{Root: filepath.Join(dir, "artifacts")}
	for _, name := range []string{"../paper.tex", "logs/../../paper.tex", victim, "/etc/passwd"} {
		forged := &Stamp{Target: "log/a", Key: inputs("3").Key(), Inputs: inputs("3"),
			Outputs: map[string]string{name: Hash([]byte("results"))}, Files: map[string]string{}}
		if err := os.MkdirAll(filepath.Dir(s.stampPath("log/a")), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s.stampPath("log/a"), forged.marshal(), 0o644); err != nil {
			t.Fatal(err)
		}
		st, err := s.Check("log/a", inputs("3"))
		if err != nil || st.Fresh || st.Reason != "its stamp is damaged" {
			t.Fatalf("stamp naming %s: %+v, %v; want damaged", name, st, err)
		}
		if _, err := s.Commit("log/a", inputs("3"), map[string][]byte{"logs/a.json": []byte("1")}, nil); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(victim); err != nil || string(b) != "results" {
			t.Fatalf("after a rebuild over a stamp naming %s, %s: %q, %v", name, victim, b, err)
		}
	}
}
