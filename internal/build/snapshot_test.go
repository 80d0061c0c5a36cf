package build

import (
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// checked is every target of built(t, n), checked by a new run: the stamps
// a snapshot is derived from.
func checked(t *testing.T, s *Store, n int) []*Stamp {
	t.Helper()
	var stamps []*Stamp
	for i := range n {
		st, err := s.Check(fmt.Sprintf("eval/m%d/a", i), inputs("3"))
		if err != nil || !st.Fresh {
			t.Fatalf("m%d: %+v, %v", i, st, err)
		}
		stamps = append(stamps, st.Stamp)
	}
	return stamps
}

func saved(t *testing.T, n int) *Store {
	t.Helper()
	s := &Store{Root: built(t, n).Root, Clock: later}
	ok, err := s.SaveSnapshot([]byte("the plan"), checked(t, s, n))
	if err != nil || !ok {
		t.Fatalf("a settled store kept no snapshot: %v", err)
	}
	return s
}

func TestSnapshotHoldsWhileNothingChanged(t *testing.T) {
	s := saved(t, 5)
	sn := s.LoadSnapshot()
	if sn == nil || string(sn.Data) != "the plan" {
		t.Fatalf("snapshot read back as %+v", sn)
	}
	files := 0
	for _, d := range sn.dirs {
		files += strings.Count(d.files, "\n")
	}
	if files != 5*3 {
		t.Fatalf("the snapshot vouches by %d files, want 5 stamps and their 10 outputs", files)
	}
	if !s.Unchanged(sn) {
		t.Fatal("a store nobody touched reads as changed")
	}
}

// Every way a file can change, even one that keeps its size and mtime,
// shows as a change.
func TestSnapshotSeesEveryChange(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, root string)
	}{
		{"output edited, size and mtime put back", func(t *testing.T, root string) {
			path := filepath.Join(root, "evals/m3/a.json")
			info, _ := os.Stat(path)
			if err := os.WriteFile(path, []byte(`{"mean":9}`), 0o644); err != nil {
				t.Fatal(err)
			}
			os.Chtimes(path, info.ModTime(), info.ModTime())
		}},
		{"output removed", func(t *testing.T, root string) { os.Remove(filepath.Join(root, "logs/m0/a.eval")) }},
		{"output replaced by a directory", func(t *testing.T, root string) {
			path := filepath.Join(root, "logs/m1/a.eval")
			os.Remove(path)
			os.Mkdir(path, 0o755)
		}},
		{"stamp rewritten in place", func(t *testing.T, root string) {
			path := filepath.Join(root, ".stamps/eval/m4/a.stamp")
			b, _ := os.ReadFile(path)
			if err := os.WriteFile(path, flip(b, 5), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"stamp removed", func(t *testing.T, root string) { os.Remove(filepath.Join(root, ".stamps/eval/m2/a.stamp")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := saved(t, 5)
			tc.change(t, s.Root)
			if s.Unchanged(s.LoadSnapshot()) {
				t.Fatal("the change went unseen")
			}
		})
	}
}

// A copied store (a CI restore) has new inodes and times: its snapshot
// holds nothing until a run has checked it again.
func TestCopiedSnapshotHoldsNothing(t *testing.T) {
	s := saved(t, 3)
	dst := t.TempDir()
	if err := os.CopyFS(dst, os.DirFS(s.Root)); err != nil {
		t.Fatal(err)
	}
	c := &Store{Root: dst}
	sn := c.LoadSnapshot()
	if sn == nil {
		t.Fatal("the copied snapshot did not read")
	}
	if c.Unchanged(sn) {
		t.Fatal("a copy vouched for by the original's fingerprints")
	}
}

// A file written a moment ago may yet be edited within the clock's tick:
// a snapshot is kept only of facts the index trusts.
func TestSnapshotOfUnsettledFilesIsNotKept(t *testing.T) {
	s := &Store{Root: t.TempDir()} // the wall clock: nothing has settled
	st, err := s.Commit("eval/m0/a", inputs("3"), map[string][]byte{"evals/m0/a.json": []byte("{}")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := s.SaveSnapshot([]byte("the plan"), []*Stamp{st})
	if err != nil || ok {
		t.Fatalf("kept a snapshot of a file written just now (ok %v, err %v)", ok, err)
	}
	if s.LoadSnapshot() != nil {
		t.Fatal("a snapshot was written")
	}
}

func TestDamagedSnapshotIsIgnored(t *testing.T) {
	s := saved(t, 2)
	path := s.snapshotPath()
	good, _ := os.ReadFile(path)
	// A file outside the store, named in forgeries with its true
	// fingerprint: only refusing such names keeps them from holding.
	outside := filepath.Join(filepath.Dir(s.Root), "outside.json")
	if err := os.WriteFile(outside, []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	fp, _ := Identity(outside)
	block := regexp.MustCompile("d\tevals/m0\n([0-9a-f]{64}\t[^\n]*\n)+")
	// A true line with more after a NUL: the system call would read the
	// name only up to it, and find the file the line names.
	firstFile := regexp.MustCompile("d\tevals/m0\n[0-9a-f]{64}\t[^\n]*")
	cutByNUL := string(firstFile.Find(good)) + "\x00.forged"
	for name, b := range map[string][]byte{
		"truncated":                    good[:len(good)/2],
		"a byte flipped":               flip(good, len(good)/3),
		"empty":                        {},
		"a directory out of the store": forge(good, block, "d\t..\n"+fp+"\toutside.json\n"),
		"a file out of its directory":  forge(good, block, "d\tevals/m0\n"+fp+"\t../../../outside.json\n"),
		"a name cut by a NUL":          forge(good, firstFile, cutByNUL),
	} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if sn := s.LoadSnapshot(); sn != nil && s.Unchanged(sn) {
			t.Errorf("%s: the snapshot held, as %q", name, sn.Data)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x20
	return c
}

// forge rewrites what re matches in a snapshot and makes its checksum
// right again, as someone editing it by hand could.
func forge(b []byte, re *regexp.Regexp, with string) []byte {
	body, _, _ := cutTrailer(b, "crc ")
	loc := re.FindIndex(body)
	if loc == nil {
		panic("forge: nothing to rewrite")
	}
	body = slices.Concat(body[:loc[0]], []byte(with), body[loc[1]:])
	return fmt.Appendf(body, "crc %x\n", crc32.Checksum(body, castagnoli))
}
