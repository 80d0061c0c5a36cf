package build

import (
	"errors"
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
	if _, err := s.Commit("train/a", inputs("3"), map[string][]byte{"train/a.json": []byte(`{"model":"m"}`)}); err != nil {
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
	if _, err := src.Commit("results", inputs("3"), map[string][]byte{"eval_results.json": []byte("[]")}); err != nil {
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
	if _, err := s.Commit("a/b", in, map[string][]byte{"dir/out file.json": []byte("x")}); err != nil {
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
	if got, err := s.Check("a/b", in); err != nil || got.Fresh || got.Reason != "never built" {
		t.Fatalf("damaged stamp: %+v, %v", got, err)
	}
}

func TestCommitRemovesOutputsNoLongerMade(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	if _, err := s.Commit("log/a", inputs("3"), map[string][]byte{"logs/2026-01-01_a.json": []byte("1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Commit("log/a", inputs("4"), map[string][]byte{"logs/2026-01-02_a.json": []byte("2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Path("logs/2026-01-01_a.json")); !os.IsNotExist(err) {
		t.Fatalf("the previous build's output is still there: %v", err)
	}
	if b, _ := os.ReadFile(s.Path("logs/2026-01-02_a.json")); string(b) != "2" {
		t.Fatal("new output missing")
	}
}
