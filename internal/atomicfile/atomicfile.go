// Package atomicfile writes files so that a reader, or a crash, never sees a
// half-written one: data goes to a temporary file in the same directory, is
// synced, and is renamed over the target.
//
// Durable writes share their syncs. Where the system can sync a whole
// filesystem (syncfs(2) on Linux), a Write joins the next round of a shared
// syncer twice: once after writing its temporary file, so that the data is
// on disk before any name points at it, and once after the rename, so that
// the rename is. A round starts only after every write it covers, and ends
// with one syncfs for all of them (a round of one caller fsyncs its file,
// or directory, alone); concurrent writers, such as a thousand trainings
// recording their jobs at once, then share a handful of syncs instead of
// issuing two each. Where syncfs is missing or fails, a Write syncs its own
// file and directory.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
)

// Write atomically replaces path with data, creating parent directories, and
// syncs it: once Write returns, the file survives a crash.
func Write(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, true)
}

// WriteCache is Write without the syncs, for caches: a reader still never sees
// a partial file, but a crash may lose the entry, which is then fetched again.
func WriteCache(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, false)
}

func write(path string, data []byte, perm os.FileMode, durable bool) error {
	dir := filepath.Dir(path)
	tmp, err := createTemp(dir, "."+filepath.Base(path)+".tmp-", perm)
	if errors.Is(err, fs.ErrNotExist) {
		// The directory is made only when missing: a build writes tens of
		// thousands of files into directories that exist.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		tmp, err = createTemp(dir, "."+filepath.Base(path)+".tmp-", perm)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	// The data must be on disk before the name points at it.
	if durable && !syncShared(tmp) {
		if err := syncOwn(tmp); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	done = true
	if !durable {
		return nil
	}
	// Then the rename itself, and any directory MkdirAll made, must be.
	d, err := os.Open(dir)
	if err != nil {
		return nil // as before: the file is in place, only its sync is lost
	}
	defer d.Close()
	if !syncShared(d) {
		syncOwn(d)
	}
	return nil
}

// createTemp creates a new file with a random name in dir, with perm (as
// any new file, less the umask): unlike os.CreateTemp's 0600, it needs no
// chmod after.
func createTemp(dir, prefix string, perm os.FileMode) (*os.File, error) {
	for range 100 {
		name := filepath.Join(dir, prefix+strconv.FormatUint(rand.Uint64(), 36))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, perm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("create a temporary file in %s: too many names taken", dir)
}

// syncOwn is the fallback: fsync of one file or directory. Tests count it.
var syncOwn = (*os.File).Sync
