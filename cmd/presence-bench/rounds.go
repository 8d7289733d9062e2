package main

import (
	"cmp"
	"context"
	"fmt"
	"path/filepath"
	"slices"
)

// loadScenario returns the run function of a load scenario: mix against
// presenced, after the same against the baseline when withBaseline,
// repeated --rounds times, at each of the scenario's concurrencies
// (--conns for set and get); the median round of each is reported.
func loadScenario(name string, withBaseline bool, mix ...weighted) func(context.Context, *bench) error {
	return func(ctx context.Context, b *bench) error {
		t, wl, err := b.loadTarget(ctx)
		if err != nil {
			return err
		}
		targets := []*target{t}
		// On Redis every load scenario has its baseline: the same Redis
		// work without HTTP (redisbase.go).
		if (withBaseline || b.cfg.Store == storeRedis) && b.cfg.Baseline {
			bt, err := b.baselineTarget(ctx)
			if err != nil {
				return err
			}
			targets = []*target{bt, t}
		}
		conns := b.cfg.connsFor(name)
		for _, c := range conns {
			rounds := make([][]RunResult, len(targets))
			for r := range b.cfg.Rounds {
				profile := ""
				if b.cfg.ProfileDir != "" && r == b.cfg.Rounds-1 {
					profile = filepath.Join(b.cfg.ProfileDir, profileName(name, c, len(conns) > 1))
				}
				round, err := b.quietRound(ctx, name, c, targets, wl, mix, profile)
				if err != nil {
					return err
				}
				for i, res := range round {
					rounds[i] = append(rounds[i], res)
				}
			}
			for _, runs := range rounds {
				m := median(runs)
				if last := runs[len(runs)-1]; last.Profile != "" {
					m.Profile = last.Profile
				}
				b.report.Runs = append(b.report.Runs, m)
			}
		}
		return nil
	}
}

// profileName is the file of the CPU profile of scenario at conns
// connections; the concurrency is in the name when the scenario runs at
// several.
func profileName(scenario string, conns int, several bool) string {
	if several {
		return fmt.Sprintf("presenced-%s-c%d.pprof", scenario, conns)
	}
	return "presenced-" + scenario + ".pprof"
}

// maxRepeats bounds how often a noisy round is run again.
const maxRepeats = 3

// quietRound runs mix once against each target, in order, and runs the
// whole round again (up to maxRepeats times) while other processes used
// more than --max-other-cpu cores during it. A round still noisy after that
// is kept and marked.
func (b *bench) quietRound(ctx context.Context, name string, conns int, targets []*target, wl *workload, mix []weighted, profile string) ([]RunResult, error) {
	for attempt := 0; ; attempt++ {
		round := make([]RunResult, len(targets))
		noisy := false
		for i, tg := range targets {
			p := ""
			if tg.pprofAddr != "" {
				p = profile
			}
			res, err := b.runLoad(ctx, name, conns, tg, wl, mix, p)
			if err != nil {
				return nil, err
			}
			// Without the server's process the "other" CPU includes it.
			if b.cfg.MaxOtherCPU >= 0 && res.ServerCPUCores > 0 && res.OtherCPUCores > b.cfg.MaxOtherCPU {
				noisy = true
			}
			round[i] = res
		}
		if !noisy {
			return round, nil
		}
		if attempt == maxRepeats {
			b.log.Warn("other processes kept using the CPU; keeping a noisy round", "scenario", name)
			for i := range round {
				round[i].Noisy = true
			}
			return round, nil
		}
		b.report.RepeatedRounds++
		b.log.Warn("other processes used the CPU; running the round again", "scenario", name, "max_other_cpu", b.cfg.MaxOtherCPU)
	}
}

// median returns the run of median throughput among the quiet rounds (all
// of them if none was quiet), with every round's throughput.
func median(runs []RunResult) RunResult {
	if len(runs) == 1 {
		return runs[0]
	}
	rps := make([]float64, len(runs))
	p99 := make([]float64, len(runs))
	noisy := make([]bool, len(runs))
	var quiet []RunResult
	for i, r := range runs {
		rps[i], noisy[i] = r.RPS, r.Noisy
		if len(r.Ops) == 1 {
			p99[i] = r.Ops[0].P99ms
		}
		if !r.Noisy {
			quiet = append(quiet, r)
		}
	}
	if len(quiet) == 0 {
		quiet = slices.Clone(runs)
	}
	m := lowerMedian(quiet, func(a, b RunResult) int { return cmp.Compare(a.RPS, b.RPS) })
	m.RoundsRPS, m.RoundsNoisy = rps, noisy
	if len(m.Ops) == 1 {
		m.RoundsP99ms = p99
	}
	return m
}

// lowerMedian sorts xs by compare and returns its median: of an even number,
// the lower of the middle two. xs must not be empty.
func lowerMedian[T any](xs []T, compare func(a, b T) int) T {
	slices.SortFunc(xs, compare)
	return xs[(len(xs)-1)/2]
}

// runLoad measures mix against t, profiling it into profile if not empty.
func (b *bench) runLoad(ctx context.Context, scenario string, conns int, t *target, wl *workload, mix []weighted, profile string) (RunResult, error) {
	lr := &loadRun{scenario: scenario, target: t, wl: wl, mix: mix, conns: conns,
		warmup: b.cfg.Warmup, duration: b.cfg.Duration, maxRequests: b.cfg.MaxRequests, seed: b.cfg.Seed, profile: profile}
	b.log.Info("load", "scenario", scenario, "target", t.name, "connections", lr.conns, "duration", lr.duration, "warmup", lr.warmup)
	res, err := lr.execute(ctx)
	if err != nil {
		return RunResult{}, err
	}
	if t.multi != nil {
		res.Nodes = len(t.multi.bases)
	}
	b.log.Info("measured", "scenario", scenario, "target", t.name, "rps", thousands(res.RPS), "other_cpu_cores", fmt.Sprintf("%.2f", res.OtherCPUCores))
	return res, nil
}
