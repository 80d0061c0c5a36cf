package pipeline

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/modelorganisms/pvbuild/internal/build"
)

// Clean is CleanTo on standard output.
func Clean(root string) error { return CleanTo(os.Stdout, root) }

// CleanTo removes everything under the artifacts directory. It takes the
// lock first, so it never pulls files from under a running build. A
// directory whose own lock a live process holds (the state of a running
// `serve`) is kept, and out is told which and by whom: removing it would
// break that server for every client. The spending ledger is kept too:
// starting the build over does not give the money back, and budget_usd
// counts it. Remote jobs are not touched.
func CleanTo(out io.Writer, root string) error {
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
		path := filepath.Join(root, e.Name())
		if e.Name() == spendDir {
			fmt.Fprintf(out, "kept %s: the record of paid trainings that budget_usd counts; delete it by hand to forget that spending\n", path)
			continue
		}
		if !e.IsDir() {
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("clean: %w", err)
			}
			continue
		}
		// Held while the directory goes, so that a server starting now
		// either holds it first (and it is kept) or finds it gone.
		dirLock, err := build.LockDir(path, "clean")
		var locked *build.LockedError
		if errors.As(err, &locked) {
			fmt.Fprintf(out, "kept %s: %s is using it; stop that process and run clean again to remove it\n", path, locked.Holder)
			continue
		}
		if err != nil {
			return fmt.Errorf("clean: %w", err)
		}
		err = os.RemoveAll(path)
		dirLock.Unlock()
		if err != nil {
			return fmt.Errorf("clean: %w", err)
		}
	}
	return nil
}
