package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// tokenTTL is the lifetime of the tokens the tool mints: longer than any
// run (the timers scenario takes the longest, some 20 minutes at most).
const tokenTTL = 3 * time.Hour

// loadExpiry is the expirationDuration of the load scenarios' sessions:
// long enough that none expires during a run.
const loadExpiry = "PT4H"

// bench runs the selected scenarios and collects their report.
type bench struct {
	cfg    Config
	log    *slog.Logger
	tmp    string // removed by close
	bin    string // the presenced binary, once built
	apps   []string
	report *Report

	// The presenced of the load scenarios (set, get, bulk, mix), its
	// workload, and the baseline server; each started on first use.
	load     *target
	loadWL   *workload
	baseline *target
	// procs are the servers running, stopped by close.
	procs []*process
	// redis is the redis-server of --store redis, once started, and
	// closers what close must release before stopping the servers.
	redis   *redisServer
	closers []func()
}

func newBench(cfg Config, log *slog.Logger) (*bench, error) {
	tmp, err := os.MkdirTemp("", "presence-bench-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	return &bench{cfg: cfg, log: log, tmp: tmp, apps: appIDs(cfg.Seed, cfg.Apps), report: newReport(cfg)}, nil
}

// runAll runs every selected scenario in order; it stops at the first
// that fails. The report holds whatever was measured until then.
func (b *bench) runAll(ctx context.Context) error {
	if b.cfg.ProfileDir != "" {
		if err := os.MkdirAll(b.cfg.ProfileDir, 0o755); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	for _, name := range b.cfg.Scenarios {
		s, _ := lookupScenario(name)
		b.log.Info("scenario", "name", name)
		if err := s.run(ctx, b); err != nil {
			return fmt.Errorf("scenario %s: %w", name, err)
		}
	}
	return nil
}

// close stops every server the tool started and removes its files.
func (b *bench) close() error {
	var errs []error
	for _, c := range b.closers {
		c()
	}
	b.closers = nil
	for i := len(b.procs) - 1; i >= 0; i-- {
		if err := b.procs[i].stop(stopWithin); err != nil {
			errs = append(errs, err)
		}
	}
	b.procs = nil
	if b.cfg.Keep {
		b.log.Info("kept", "dir", b.tmp)
		return errors.Join(errs...)
	}
	if err := os.RemoveAll(b.tmp); err != nil {
		errs = append(errs, fmt.Errorf("remove %s: %w", b.tmp, err))
	}
	return errors.Join(errs...)
}

// stop stops p, which the tool started, now.
func (b *bench) stop(p *process) error {
	b.procs = slices.DeleteFunc(b.procs, func(q *process) bool { return q == p })
	return p.stop(stopWithin)
}

// presencedBinary returns the presenced to run, building it the first time.
func (b *bench) presencedBinary(ctx context.Context) (string, error) {
	if b.cfg.Presenced != "" {
		b.report.Settings.Commit = "unknown: --presenced " + b.cfg.Presenced
		return b.cfg.Presenced, nil
	}
	if b.bin == "" {
		b.log.Info("building presenced")
		bin, commit, err := buildPresenced(ctx, b.tmp)
		if err != nil {
			return "", err
		}
		b.bin = bin
		b.report.Settings.Commit = commit
	}
	return b.bin, nil
}

// spawn starts a fresh presenced on its own data dir under the temporary
// directory and returns it as a target and its data dir; args are more
// flags of presenced.
func (b *bench) spawn(ctx context.Context, name string, profile bool, args ...string) (*target, string, error) {
	bin, err := b.presencedBinary(ctx)
	if err != nil {
		return nil, "", err
	}
	opts := spawnOptions{dataDir: filepath.Join(b.tmp, name+"-data"), args: args}
	if profile {
		if opts.pprofAddr, err = freeAddr(); err != nil {
			return nil, "", err
		}
	}
	client := newClient(b.cfg.maxConns())
	p, ready, err := spawnPresenced(ctx, bin, opts, client)
	if err != nil {
		return nil, "", err
	}
	b.procs = append(b.procs, p)
	b.log.Info("presenced ready", "for", name, "addr", p.addr, "pid", p.pid(), "after", ready.Round(time.Millisecond))
	return &target{name: targetPresenced, base: "http://" + p.addr, client: client, proc: p,
		pprofAddr: opts.pprofAddr, metrics: true}, opts.dataDir, nil
}

// presencedTarget returns the presenced a scenario measures, and its data
// dir: with --url the one there, once its /readyz answers; else a fresh
// one started by spawn.
func (b *bench) presencedTarget(ctx context.Context, name string, profile bool) (*target, string, error) {
	if b.cfg.Spawn() {
		return b.spawn(ctx, name, profile)
	}
	t := &target{name: targetPresenced, base: strings.TrimSuffix(b.cfg.URL, "/"), client: newClient(b.cfg.maxConns()), metrics: true}
	if err := waitReady(ctx, t.client, t.base, nil); err != nil {
		return nil, "", fmt.Errorf("%s: %w", t.base, err)
	}
	return t, b.cfg.DataDir, nil
}

// workload mints the apps' tokens from the development key in dataDir and
// builds the requests of n users whose sessions last expiry.
func (b *bench) workload(ctx context.Context, dataDir string, n int, expiry string) (*workload, error) {
	bin, err := b.presencedBinary(ctx)
	if err != nil {
		return nil, err
	}
	tokens, err := mintTokens(ctx, bin, dataDir, b.apps, tokenTTL)
	if err != nil {
		return nil, err
	}
	return newWorkload(userIDs(b.cfg.Seed, n), b.apps, tokens, expiry, b.cfg.Seed)
}

// loadTarget returns the presenced of the load scenarios, with every user
// given a session first, starting it the first time.
func (b *bench) loadTarget(ctx context.Context) (*target, *workload, error) {
	if b.load != nil {
		return b.load, b.loadWL, nil
	}
	if b.cfg.Store == storeRedis {
		return b.redisLoadTarget(ctx)
	}
	t, dataDir, err := b.presencedTarget(ctx, "load", b.cfg.ProfileDir != "")
	if err != nil {
		return nil, nil, err
	}
	wl, err := b.workload(ctx, dataDir, b.cfg.usersFor("set"), loadExpiry)
	if err != nil {
		return nil, nil, err
	}
	b.log.Info("populating", "users", len(wl.users))
	pop, err := populate(ctx, t, wl, populateOptions{conns: b.cfg.Connections, pair: -1, log: b.log})
	if err != nil {
		return nil, nil, err
	}
	b.report.Populate = &pop
	b.load, b.loadWL = t, wl
	return t, wl, nil
}

// baselineTarget returns the baseline server, starting it the first time.
func (b *bench) baselineTarget(ctx context.Context) (*target, error) {
	if b.baseline != nil {
		return b.baseline, nil
	}
	if b.cfg.Store == storeRedis {
		return b.redisBaselineTarget(ctx)
	}
	p, err := startBaseline(ctx, b.cfg.usersFor("set"), b.cfg.Seed)
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, p)
	b.baseline = &target{name: targetBaseline, base: "http://" + p.addr, client: newClient(b.cfg.maxConns()), proc: p}
	return b.baseline, nil
}
