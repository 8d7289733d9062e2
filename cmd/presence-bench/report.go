package main

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
)

// Report is everything one invocation measured; --json prints it as is.
type Report struct {
	Machine  Machine         `json:"machine"`
	Settings Settings        `json:"settings"`
	Populate *PopulateResult `json:"populate,omitempty"`
	Runs     []RunResult     `json:"runs"`
	Scale    *ScaleResult    `json:"scale,omitempty"`
	Timers   *TimersResult   `json:"timers,omitempty"`
	Webhook  *WebhookResult  `json:"webhook,omitempty"`
	// Connections is the connections scenario's.
	Connections *ConnectionsResult `json:"connections,omitempty"`
	Goals       []Goal             `json:"goals"`
	// RepeatedRounds counts load rounds run again because other processes
	// used the CPU meanwhile.
	RepeatedRounds int `json:"repeated_rounds,omitempty"`
	// Error is why the run stopped early, if it did.
	Error string `json:"error,omitempty"`
}

// Machine describes where the figures were measured.
type Machine struct {
	CPUs      int    `json:"cpus"`
	Model     string `json:"cpu_model"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	Kernel    string `json:"kernel,omitempty"`
	GoVersion string `json:"go_version"`
}

// Settings are the parameters of the run.
type Settings struct {
	Scenarios []string `json:"scenarios"`
	Target    string   `json:"target"`
	// Commit is the presenced source the tool built, as git describes it.
	Commit          string  `json:"commit,omitempty"`
	DurationSeconds float64 `json:"duration_seconds"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	Connections     int     `json:"connections"`
	// Conns are the concurrencies of the set and get scenarios (--conns).
	Conns []int  `json:"conns,omitempty"`
	Users int    `json:"users"`
	Apps  int    `json:"apps"`
	Seed  uint64 `json:"seed"`
}

func newReport(cfg Config) *Report {
	target := "spawned presenced (durable file store, --rate-limit 0, development auth)"
	if !cfg.Spawn() {
		target = cfg.URL
	}
	if cfg.Store == storeRedis {
		target = fmt.Sprintf("%d spawned presenced node(s) on one redis-server of the tool's (--store redis, appendfsync always, Unix socket, --rate-limit 0, development auth), requests round-robin", cfg.Nodes)
	}
	return &Report{
		Machine: machine(),
		Settings: Settings{Scenarios: cfg.Scenarios, Target: target, DurationSeconds: cfg.Duration.Seconds(),
			WarmupSeconds: cfg.Warmup.Seconds(), Connections: cfg.Connections, Conns: cfg.Conns, Users: cfg.Users, Apps: cfg.Apps, Seed: cfg.Seed},
		Runs: []RunResult{},
	}
}

// machine describes this machine: CPUs, their model, OS, kernel and Go.
func machine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS, Arch: runtime.GOARCH, GoVersion: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, val, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(name) == "model name" {
				m.Model = strings.TrimSpace(val)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// run returns the run of scenario against target, or nil.
func (r *Report) run(scenario, target string) *RunResult {
	for i := range r.Runs {
		if r.Runs[i].Scenario == scenario && r.Runs[i].Target == target {
			return &r.Runs[i]
		}
	}
	return nil
}

// runAt returns the run of scenario against target at conns connections,
// or nil.
func (r *Report) runAt(scenario, target string, conns int) *RunResult {
	for i := range r.Runs {
		if run := &r.Runs[i]; run.Scenario == scenario && run.Target == target && run.Connections == conns {
			return run
		}
	}
	return nil
}

// rps returns the throughput of op in scenario against target, 0 if not
// measured.
func (r *Report) rps(scenario, target, op string) float64 {
	if run := r.run(scenario, target); run != nil {
		if o := run.op(op); o != nil {
			return o.RPS
		}
	}
	return 0
}

// noisy reports whether the run of scenario against target was noisy.
func (r *Report) noisy(scenario, target string) bool {
	run := r.run(scenario, target)
	return run != nil && run.Noisy
}

// finish fills in the ratios to the baseline and judges the goals.
func (r *Report) finish() {
	for i := range r.Runs {
		run := &r.Runs[i]
		base := r.runAt(run.Scenario, targetBaseline, run.Connections)
		if base == nil {
			base = r.runAt(run.Scenario, targetRedisBaseline, run.Connections)
		}
		if run.Target != targetPresenced || base == nil {
			continue
		}
		for j := range run.Ops {
			o := &run.Ops[j]
			if b := base.op(o.Op); b != nil && b.RPS > 0 {
				o.VsBaseline = o.RPS / b.RPS
			}
		}
		if len(run.Ops) == 1 {
			if m, ratios := pairedRatio(run, base); m > 0 {
				run.Ops[0].VsBaseline, run.RoundsRatio = m, ratios
			}
			if len(base.Ops) == 1 && base.Ops[0].P99ms > 0 {
				run.P99Ratio = run.Ops[0].P99ms / base.Ops[0].P99ms
			}
			if m, ratios := pairedP99Ratio(run, base); m > 0 {
				run.P99Ratio, run.RoundsP99Ratio = m, ratios
			}
		}
	}
	f := Figures{
		BulkRPS: r.rps("bulk", targetPresenced, opBulk),
		Noisy: map[string]bool{
			"bulk": r.noisy("bulk", targetPresenced),
		},
	}
	// The bulk read is judged against the GET run at its concurrency (or
	// the nearest one measured).
	bulkConns := 0
	if run := r.run("bulk", targetPresenced); run != nil {
		bulkConns = run.Connections
	}
	if get := r.nearestRun("get", targetPresenced, bulkConns); get != nil {
		if o := get.op(opGet); o != nil {
			f.GetRPS = o.RPS
		}
		f.Noisy["bulk"] = f.Noisy["bulk"] || get.Noisy
	}
	f.Load = r.loadFigures()
	if s := r.Scale; s != nil {
		f.ScaleUsers = s.Populate.Users
		f.RSSBytes = max(s.Memory.RSS, s.MemoryAfterRestart.RSS)
		f.RestartSeconds = s.RestartSeconds
	}
	if t := r.Timers; t != nil && t.Sessions > 0 {
		f.TimerSessions = t.Sessions
		f.MaxLateSeconds = t.MaxLateSeconds
	}
	if w := r.Webhook; w != nil && w.AskedRate > 0 {
		f.WebhookAskedRate, f.WebhookRate, f.WebhookP99ms = w.AskedRate, w.Rate, w.P99ms
		f.WebhookShortfall, f.WebhookMissing = w.Unsent+w.Failed, w.Missing
		f.WebhookNoisy = r.noisy("webhook", targetPresenced)
	}
	r.Goals = Evaluate(f)
}

// loadFigures returns the set and get figures at each concurrency they ran
// at, in the order run. The goals' ratios are to the net/http baseline, not
// to the Redis baseline of --store redis.
func (r *Report) loadFigures() []LoadFigures {
	var conns []int
	for _, run := range r.Runs {
		if (run.Scenario == "set" || run.Scenario == "get") && !slices.Contains(conns, run.Connections) {
			conns = append(conns, run.Connections)
		}
	}
	var out []LoadFigures
	for _, c := range conns {
		l := LoadFigures{Conns: c}
		if run, base := r.runAt("set", targetPresenced, c), r.runAt("set", targetBaseline, c); run != nil {
			l.NoisySet = run.Noisy
			if o := run.op(opSet); o != nil {
				l.SetRPS, l.SetP99ms = o.RPS, o.P99ms
			}
			if base != nil {
				l.NoisySet = l.NoisySet || base.Noisy
				if o := base.op(opSet); o != nil {
					l.BaselinePostRPS, l.BaselinePostP99ms = o.RPS, o.P99ms
				}
				if len(run.RoundsRatio) > 0 {
					l.SetRatio = run.Ops[0].VsBaseline
				}
				if len(run.RoundsP99Ratio) > 0 {
					l.SetP99Ratio = run.P99Ratio
				}
			}
		}
		if run, base := r.runAt("get", targetPresenced, c), r.runAt("get", targetBaseline, c); run != nil {
			l.NoisyGet = run.Noisy
			if o := run.op(opGet); o != nil {
				l.GetRPS = o.RPS
			}
			if base != nil {
				l.NoisyGet = l.NoisyGet || base.Noisy
				if o := base.op(opGet); o != nil {
					l.BaselineGetRPS = o.RPS
				}
				if len(run.RoundsRatio) > 0 {
					l.GetRatio = run.Ops[0].VsBaseline
				}
			}
		}
		out = append(out, l)
	}
	return out
}

// nearestRun returns the run of scenario against target whose concurrency
// is nearest conns, or nil.
func (r *Report) nearestRun(scenario, target string, conns int) *RunResult {
	var best *RunResult
	for i := range r.Runs {
		run := &r.Runs[i]
		if run.Scenario != scenario || run.Target != target {
			continue
		}
		if best == nil || abs(run.Connections-conns) < abs(best.Connections-conns) {
			best = run
		}
	}
	return best
}

func abs(x int) int { return max(x, -x) }

// pairedP99Ratio is pairedRatio for the p99 latencies of single-operation
// runs. Of an even number of quiet rounds it takes the higher of the
// middle two: the goal is a ceiling, so the doubt goes against it.
func pairedP99Ratio(run, base *RunResult) (float64, []float64) {
	quiet, ratios := pairedRounds(run, base, func(r *RunResult) []float64 { return r.RoundsP99ms })
	if quiet == nil {
		return 0, nil
	}
	slices.Sort(quiet)
	return quiet[len(quiet)/2], ratios
}

// pairedRatio returns, for a run and its baseline repeated over the same
// rounds (each round ran the baseline just before presenced), the ratio of
// each round and their median, over the rounds where neither was noisy
// (over all when every round was). It returns 0 without several rounds.
func pairedRatio(run, base *RunResult) (float64, []float64) {
	quiet, ratios := pairedRounds(run, base, func(r *RunResult) []float64 { return r.RoundsRPS })
	if quiet == nil {
		return 0, nil
	}
	return lowerMedian(quiet, cmp.Compare[float64]), ratios
}

// pairedRounds returns the ratio of run's figure to base's in each round
// (rounds gives a run's figures), and those of the rounds where neither
// was noisy (all of them when every round was); nil without several
// rounds or with a baseline figure of zero.
func pairedRounds(run, base *RunResult, rounds func(*RunResult) []float64) (quiet, ratios []float64) {
	r, b := rounds(run), rounds(base)
	n := len(r)
	if n < 2 || len(b) != n {
		return nil, nil
	}
	ratios = make([]float64, n)
	var all []float64
	for i := range n {
		if b[i] <= 0 {
			return nil, nil
		}
		ratios[i] = r[i] / b[i]
		all = append(all, ratios[i])
		if !roundNoisy(run, i) && !roundNoisy(base, i) {
			quiet = append(quiet, ratios[i])
		}
	}
	if len(quiet) == 0 {
		quiet = all
	}
	return quiet, ratios
}

func roundNoisy(r *RunResult, i int) bool { return i < len(r.RoundsNoisy) && r.RoundsNoisy[i] }

// failedRuns returns the runs where more than rate of the requests of an
// operation failed.
func (r *Report) failedRuns(rate float64) []string {
	var out []string
	for _, run := range r.Runs {
		for _, o := range run.Ops {
			if n := o.Requests + o.Errors; n > 0 && float64(o.Errors) > rate*float64(n) {
				out = append(out, run.Scenario+"/"+run.Target+"/"+o.Op+": "+o.FirstError)
			}
		}
	}
	return out
}
