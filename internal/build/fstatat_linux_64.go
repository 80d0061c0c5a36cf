//go:build linux && (amd64 || arm64)

package build

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstatat is fstatat(2) of a NUL-terminated name, which unix.Fstatat
// would copy to the heap to terminate.
func fstatat(dirfd int, name []byte, st *unix.Stat_t) error {
	_, _, errno := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(&name[0])), uintptr(unsafe.Pointer(st)), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}
