package testtmp

import (
	"os"
	"path/filepath"
	"testing"
)

func TestInMemory(t *testing.T) {
	t.Setenv("TMPDIR", "/somewhere/else")
	if dir := InMemory(); dir != "" || os.Getenv("TMPDIR") != "/somewhere/else" {
		t.Fatalf("a set TMPDIR was replaced by %q", dir)
	}
	t.Setenv("TMPDIR", "")
	os.Unsetenv("TMPDIR")
	dir := InMemory()
	if dir == "" {
		t.Skip("no tmpfs /dev/shm with room here")
	}
	defer os.RemoveAll(dir)
	if filepath.Dir(dir) != "/dev/shm" || os.Getenv("TMPDIR") != dir || os.TempDir() != dir {
		t.Fatalf("dir %q, TMPDIR %q, os.TempDir %q", dir, os.Getenv("TMPDIR"), os.TempDir())
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Fatalf("%s: %v", dir, err)
	}
}
