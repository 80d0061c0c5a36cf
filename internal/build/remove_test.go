package build

import (
	"os"
	"slices"
	"testing"
)

// Targets lists stamped targets under a prefix; Remove takes a target's
// stamp and the outputs still as it wrote them, and nothing else.
func TestTargetsAndRemove(t *testing.T) {
	s := &Store{Root: t.TempDir()}
	commit := func(target string, outputs map[string][]byte) {
		t.Helper()
		if _, err := s.Commit(target, inputs("3"), outputs, nil); err != nil {
			t.Fatal(err)
		}
	}
	commit("log/a/x", map[string][]byte{"logs/a/x.json": []byte("x"), "logs/a/x2.json": []byte("x2")})
	commit("log/b", map[string][]byte{"logs/b.json": []byte("b")})
	commit("eval/a", map[string][]byte{"eval/a.json": []byte("e")})
	got, err := s.Targets("log/")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"log/a/x", "log/b"}; !slices.Equal(got, want) {
		t.Fatalf("Targets(log/) = %q, want %q", got, want)
	}
	if got, err := (&Store{Root: t.TempDir()}).Targets("log/"); err != nil || len(got) != 0 {
		t.Fatalf("Targets of an empty store = %q, %v", got, err)
	}

	// An output edited after the build is not the build's to remove.
	os.WriteFile(s.Path("logs/a/x2.json"), []byte("edited"), 0o644)
	os.WriteFile(s.Path("logs/a/other.json"), []byte("someone's"), 0o644)
	n, err := s.Remove("log/a/x")
	if err != nil || n != 1 {
		t.Fatalf("Remove = %d, %v; want 1 output removed", n, err)
	}
	for path, want := range map[string]bool{"logs/a/x.json": false, "logs/a/x2.json": true, "logs/a/other.json": true, "logs/b.json": true, "eval/a.json": true} {
		if _, err := os.Stat(s.Path(path)); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", path, err == nil, want)
		}
	}
	if st, err := s.Stamp("log/a/x"); err != nil || st != nil {
		t.Errorf("stamp after Remove: %+v, %v", st, err)
	}
	if got, _ := s.Targets("log/"); !slices.Equal(got, []string{"log/b"}) {
		t.Errorf("Targets after Remove = %q", got)
	}
	if n, err := s.Remove("log/none"); n != 0 || err != nil {
		t.Errorf("Remove of an unstamped target = %d, %v", n, err)
	}

	// A damaged stamp vouches for no output: only the stamp goes.
	os.WriteFile(s.stampPath("log/b"), []byte("key x\n"), 0o644)
	if n, err := s.Remove("log/b"); n != 0 || err != nil {
		t.Errorf("Remove of a damaged stamp = %d, %v", n, err)
	}
	if _, err := os.Stat(s.Path("logs/b.json")); err != nil {
		t.Errorf("a damaged stamp's output was removed: %v", err)
	}
	if _, err := os.Stat(s.stampPath("log/b")); !os.IsNotExist(err) {
		t.Errorf("the damaged stamp stays: %v", err)
	}
}
