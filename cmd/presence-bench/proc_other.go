//go:build !linux

package main

import "os/exec"

// dieWithParent is a no-op where the kernel cannot signal an orphan.
func dieWithParent(*exec.Cmd) {}
