package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/modelorganisms/pvbuild/internal/atomicfile"
	"github.com/modelorganisms/pvbuild/internal/provider"
)

// The spending ledger: before a paid training is submitted, its estimate is
// recorded durably under artifacts/spend, one file per training key, so
// that budget_usd covers everything this experiment has submitted, by any
// run, and not only what one run submits.

const spendDir = "spend"

// spendRecord is one submitted paid training.
type spendRecord struct {
	Key      string    `json:"key"`
	Models   []string  `json:"models"`
	Provider string    `json:"provider"`
	USD      float64   `json:"estimate_usd"`
	Priced   bool      `json:"priced"`
	Time     time.Time `json:"time"`
}

func (p *Pipeline) spendPath(key string) string {
	return p.artifactPath(spendDir + "/" + provider.RecordName(key))
}

// readSpend reads and checks one ledger entry. An entry that cannot be
// read, names no key, a negative amount or a key its file is not named
// after is unknown spending: the error names the file, and both the budget
// check and recordSpend refuse it rather than skip or overwrite it.
func (p *Pipeline) readSpend(path string) (spendRecord, error) {
	b, err := os.ReadFile(path)
	var rec spendRecord
	if err == nil {
		err = json.Unmarshal(b, &rec)
	}
	if err == nil && (rec.Key == "" || rec.USD < 0) {
		err = errors.New("no key or a negative amount")
	}
	if err == nil && p.spendPath(rec.Key) != path {
		err = fmt.Errorf("its key %.16s does not match its file name", rec.Key)
	}
	if err != nil {
		// Unknown spending cannot be checked against a budget.
		return spendRecord{}, fmt.Errorf("%s: unreadable record of a submitted training (%v); restore it, or delete it if that training was never submitted", path, err)
	}
	return rec, nil
}

// recordSpend writes the ledger entry of a training about to be submitted;
// a training already recorded (resumed, adopted) keeps its first entry. A
// damaged entry in its place is refused, as spent refuses it.
func (p *Pipeline) recordSpend(key string, models []string, usd float64, priced bool) error {
	path := p.spendPath(key)
	if _, err := os.Stat(path); err == nil {
		rec, err := p.readSpend(path)
		if err != nil {
			return err
		}
		if rec.Key != key {
			return fmt.Errorf("%s: the ledger entry of another training (key %.16s) is in the place of this one's", path, rec.Key)
		}
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read the spending ledger: %w", err)
	}
	b, _ := json.MarshalIndent(spendRecord{Key: key, Models: models, Provider: p.exp.Training.Provider,
		USD: usd, Priced: priced, Time: time.Now().UTC().Truncate(time.Second)}, "", "  ")
	if err := atomicfile.Write(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("record the training's estimate before submitting it: %w", err)
	}
	return nil
}

// spent sums the ledger, leaving out the keys in except (trainings about to
// be submitted, which the caller counts as new).
func (p *Pipeline) spent(except map[string]bool) (usd float64, jobs int, err error) {
	dir := p.artifactPath(spendDir)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read the spending ledger: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		rec, err := p.readSpend(filepath.Join(dir, name))
		if err != nil {
			return 0, 0, err
		}
		if except[rec.Key] {
			continue
		}
		usd += rec.USD
		jobs++
	}
	return usd, jobs, nil
}
