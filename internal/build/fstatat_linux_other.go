//go:build linux && !(amd64 || arm64)

package build

import "golang.org/x/sys/unix"

// fstatat is fstatat(2) of a NUL-terminated name.
func fstatat(dirfd int, name []byte, st *unix.Stat_t) error {
	return unix.Fstatat(dirfd, string(name[:len(name)-1]), st, 0)
}
