package main

import (
	"os/exec"
	"syscall"
)

// dieWithParent asks the kernel to send cmd SIGTERM if this tool dies
// first, so a killed benchmark leaves no server behind.
func dieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
