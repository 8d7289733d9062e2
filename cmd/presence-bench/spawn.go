package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// presencedListening matches the line presenced prints once it listens.
var presencedListening = regexp.MustCompile(`^presenced listening on https?://(\S+)$`)

// Time limits of a spawned server.
const (
	startWithin = 5 * time.Minute // listening, from exec (it loads the store first)
	readyWithin = time.Minute     // /readyz, once listening
	stopWithin  = 3 * time.Minute // exit, from SIGTERM (it compacts the store)
)

// buildPresenced builds ./cmd/presenced of the module this tool is run in,
// into dir. It returns the binary and the commit it was built from, as git
// describes it ("" when git cannot).
func buildPresenced(ctx context.Context, dir string) (bin, commit string, err error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", "", fmt.Errorf("build presenced: go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", "", errors.New("build presenced: not inside the presenced module; run from the repository or pass --presenced")
	}
	root := filepath.Dir(gomod)
	bin = filepath.Join(dir, "presenced")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/presenced")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("build presenced: %w\n%s", err, out)
	}
	if out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", "--dirty").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	return bin, commit, nil
}

// spawnOptions are how a presenced is started.
type spawnOptions struct {
	dataDir   string
	pprofAddr string   // "" for none
	args      []string // more flags
}

// spawnPresenced starts bin on an ephemeral port of 127.0.0.1 with the
// durable file store in opts.dataDir, development auth and no throttling,
// and waits until /readyz answers. It returns the server and how long
// that took from exec.
func spawnPresenced(ctx context.Context, bin string, opts spawnOptions, client *http.Client) (*process, time.Duration, error) {
	args := []string{"--addr", "127.0.0.1:0", "--data", opts.dataDir, "--store", "file", "--rate-limit", "0", "--log-level", "warn"}
	if opts.pprofAddr != "" {
		args = append(args, "--pprof", opts.pprofAddr)
	}
	args = append(args, opts.args...)
	start := time.Now()
	p, err := startProcess(ctx, targetPresenced, bin, args, presencedListening, startWithin)
	if err != nil {
		return nil, 0, err
	}
	if err := waitReady(ctx, client, "http://"+p.addr, p.exited); err != nil {
		_ = p.stop(stopWithin)
		return nil, 0, fmt.Errorf("%w\n%s", err, p.out.String())
	}
	return p, time.Since(start), nil
}

// waitReady polls GET /readyz until it answers 200, the process exits or
// readyWithin passes.
func waitReady(ctx context.Context, client *http.Client, base string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, readyWithin)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("readyz: %w", err)
		}
		res, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return errors.New("presenced exited before it was ready")
		case <-ctx.Done():
			return fmt.Errorf("presenced not ready: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// mintTokens asks `presenced token` for an application token of each app,
// signed by the development key in dataDir, valid for ttl.
func mintTokens(ctx context.Context, bin, dataDir string, apps []string, ttl time.Duration) (map[string]string, error) {
	tokens := make(map[string]string, len(apps))
	for _, id := range apps {
		tok, err := mintToken(ctx, bin, dataDir, "--app", id, "--roles", "Presence.ReadWrite.All", "--ttl", ttl.String())
		if err != nil {
			return nil, fmt.Errorf("presenced token --app %s: %w", id, err)
		}
		tokens[id] = tok
	}
	return tokens, nil
}

// mintToken runs `presenced token` with the development key in dataDir,
// for the development tenant and the further flags args, and returns the
// token it prints.
func mintToken(ctx context.Context, bin, dataDir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"token", "--data", dataDir, "--tenant", devTenant}, args...)...)
	cmd.Env = childEnv()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// freeAddr returns a free 127.0.0.1 address, for a listener that cannot be
// given port 0 and report it (presenced's --pprof).
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
