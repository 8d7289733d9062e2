package main

import (
	"bytes"
	"strings"
	"testing"
)

// presenced version prints one line with the version, the commit and the
// Go version, and takes no arguments.
func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if err := runVersion(nil, &out); err != nil {
		t.Fatal(err)
	}
	line := out.String()
	if !strings.HasPrefix(line, "presenced ") || !strings.Contains(line, " commit ") || !strings.Contains(line, " go1.") {
		t.Errorf("version line %q", line)
	}
	if err := runVersion([]string{"x"}, &out); err == nil {
		t.Error("version accepted an argument")
	}
	b := buildInfo{Version: "v1.2.3", Commit: "abc", Modified: true, Time: "2026-12-06T00:00:00Z", Go: "go1.26"}
	if got := b.String(); got != "presenced v1.2.3 commit abc (modified) built from a commit of 2026-12-06T00:00:00Z with go1.26" {
		t.Errorf("String = %q", got)
	}
}
