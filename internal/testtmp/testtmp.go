// Package testtmp puts a test binary's temporary files in memory.
//
// Test packages that create, rename and remove many small files (stamps,
// evaluations, logs, job records, node_modules) spend seconds of kernel
// time on a journalled disk, a fraction of it on tmpfs. Nothing they test
// depends on the disk: a SIGKILLed child's writes are in the page cache
// either way, and syncs succeed on both.
package testtmp

import (
	"os"
	"syscall"
)

// tmpfsMagic is Linux's filesystem type of a tmpfs.
const tmpfsMagic = 0x01021994

// minFree is the room /dev/shm must have: a small one (64 MiB by default
// in a container) would fill and fail the tests.
const minFree = 4 << 30

// InMemory points TMPDIR, and so os.TempDir and every t.TempDir, at a
// fresh directory in /dev/shm, and returns it for the caller to remove
// after m.Run. It does nothing and returns "" when TMPDIR is set (so
// setting it opts out) or /dev/shm is not a tmpfs with minFree to spare.
// Call it from TestMain before m.Run; child processes inherit it.
func InMemory() string {
	if os.Getenv("TMPDIR") != "" {
		return ""
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err != nil || int64(st.Type) != tmpfsMagic || uint64(st.Bavail)*uint64(st.Bsize) < minFree {
		return ""
	}
	dir, err := os.MkdirTemp("/dev/shm", "pvbuild-test-")
	if err != nil {
		return ""
	}
	if err := os.Setenv("TMPDIR", dir); err != nil {
		os.Remove(dir)
		return ""
	}
	return dir
}
