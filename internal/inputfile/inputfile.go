// Package inputfile resolves and reads the files an experiment names
// (questions files, the upstream archive, the experiment file itself): one
// rule for where a path points and one bound on how much is read, so that a
// borrowed or mistaken experiment can neither reach outside its folder by a
// relative path nor exhaust memory.
//
// The rule: a relative path resolves from the experiment file's folder and
// may not leave it through ".."; an absolute path is used as written (the
// user spelled out where it points); the file must be a regular file, not a
// device, FIFO or directory; and at most a fixed number of bytes is read.
package inputfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// DefaultLimit bounds a file read into memory.
const DefaultLimit = 64 << 20

// Resolve returns the path name refers to for an experiment in folder dir.
// Symbolic links inside dir are followed: whoever put them there chose them.
func Resolve(dir, name string) (string, error) {
	if name == "" {
		return "", errors.New("the path is empty")
	}
	if strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%q holds a NUL byte", name)
	}
	if filepath.IsAbs(name) {
		return filepath.Clean(name), nil
	}
	if !filepath.IsLocal(name) {
		return "", fmt.Errorf("%q leaves the experiment's folder; write the absolute path if you mean a file outside it", name)
	}
	return filepath.Join(dir, name), nil
}

// ErrNotRegular is matched (errors.Is) by the error CheckRegular and Open
// return for a path that is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// CheckRegular reports an error unless path is a regular file (following
// links). Opening a FIFO would block and a device may never end, so this is
// asked before opening.
func CheckRegular(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notExist(path)
		}
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is %w (%s)", path, ErrNotRegular, kind(fi.Mode()))
	}
	return fi, nil
}

// Read reads the regular file at path, refusing one larger than limit bytes
// (DefaultLimit if limit <= 0) without reading more than limit+1 of them.
func Read(path string, limit int64) ([]byte, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	f, fi, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi.Size() > limit {
		return nil, tooLarge(path, limit)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, tooLarge(path, limit)
	}
	return b, nil
}

// Open opens the regular file at path, checking before the open (see
// CheckRegular) and again on the open file, which may have been swapped
// since. fi is the open file's.
func Open(path string) (f *os.File, fi os.FileInfo, err error) {
	if _, err := CheckRegular(path); err != nil {
		return nil, nil, err
	}
	if f, err = os.Open(path); err != nil {
		return nil, nil, err
	}
	if fi, err = f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is %w", path, ErrNotRegular)
	}
	return f, fi, nil
}

// notExist says which file is missing in fewer words than fs.PathError,
// and still matches os.ErrNotExist.
type notExist string

func (e notExist) Error() string        { return string(e) + " does not exist" }
func (e notExist) Is(target error) bool { return target == os.ErrNotExist }

func tooLarge(path string, limit int64) error {
	return fmt.Errorf("%s is larger than the %s limit", path, Size(uint64(limit)))
}

// Size renders a byte count the way limits are stated: "64 MiB", or to a
// tenth when it is not a whole number of units: "1.5 MiB".
func Size(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

func kind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.String()
}
