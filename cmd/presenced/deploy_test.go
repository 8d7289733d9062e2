package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd unit's ExecStart is a command line presenced accepts, out of
// development auth mode.
func TestDeployUnitExecStart(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "deploy", "presenced.service"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var execStart []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "ExecStart="); ok {
			execStart = strings.Fields(line)
		}
	}
	if len(execStart) == 0 || filepath.Base(execStart[0]) != "presenced" {
		t.Fatalf("ExecStart = %q, want /…/presenced and flags", execStart)
	}
	c, err := parseConfig(execStart[1:], env(nil), os.Stderr, os.Stderr)
	if err != nil {
		t.Fatalf("presenced does not accept the unit's ExecStart: %v", err)
	}
	if c.JWKSURL == "" || len(c.Issuers) == 0 || len(c.Audiences) == 0 || c.TestHooks || c.DataDir != "/var/lib/presenced" {
		t.Errorf("the unit's configuration %+v: want a JWKS, issuer and audience, no test hooks, data in /var/lib/presenced", c)
	}
}

// The Containerfile builds ./cmd/presenced and configures it through
// environment variables presenced reads.
func TestDeployContainerfile(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "Containerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	if !strings.Contains(text, "go build -trimpath -o /out/presenced ./cmd/presenced") {
		t.Error("the Containerfile does not build ./cmd/presenced")
	}
	vars := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "ENV "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				vars[k] = v
			}
		}
	}
	c, err := parseConfig(nil, env(vars), os.Stderr, os.Stderr)
	if err != nil {
		t.Fatalf("presenced does not accept the Containerfile's environment %v: %v", vars, err)
	}
	if c.Addr != "0.0.0.0:8080" || c.DataDir != "/var/lib/presenced" {
		t.Errorf("container configuration %+v", c)
	}
}
