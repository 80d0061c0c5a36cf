//go:build unix

package build

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Lock is an exclusive hold on a store: one run at a time, never interleaved.
type Lock struct{ f *os.File }

// ErrLocked is returned when another process holds the store.
var ErrLocked = errors.New("artifacts are locked by another run")

// LockedError is the ErrLocked of a lock another process holds: Holder
// names it ("process 1234 (serve at 127.0.0.1:8080)"), Path is its lock file.
type LockedError struct {
	Path, Holder string
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("%v: %s holds %s; wait for it to finish and run again", ErrLocked, e.Holder, e.Path)
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock takes the store's lock without waiting. The kernel releases it when
// the process dies, so a killed run never leaves a stale lock behind.
func (s *Store) Lock() (*Lock, error) { return LockDir(s.Root, "") }

// LockDir takes the lock of dir (dir/.lock, dir created if need be) without
// waiting, as Store.Lock does. what says what holds it, such as "serve at
// 127.0.0.1:8080"; another process trying the lock is told, with the pid.
func LockDir(dir, what string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: path, Holder: describeHolder(string(holder))}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// The first line is the pid; the optional second says what the
	// process is doing.
	record := strconv.Itoa(os.Getpid()) + "\n"
	if what != "" {
		record += strings.ReplaceAll(what, "\n", " ") + "\n"
	}
	// Written over the last record, then cut to length: truncating to
	// nothing first makes the file system free and allocate its block on
	// every run (a tenth of a millisecond here).
	f.WriteAt([]byte(record), 0)
	f.Truncate(int64(len(record)))
	return &Lock{f}, nil
}

// describeHolder names the process a lock file records.
func describeHolder(record string) string {
	pidLine, what, _ := strings.Cut(record, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(pidLine))
	if err != nil {
		return "another process"
	}
	who := "process " + strconv.Itoa(pid)
	if what = strings.TrimSpace(what); what != "" {
		who += " (" + what + ")"
	}
	return who
}

// Unlock releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	// Unlock explicitly before closing: a child process forked at this
	// moment (exec of another test, a provider's helper) holds a copy of
	// the descriptor until its exec, and with it the lock.
	uerr := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	err := l.f.Close()
	l.f = nil
	return errors.Join(uerr, err)
}
