package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// buildInfo is what the binary knows of its own build: the module version
// (a tag with `go install …@vX`, "(devel)" from a checkout) and the VCS
// commit `go build` stamps in from a git checkout.
type buildInfo struct {
	Version  string
	Commit   string
	Time     string
	Modified bool
	Go       string
}

// readBuildInfo reads the build information the Go toolchain embedded.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: "unknown", Commit: "unknown", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if info.Main.Version != "" {
		b.Version = info.Main.Version
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// String renders b on one line, as `presenced version` prints it.
func (b buildInfo) String() string {
	s := fmt.Sprintf("presenced %s commit %s", b.Version, b.Commit)
	if b.Modified {
		s += " (modified)"
	}
	if b.Time != "" {
		s += " built from a commit of " + b.Time
	}
	return s + " with " + b.Go
}

// runVersion prints the version and commit.
func runVersion(args []string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("version takes no arguments, got %q", args[0])
	}
	_, err := fmt.Fprintln(stdout, readBuildInfo())
	return err
}
