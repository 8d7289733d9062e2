package main

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func goalByName(t *testing.T, goals []Goal, prefix string) Goal {
	t.Helper()
	for _, g := range goals {
		if strings.HasPrefix(g.Name, prefix) {
			return g
		}
	}
	t.Fatalf("no goal %q in %+v", prefix, goals)
	return Goal{}
}

func TestEvaluateRatios(t *testing.T) {
	tests := []struct {
		name   string
		f      Figures
		goal   string
		status string
		value  float64
	}{
		{"set at 0.6", Figures{SetRPS: 12_000, BaselinePostRPS: 20_000}, "setPresence throughput", GoalMet, 0.6},
		{"set below 0.6", Figures{SetRPS: 11_999, BaselinePostRPS: 20_000}, "setPresence throughput", GoalMissed, 0.59995},
		{"set without baseline", Figures{SetRPS: 9_999}, "setPresence throughput", GoalNotMeasured, 0},
		{"get at 0.9", Figures{GetRPS: 18_000, BaselineGetRPS: 20_000}, "GET", GoalMet, 0.9},
		{"get at 0.89", Figures{GetRPS: 17_800, BaselineGetRPS: 20_000}, "GET", GoalMissed, 0.89},
		// The p99 goal is a ceiling: set's p99 <= 2 x the baseline POST's.
		{"set p99 at 2x", Figures{SetP99ms: 8, BaselinePostP99ms: 4}, "setPresence p99", GoalMet, 2},
		{"set p99 at 2.5x", Figures{SetP99ms: 10, BaselinePostP99ms: 4}, "setPresence p99", GoalMissed, 2.5},
		{"set p99 paired", Figures{SetP99ms: 10, BaselinePostP99ms: 4, SetP99Ratio: 1.5}, "setPresence p99", GoalMet, 1.5},
		{"set p99 without baseline", Figures{SetP99ms: 10}, "setPresence p99", GoalNotMeasured, 0},
		// The bulk goal is a ceiling: GET/bulk <= 15.
		{"bulk at 15 GETs", Figures{GetRPS: 15_000, BulkRPS: 1_000}, "getPresencesByUserId", GoalMet, 15},
		{"bulk at 20 GETs", Figures{GetRPS: 20_000, BulkRPS: 1_000}, "getPresencesByUserId", GoalMissed, 20},
		{"bulk at 40 GETs", Figures{GetRPS: 20_000, BulkRPS: 500}, "getPresencesByUserId", GoalMissed, 40},
		{"bulk without get", Figures{BulkRPS: 500}, "getPresencesByUserId", GoalNotMeasured, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := goalByName(t, Evaluate(tt.f), tt.goal)
			if g.Status != tt.status || math.Abs(g.Value-tt.value) > 1e-9 {
				t.Errorf("%s: status %q value %v; want %q %v", g.Name, g.Status, g.Value, tt.status, tt.value)
			}
		})
	}
}

func TestEvaluateScaleAndTimers(t *testing.T) {
	f := Figures{ScaleUsers: 1_000_000, RSSBytes: 900 << 20, RestartSeconds: 12.5, TimerSessions: 1_000_000, MaxLateSeconds: 0.4}
	goals := Evaluate(f)
	if g := goalByName(t, goals, "resident memory"); g.Status != GoalMet || g.Note != "" {
		t.Errorf("900 MiB: %+v", g)
	}
	if g := goalByName(t, goals, "restart"); g.Status != GoalMissed || g.Value != 12.5 {
		t.Errorf("12.5 s restart: %+v", g)
	}
	if g := goalByName(t, goals, "fades"); g.Status != GoalMet {
		t.Errorf("0.4 s late: %+v", g)
	}
	if got := Missed(goals); len(got) != 1 || got[0] != "restart to /readyz" {
		t.Errorf("Missed = %q", got)
	}

	// Below the goal's scale the result stands, with a note.
	g := goalByName(t, Evaluate(Figures{ScaleUsers: 100_000, RSSBytes: 2 << 30, RestartSeconds: 1}), "resident memory")
	if g.Status != GoalMissed || !strings.Contains(g.Note, "100000") {
		t.Errorf("2 GiB at 100k users: %+v", g)
	}
	// Noisy inputs are said to be.
	g = goalByName(t, Evaluate(Figures{SetRPS: 1, BaselinePostRPS: 1, Noisy: map[string]bool{"set": true}}), "setPresence")
	if g.Status != GoalMet || !strings.Contains(g.Note, "noisy") {
		t.Errorf("noisy set: %+v", g)
	}
	// Nothing measured is never met.
	for _, g := range Evaluate(Figures{}) {
		if g.Status != GoalNotMeasured {
			t.Errorf("empty figures: %s is %q", g.Name, g.Status)
		}
	}
	// A timer run with every instant on time has lateness 0, and is met.
	if g := goalByName(t, Evaluate(Figures{TimerSessions: 10}), "fades"); g.Status != GoalMet {
		t.Errorf("zero lateness: %+v", g)
	}
}

// TestReportRatios checks that the report divides each presenced figure by
// the baseline's of the same scenario and operation.
func TestReportRatios(t *testing.T) {
	r := &Report{Runs: []RunResult{
		{Scenario: "set", Target: targetBaseline, Ops: []OpResult{{Op: opSet, RPS: 20_000}}},
		{Scenario: "set", Target: targetPresenced, Ops: []OpResult{{Op: opSet, RPS: 8_000}}},
		{Scenario: "get", Target: targetPresenced, Ops: []OpResult{{Op: opGet, RPS: 15_000}}},
		{Scenario: "bulk", Target: targetPresenced, Ops: []OpResult{{Op: opBulk, RPS: 500, Requests: 999, Errors: 1, FirstError: "HTTP 500"}}},
	}}
	r.finish()
	if got := r.Runs[1].Ops[0].VsBaseline; got != 0.4 {
		t.Errorf("set vs baseline = %v, want 0.4", got)
	}
	if got := r.Runs[2].Ops[0].VsBaseline; got != 0 {
		t.Errorf("get without a baseline run: vs baseline = %v, want 0", got)
	}
	if g := goalByName(t, r.Goals, "setPresence"); g.Status != GoalMissed {
		t.Errorf("0.4 of baseline: %+v", g)
	}
	if g := goalByName(t, r.Goals, "getPresencesByUserId"); g.Status != GoalMissed || g.Value != 30 {
		t.Errorf("15000/500: %+v", g)
	}
	if got := r.failedRuns(0.001); len(got) != 0 {
		t.Errorf("0.1%% errors failed the run: %q", got)
	}
	if got := r.failedRuns(0.0005); len(got) != 1 {
		t.Errorf("0.1%% errors above 0.05%%: %q", got)
	}
}

func TestSummarizeTimers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sent := []time.Time{t0, t0.Add(time.Second), t0.Add(2 * time.Second), t0.Add(3 * time.Second)}
	due := func(d time.Duration) time.Time { return t0.Add(timerExpiry + d) }
	samples := []firedSample{
		{due(-time.Second), 0},
		{due(100 * time.Millisecond), 1},  // the first on time
		{due(1500 * time.Millisecond), 2}, // the second 0.5 s late
		{due(5 * time.Second), 4},         // the last two 3 and 2 s late
	}
	var res TimersResult
	summarizeTimers(&res, sent, samples)
	if !res.Complete || res.Fired != 4 {
		t.Errorf("complete %v fired %d", res.Complete, res.Fired)
	}
	if !within(time.Duration(res.MaxLateSeconds*1e9), 3*time.Second, 0.01) {
		t.Errorf("max late = %v s, want 3", res.MaxLateSeconds)
	}
	if !within(time.Duration(res.P50LateSeconds*1e9), 500*time.Millisecond, 0.01) {
		t.Errorf("p50 late = %v s, want 0.5", res.P50LateSeconds)
	}
	if len(res.MaxLateByWindow) != 1 || res.MaxLateByWindow[0] < 2.99 {
		t.Errorf("late by window = %v, want [3]", res.MaxLateByWindow)
	}

	// Never fired: late at least until the last sample.
	var res2 TimersResult
	summarizeTimers(&res2, sent, samples[:2])
	if res2.Complete || res2.Fired != 1 || !within(time.Duration(res2.MaxLateSeconds*1e9), 100*time.Millisecond, 0.01) {
		t.Errorf("incomplete: %+v", res2)
	}
}

// TestPairedRatio checks that rounds run back to back are compared pairwise,
// noisy pairs left out when quiet ones exist.
func TestPairedRatio(t *testing.T) {
	base := &RunResult{RoundsRPS: []float64{30_000, 10_000, 35_000, 32_000}, RoundsNoisy: []bool{false, true, false, false}}
	run := &RunResult{RoundsRPS: []float64{15_000, 8_000, 14_000, 17_600}}
	m, ratios := pairedRatio(run, base)
	// Quiet ratios 0.5, 0.4, 0.55: the median is 0.5; the noisy 0.8 is out.
	if m != 0.5 || len(ratios) != 4 || ratios[1] != 0.8 {
		t.Errorf("pairedRatio = %v, %v", m, ratios)
	}
	if m, _ := pairedRatio(&RunResult{RoundsRPS: []float64{1}}, &RunResult{RoundsRPS: []float64{2}}); m != 0 {
		t.Errorf("one round: %v, want 0 (not paired)", m)
	}
	// The report judges the goal on the paired median, not on the medians'
	// quotient (16,000 / 32,000 = 0.5 here as well, but 15,000 / 31,000 for
	// the lower medians would miss).
	r := &Report{Runs: []RunResult{
		{Scenario: "set", Target: targetBaseline, RPS: 31_000, Ops: []OpResult{{Op: opSet, RPS: 31_000}}, RoundsRPS: []float64{30_000, 31_000, 36_000}},
		{Scenario: "set", Target: targetPresenced, RPS: 18_000, Ops: []OpResult{{Op: opSet, RPS: 18_000}}, RoundsRPS: []float64{18_000, 17_000, 21_600}},
	}}
	r.finish()
	if g := goalByName(t, r.Goals, "setPresence throughput"); g.Status != GoalMet || g.Value != 0.6 {
		t.Errorf("paired rounds 0.6, 0.548, 0.6: %+v", g)
	}
}

// TestMedianRound checks which round of several is reported: the lower
// median throughput among the quiet rounds (among all when none was
// quiet), carrying every round's throughput and noise in the order run.
func TestMedianRound(t *testing.T) {
	runs := []RunResult{{RPS: 10, Noisy: true}, {RPS: 40}, {RPS: 20}, {RPS: 30}, {RPS: 50, Noisy: true}}
	m := median(runs)
	if m.RPS != 30 {
		t.Errorf("median of quiet rounds 40, 20, 30: %v, want 30", m.RPS)
	}
	if want := []float64{10, 40, 20, 30, 50}; !slices.Equal(m.RoundsRPS, want) {
		t.Errorf("RoundsRPS = %v, want %v", m.RoundsRPS, want)
	}
	if want := []bool{true, false, false, false, true}; !slices.Equal(m.RoundsNoisy, want) {
		t.Errorf("RoundsNoisy = %v, want %v", m.RoundsNoisy, want)
	}
	if runs[1].RPS != 40 || runs[2].RPS != 20 {
		t.Errorf("median reordered its argument: %+v", runs)
	}
	if m := median([]RunResult{{RPS: 5, Noisy: true}, {RPS: 9, Noisy: true}}); m.RPS != 5 || !m.Noisy {
		t.Errorf("median of two noisy rounds: %+v, want the lower, noisy", m)
	}
	if m := median([]RunResult{{RPS: 7}}); m.RPS != 7 || m.RoundsRPS != nil {
		t.Errorf("one round: %+v, want it as is", m)
	}
}

// TestGoalsPerConcurrency checks that set and get run at several
// concurrencies are each judged against the baseline run at the same one,
// the p99 goal on the paired rounds' ratios (the higher middle one of an
// even number), and that bulk is judged against the GET at its own
// concurrency.
func TestGoalsPerConcurrency(t *testing.T) {
	run := func(scenario, target string, conns int, op string, rps, p99 float64, roundsP99 ...float64) RunResult {
		r := RunResult{Scenario: scenario, Target: target, Connections: conns, RPS: rps, Ops: []OpResult{{Op: op, RPS: rps, P99ms: p99}}}
		if len(roundsP99) > 0 {
			r.RoundsRPS = make([]float64, len(roundsP99))
			for i := range r.RoundsRPS {
				r.RoundsRPS[i] = rps
			}
			r.RoundsP99ms = roundsP99
		}
		return r
	}
	r := &Report{Runs: []RunResult{
		run("set", targetBaseline, 16, opSet, 20_000, 2),
		run("set", targetPresenced, 16, opSet, 10_000, 5), // 0.5x, p99 2.5x
		run("set", targetBaseline, 64, opSet, 30_000, 4, 4, 4, 4, 4),
		run("set", targetPresenced, 64, opSet, 21_000, 9, 6, 7, 9, 10), // 0.7x; p99 1.5, 1.75, 2.25, 2.5: 2.25
		run("get", targetBaseline, 16, opGet, 20_000, 1),
		run("get", targetPresenced, 16, opGet, 19_000, 1),
		run("get", targetBaseline, 64, opGet, 30_000, 1),
		run("get", targetPresenced, 64, opGet, 15_000, 1),
		run("bulk", targetPresenced, 64, opBulk, 1_000, 100),
	}}
	r.finish()
	want := map[string]struct {
		status string
		value  float64
	}{
		"setPresence throughput at 16 connections":  {GoalMissed, 0.5},
		"setPresence p99 latency at 16 connections": {GoalMissed, 2.5},
		"GET presence throughput at 16 connections": {GoalMet, 0.95},
		"setPresence throughput at 64 connections":  {GoalMet, 0.7},
		"setPresence p99 latency at 64 connections": {GoalMissed, 2.25},
		"GET presence throughput at 64 connections": {GoalMissed, 0.5},
		"getPresencesByUserId(650) cost":            {GoalMet, 15},
	}
	for name, w := range want {
		g := goalByName(t, r.Goals, name)
		if g.Name != name || g.Status != w.status || math.Abs(g.Value-w.value) > 1e-9 {
			t.Errorf("%s: %+v; want %s %v", name, g, w.status, w.value)
		}
	}
	if p := r.runAt("set", targetPresenced, 64); !slices.Equal(p.RoundsP99Ratio, []float64{1.5, 1.75, 2.25, 2.5}) {
		t.Errorf("rounds' p99 ratios %v", p.RoundsP99Ratio)
	}
}
