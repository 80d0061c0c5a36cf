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

// dirStatter stats the files of one directory by name, relative to the
// directory: the kernel walks one path component per file, not all. The
// name is copied into buf with its terminating NUL, which spares the
// allocation unix.Fstatat makes for each of tens of thousands of names.
type dirStatter struct {
	fd  int
	buf []byte
}

func openDirStatter(dir string) (dirStatter, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return dirStatter{}, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return dirStatter{fd: fd, buf: make([]byte, 0, 256)}, nil
}

func (d *dirStatter) stat(name string) (fingerprint, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return fingerprint{}, &os.PathError{Op: "stat", Path: name, Err: unix.EINVAL}
	}
	d.buf = append(append(d.buf[:0], name...), 0)
	var st unix.Stat_t
	for {
		err := fstatat(d.fd, d.buf, &st)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fingerprint{}, &os.PathError{Op: "stat", Path: name, Err: err}
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

func (d *dirStatter) close() { unix.Close(d.fd) }
