//go:build unix

package pipeline

import (
	"fmt"
	"syscall"
	"time"
)

// cpuTime is the CPU time, user and system, of this process and of the
// children it has waited for.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	return total
}

// filesystemOf names the kind of file system dir is on, as the figures
// depend on it: a tmpfs has no disk to sync to.
func filesystemOf(dir string) string {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil {
		return "unknown"
	}
	switch uint64(st.Type) {
	case 0x01021994:
		return "tmpfs"
	case 0xEF53:
		return "ext2/3/4"
	case 0x58465342:
		return "xfs"
	case 0x9123683E:
		return "btrfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("type %#x", uint64(st.Type))
}

// syncDisks writes every file system's dirty data to its disk.
func syncDisks() { syscall.Sync() }
