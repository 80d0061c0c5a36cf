//go:build !linux

package atomicfile

import "os"

// device is unused without syncfs: every durable write syncs by itself.
func device(f *os.File) (uint64, bool) { return 0, false }
