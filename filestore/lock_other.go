//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package filestore

import "os"

// lockFile does nothing where flock is not available: on such systems the
// operator must make sure only one process opens a directory.
func lockFile(*os.File) error { return nil }
