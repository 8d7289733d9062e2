// Command presence-bench measures a presenced on this machine over HTTP,
// with real tokens, against a bare net/http server measured in the same
// run with the same client, connections and duration, and judges the
// project's performance goals.
//
//	go run ./cmd/presence-bench                          # spawn presenced; set, get, bulk, mix, 10 s each
//	go run ./cmd/presence-bench --smoke                  # a few seconds of mix, for CI
//	go run ./cmd/presence-bench --scenario scale         # 1,000,000 users: memory, restart
//	go run ./cmd/presence-bench --scenario timers        # pending expiries: takes over 5 minutes
//	go run ./cmd/presence-bench --scenario webhook       # change to webhook received, at --rate 2000 changes/s
//	go run ./cmd/presence-bench --store redis --nodes 3  # 3 nodes on a redis-server of the tool's, against the same Redis work without HTTP
//	go run ./cmd/presence-bench --url http://127.0.0.1:8080 --data ./presenced-data
//	go run ./cmd/presence-bench --json --check           # for scripts: exit 2 if a goal is missed
//
// Without --url it builds ./cmd/presenced, starts it on a temporary data
// dir with the durable store and --rate-limit 0, and stops it at the end.
// Load goes to 127.0.0.1 only. See BENCHMARKS.md for the figures.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// errGoalsMissed is returned with --check when a goal was missed.
var errGoalsMissed = errors.New("goals missed")

// errRequests reports a run whose requests failed too often.
var errRequests = errors.New("requests failed")

// maxErrorRate is the share of failed requests of any operation above which
// the run fails: a load test whose requests fail measured nothing.
const maxErrorRate = 0.001

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "presence-bench:", err)
		stop()
		if errors.Is(err, errGoalsMissed) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run is the whole program.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 1 && args[1] == baselineCmd {
		return runBaseline(ctx, args[2:], stdout, stderr)
	}
	if len(args) > 1 && args[1] == connWorkerCmd {
		return runConnWorker(ctx, os.Stdin, stdout)
	}
	cfg, err := parseConfig(args[1:], stderr)
	if err != nil {
		return err
	}
	// Progress goes to stderr, even with --json: stdout holds only the report.
	level := slog.LevelInfo
	if cfg.Verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	b, err := newBench(cfg, log)
	if err != nil {
		return err
	}
	runErr := b.runAll(ctx)
	if err := b.close(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		b.report.Error = runErr.Error()
	}
	b.report.finish()
	write := writeTable
	if cfg.JSON {
		write = writeJSON
	}
	if err := write(stdout, b.report); err != nil {
		return err
	}
	if cfg.JSONFile != "" {
		if err := writeJSONFile(cfg.JSONFile, b.report); err != nil {
			return err
		}
	}
	if runErr != nil {
		return runErr
	}
	if failed := b.report.failedRuns(maxErrorRate); len(failed) > 0 {
		return fmt.Errorf("%w: more than %.1f%% of the requests failed in %s", errRequests, maxErrorRate*100, strings.Join(failed, "; "))
	}
	if missed := Missed(b.report.Goals); cfg.Check && len(missed) > 0 {
		return fmt.Errorf("%w: %s", errGoalsMissed, strings.Join(missed, ", "))
	}
	return nil
}
