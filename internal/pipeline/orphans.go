package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelorganisms/pvbuild/internal/build"
)

// removeOrphanLogs removes the Inspect logs of log targets no longer in the
// graph (a task or model removed from experiment.hcl), with their stamps:
// Inspect's viewer shows every log in the folder as current. Only what a
// stamp recorded, unchanged since, is removed; any other file stays.
func (p *Pipeline) removeOrphanLogs() (int, error) {
	store, ok := p.cache.(*build.Store)
	if !ok {
		return 0, nil
	}
	live := map[string]bool{}
	for _, t := range p.targets {
		live[t.id] = true
	}
	stamps := store.Path(".stamps/log")
	removed := 0
	var errs []error
	err := filepath.WalkDir(stamps, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".stamp") {
			return err
		}
		rel, err := filepath.Rel(stamps, path)
		if err != nil {
			return err
		}
		id := "log/" + strings.TrimSuffix(filepath.ToSlash(rel), ".stamp")
		if live[id] {
			return nil
		}
		st, err := store.Stamp(id)
		if err != nil || st == nil {
			return err
		}
		for out, hash := range st.Outputs {
			if !strings.HasPrefix(out, "logs/") {
				continue
			}
			b, err := os.ReadFile(store.Path(out))
			if err != nil || build.Hash(b) != hash {
				continue // gone already, or not what the build wrote
			}
			if err := os.Remove(store.Path(out)); err != nil {
				errs = append(errs, err)
				continue
			}
			removed++
		}
		if err := os.Remove(path); err != nil {
			errs = append(errs, err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("remove logs of removed targets: %w", err)
	}
	return removed, nil
}
