package inputfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestAbuseResolve(t *testing.T) {
	for _, tt := range []struct{ name, want, err string }{
		{"qs.txt", "/exp/qs.txt", ""},
		{"data/../qs.txt", "/exp/qs.txt", ""},
		{"/abs/qs.txt", "/abs/qs.txt", ""},
		{"../qs.txt", "", "leaves the experiment's folder"},
		{"data/../../qs.txt", "", "leaves the experiment's folder"},
		{"", "", "empty"},
		{"a\x00b", "", "NUL"},
	} {
		got, err := Resolve("/exp", tt.name)
		if tt.err == "" && (err != nil || got != tt.want) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("Resolve(%q) = %q, %v; want %q, %q", tt.name, got, err, tt.want, tt.err)
		}
	}
}

func TestAbuseReadBounds(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("12345"), 0o644)
	if b, err := Read(p, 5); err != nil || string(b) != "12345" {
		t.Errorf("at the limit: %q, %v", b, err)
	}
	if _, err := Read(p, 4); err == nil || !strings.Contains(err.Error(), "larger than the 4 bytes limit") {
		t.Errorf("over the limit: %v", err)
	}
	if _, err := Read(dir, 0); err == nil || !strings.Contains(err.Error(), "is not a regular file (a directory)") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Read(filepath.Join(dir, "none"), 0); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "none does not exist") {
		t.Errorf("missing: %v", err)
	}
	// A link inside the folder is followed: whoever made it chose it.
	os.Symlink(p, filepath.Join(dir, "link"))
	if b, err := Read(filepath.Join(dir, "link"), 0); err != nil || string(b) != "12345" {
		t.Errorf("symlink: %q, %v", b, err)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[uint64]string{
		5: "5 bytes", 2 << 10: "2 KiB", 1536: "1.5 KiB", 64 << 20: "64 MiB",
		3 << 19: "1.5 MiB", 4 << 30: "4 GiB", 5 << 29: "2560 MiB",
	} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestOpenRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := Open(dir); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "is not a regular file (a directory)") {
		t.Errorf("directory: %v", err)
	}
	if _, _, err := Open(filepath.Join(dir, "none")); !errors.Is(err, os.ErrNotExist) || errors.Is(err, ErrNotRegular) {
		t.Errorf("missing: %v", err)
	}
	p := filepath.Join(dir, "f")
	os.WriteFile(p, []byte("123"), 0o644)
	f, fi, err := Open(p)
	if err != nil || fi.Size() != 3 {
		t.Fatalf("regular file: %v", err)
	}
	f.Close()
}
