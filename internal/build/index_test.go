package build

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// later is a clock a minute ahead of the wall clock: every file written
// so far has settled, as it has for the next run of a real build.
func later() time.Time { return time.Now().Add(time.Minute) }

// built commits n targets of two outputs each and saves the index as a
// run ending a minute later would.
func built(t *testing.T, n int) *Store {
	t.Helper()
	s := &Store{Root: t.TempDir(), Clock: later}
	for i := range n {
		outs := map[string][]byte{
			fmt.Sprintf("evals/m%d/a.json", i): fmt.Appendf(nil, `{"mean":%d}`, i),
			fmt.Sprintf("logs/m%d/a.eval", i):  fmt.Appendf(nil, "log %d", i),
		}
		if _, err := s.Commit(fmt.Sprintf("eval/m%d/a", i), inputs("3"), outs, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

// rerun is the next run over the same artifacts: a new store, loading the
// index; it checks every target and returns how many files it read.
func rerun(t *testing.T, root string, n int) (*Store, int64) {
	t.Helper()
	s := &Store{Root: root, Clock: later}
	for i := range n {
		st, err := s.Check(fmt.Sprintf("eval/m%d/a", i), inputs("3"))
		if err != nil || !st.Fresh {
			t.Fatalf("m%d: %+v, %v", i, st, err)
		}
	}
	return s, s.reads.Load()
}

func TestNoopCheckReadsNothingTheIndexKnows(t *testing.T) {
	s := built(t, 20)
	if _, reads := rerun(t, s.Root, 20); reads != 0 {
		t.Fatalf("a no-op check read %d files; the index knows them all", reads)
	}
}

// A CI cache restore gives every file a new inode and new times: each is
// hashed once, found fresh, and the run after reads nothing.
func TestRestoredStoreIsHashedOnceThenIndexed(t *testing.T) {
	src := built(t, 10)
	root := filepath.Join(t.TempDir(), "artifacts")
	if err := os.CopyFS(root, os.DirFS(src.Root)); err != nil {
		t.Fatal(err)
	}
	s, reads := rerun(t, root, 10)
	if reads != 30 { // 10 stamps and 20 outputs
		t.Fatalf("first check after a restore read %d files, want 30", reads)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, reads := rerun(t, root, 10); reads != 0 {
		t.Fatalf("second check after a restore read %d files", reads)
	}
}

// An edit that keeps the size and puts the modification time back still
// changes the change time: the index does not vouch for the file.
func TestIndexCatchesEditWithRestoredTimes(t *testing.T) {
	s := built(t, 3)
	for _, rel := range []string{"evals/m1/a.json", ".stamps/eval/m2/a.stamp"} {
		path := filepath.Join(s.Root, filepath.FromSlash(rel))
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(path)
		b[len(b)-2] ^= 1 // same size
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, info.ModTime(), info.ModTime()); err != nil {
			t.Fatal(err)
		}
	}
	r := &Store{Root: s.Root, Clock: later}
	for target, want := range map[string]string{
		"eval/m0/a": "",
		"eval/m1/a": "output evals/m1/a.json was modified",
		"eval/m2/a": "its stamp is damaged",
	} {
		st, err := r.Check(target, inputs("3"))
		if err != nil || st.Fresh != (want == "") || st.Reason != want {
			t.Errorf("%s: %+v, %v; want reason %q", target, st, err, want)
		}
	}
}

// Git's racily clean case: a file that changes within the timestamp
// granularity of the moment its content was learnt may keep its
// fingerprint, so such a fact is not trusted, in this run or the next.
func TestRacyFactsAreNotTrusted(t *testing.T) {
	s := &Store{Root: t.TempDir()} // the wall clock: outputs have not settled
	out := map[string][]byte{"train/a.json": []byte(`{"model":"m1"}`)}
	if _, err := s.Commit("train/a", inputs("3"), out, nil); err != nil {
		t.Fatal(err)
	}
	// Same size, at once: likely the same timestamps.
	if err := os.WriteFile(s.Path("train/a.json"), []byte(`{"model":"m2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Check("train/a", inputs("3")); st.Fresh {
		t.Fatal("an edit right after the build was called fresh in the same run")
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	r := &Store{Root: s.Root}
	if st, _ := r.Check("train/a", inputs("3")); st.Fresh {
		t.Fatal("an edit right after the build was called fresh in the next run")
	}
	if r.reads.Load() != 2 {
		t.Fatalf("the next run read %d files; racy facts must be read again", r.reads.Load())
	}
}

func TestDamagedIndexIsIgnored(t *testing.T) {
	for name, damage := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"edited": func(b []byte) []byte {
			return []byte(strings.Replace(string(b), "evals/m1/a.json", "evals/m1/b.json", 1))
		},
		"garbage": func([]byte) []byte { return []byte("\x00\x01garbage") },
		"empty":   func([]byte) []byte { return nil },
	} {
		t.Run(name, func(t *testing.T) {
			s := built(t, 3)
			b, err := os.ReadFile(s.indexPath())
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(s.indexPath(), damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, reads := rerun(t, s.Root, 3); reads != 9 {
				t.Fatalf("read %d files with a damaged index, want all 9", reads)
			}
		})
	}
}

// The index holds facts about files, never a verdict: a target whose
// inputs changed, or whose stamp was invalidated, is stale whatever it says.
func TestIndexNeverOverridesKeysOrInvalidation(t *testing.T) {
	s := built(t, 2)
	r := &Store{Root: s.Root, Clock: later}
	if st, _ := r.Check("eval/m0/a", inputs("5")); st.Fresh || st.Reason != "n_epochs changed (3 -> 5)" {
		t.Fatalf("changed inputs: %+v", st)
	}
	if err := r.Invalidate("eval/m1/a", "its training was lost"); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	q := &Store{Root: s.Root, Clock: later}
	if st, _ := q.Check("eval/m1/a", inputs("3")); st.Fresh || st.Reason != "its training was lost" {
		t.Fatalf("invalidated: %+v", st)
	}
}

func TestFlushWithoutNewFactsWritesNothing(t *testing.T) {
	s := built(t, 2)
	before, err := os.Stat(s.indexPath())
	if err != nil {
		t.Fatal(err)
	}
	r, _ := rerun(t, s.Root, 2)
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat(s.indexPath())
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("a no-op run rewrote the index")
	}
}

func TestKeyMatchesItsDefinition(t *testing.T) {
	// The key the fmt-based Key gave (computed with it): keys must not change,
	// or every existing artifacts/ would rebuild.
	in := Inputs{{"format", "eval/3"}, {"a", ""}, {"limit", "20"}, {"ü", "x\ny"}}
	if got, want := in.Key(), "cb92b62529ff0dd7bc93d4ac8c14ab8852faaa6088dcbc851d1bb7ce231078fd"; got != want {
		t.Fatalf("key %s, want %s", got, want)
	}
	for _, v := range []any{0, -3, 1 << 40, int64(-7), uint64(1 << 63), true, false, 0.1, 1e21, 1e-7, 2.0, 3.5, "s", []int{1}} {
		var in Inputs
		in.Add("v", v)
		if in[0].Value != fmt.Sprint(v) {
			t.Errorf("Add(%#v) = %q, fmt.Sprint gives %q", v, in[0].Value, fmt.Sprint(v))
		}
	}
}

// keyByDefinition is Key as it was first written, with fmt and a sort:
// the key every stamp on disk holds.
func keyByDefinition(in Inputs) string {
	sorted := slices.Clone(in)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	h := sha256.New()
	for _, x := range sorted {
		fmt.Fprintf(h, "%d:%s%d:%s", len(x.Name), x.Name, len(x.Value), x.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func FuzzKeyMatchesDefinition(f *testing.F) {
	f.Add([]byte("format=1;n_epochs=3;dataset=abc"), uint8(3))
	f.Add([]byte(strings.Repeat("x=1;", 100)), uint8(70))
	f.Fuzz(func(t *testing.T, spec []byte, n uint8) {
		// n inputs with distinct names (a target's inputs have no two
		// alike), names and values drawn from spec.
		var in Inputs
		seen := map[string]bool{}
		parts := strings.Split(string(spec), ";")
		for i := range int(n) {
			name, value, _ := strings.Cut(parts[i%len(parts)], "=")
			name += strconv.Itoa(i * 7919 % 101)
			if seen[name] {
				continue
			}
			seen[name] = true
			in = append(in, Input{name, value})
		}
		if got, want := in.Key(), keyByDefinition(in); got != want {
			t.Fatalf("Key %s, by definition %s, for %q", got, want, in)
		}
	})
}
