//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// fdLimit is this process's limit of open files, which the presenced it
// starts inherits.
func fdLimit() (uint64, error) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, fmt.Errorf("file-descriptor limit: %w", err)
	}
	return r.Cur, nil
}
