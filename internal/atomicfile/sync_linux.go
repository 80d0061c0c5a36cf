package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

func init() {
	f := syncFunc(unix.Syncfs)
	syncfs.Store(&f)
}

// device is the number of the filesystem holding f.
func device(f *os.File) (uint64, bool) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, false
	}
	return st.Dev, true
}
