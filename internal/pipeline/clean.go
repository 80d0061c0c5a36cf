package pipeline

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/modelorganisms/pvbuild/internal/build"
)

// Clean removes everything under the artifacts directory. It takes the lock
// first, so it never pulls files from under a running build. Remote jobs are
// not touched.
func Clean(root string) error {
	store := &build.Store{Root: root}
	if _, err := os.Stat(root); os.IsNotExist(err) {
		return nil
	}
	lock, err := store.Lock()
	if err != nil {
		return err
	}
	defer lock.Unlock()
	entries, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("clean: %w", err)
	}
	for _, e := range entries {
		if e.Name() == ".lock" {
			continue
		}
		if err := os.RemoveAll(filepath.Join(root, e.Name())); err != nil {
			return fmt.Errorf("clean: %w", err)
		}
	}
	return nil
}
