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
