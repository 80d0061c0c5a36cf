package pipeline

import (
	"errors"
	"fmt"
)

// removeOrphanLogs removes the Inspect logs of log targets no longer in the
// graph (a task or model removed from experiment.hcl), with their stamps:
// Inspect's viewer shows every log in the folder as current. Only what a
// stamp recorded, unchanged since, is removed; any other file stays.
func (p *Pipeline) removeOrphanLogs() (int, error) {
	stamped, err := p.cache.Targets("log/")
	if err != nil {
		return 0, fmt.Errorf("remove logs of removed targets: %w", err)
	}
	live := map[string]bool{}
	for _, t := range p.targets {
		live[t.id] = true
	}
	removed := 0
	var errs []error
	for _, id := range stamped {
		if live[id] {
			continue
		}
		n, err := p.cache.Remove(id)
		removed += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("remove logs of removed targets: %w", err)
	}
	return removed, nil
}
