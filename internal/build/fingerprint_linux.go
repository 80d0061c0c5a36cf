package build

import (
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// statFingerprint stats path in one syscall, with no file object on the
// heap: a no-op plan makes tens of thousands of these.
func statFingerprint(path string) (fingerprint, error) {
	var st syscall.Stat_t
	for {
		err := syscall.Stat(path, &st)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return fingerprint{}, &os.PathError{Op: "stat", Path: path, Err: err}
		}
		return fingerprintOf(&st), nil
	}
}

func fileFingerprint(f *os.File) (fingerprint, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return fingerprint{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return fingerprintOf(&st), nil
}

func fingerprintOf(st *syscall.Stat_t) fingerprint {
	return fingerprint{
		size:  int64(st.Size),
		mtime: int64(st.Mtim.Sec)*1e9 + int64(st.Mtim.Nsec),
		ctime: int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec),
		ino:   uint64(st.Ino),
		known: st.Mode&syscall.S_IFMT == syscall.S_IFREG,
	}
}

// syncFilesystem flushes everything written to the filesystem holding dir
// in one call, so that the outputs an index vouches for reach the disk
// before the index does; false where it could not.
func syncFilesystem(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd())) == nil
}

// storeStatter stats files by their path relative to the store's root,
// opened once: the kernel walks only the path inside the store, and no
// directory is opened for its files (which cost a fifth of a no-op's
// stats). Each goroutine gives its own buffer, into which the path is
// copied with its terminating NUL, sparing the allocation unix.Fstatat
// makes for each of tens of thousands of names.
type storeStatter struct{ fd int }

func openStoreStatter(root string) (storeStatter, error) {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return storeStatter{}, &os.PathError{Op: "open", Path: root, Err: err}
	}
	return storeStatter{fd}, nil
}

// stat is the fingerprint of dir/name ("." for the root), both already
// checked to stay inside the store.
func (s storeStatter) stat(buf *[]byte, dir, name string) (fingerprint, error) {
	if strings.IndexByte(dir, 0) >= 0 || strings.IndexByte(name, 0) >= 0 {
		return fingerprint{}, &os.PathError{Op: "stat", Path: name, Err: unix.EINVAL}
	}
	b := (*buf)[:0]
	if dir != "." {
		b = append(append(b, dir...), '/')
	}
	b = append(append(b, name...), 0)
	*buf = b
	var st unix.Stat_t
	for {
		err := fstatat(s.fd, b, &st)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fingerprint{}, &os.PathError{Op: "stat", Path: string(b[:len(b)-1]), Err: err}
		}
		return fingerprint{
			size:  int64(st.Size),
			mtime: int64(st.Mtim.Sec)*1e9 + int64(st.Mtim.Nsec),
			ctime: int64(st.Ctim.Sec)*1e9 + int64(st.Ctim.Nsec),
			ino:   uint64(st.Ino),
			known: st.Mode&unix.S_IFMT == unix.S_IFREG,
		}, nil
	}
}

func (s storeStatter) close() { unix.Close(s.fd) }
