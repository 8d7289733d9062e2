//go:build !linux

package filestore

import "os"

// datasync makes f's data durable; where fdatasync(2) is not available it
// is a full fsync.
func datasync(f *os.File) error { return f.Sync() }
