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
		{"set exactly half", Figures{SetRPS: 10_000, BaselinePostRPS: 20_000}, "setPresence", GoalMet, 0.5},
		{"set below half", Figures{SetRPS: 9_999, BaselinePostRPS: 20_000}, "setPresence", GoalMissed, 0.49995},
		{"set without baseline", Figures{SetRPS: 9_999}, "setPresence", GoalNotMeasured, 0},
		{"get at 0.7", Figures{GetRPS: 14_000, BaselineGetRPS: 20_000}, "GET", GoalMet, 0.7},
		{"get at 0.69", Figures{GetRPS: 13_800, BaselineGetRPS: 20_000}, "GET", GoalMissed, 0.69},
		// The bulk goal is a ceiling: GET/bulk <= 20.
		{"bulk at 20 GETs", Figures{GetRPS: 20_000, BulkRPS: 1_000}, "getPresencesByUserId", GoalMet, 20},
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
		{Scenario: "set", Target: targetPresenced, RPS: 15_000, Ops: []OpResult{{Op: opSet, RPS: 15_000}}, RoundsRPS: []float64{15_000, 14_000, 18_000}},
	}}
	r.finish()
	if g := goalByName(t, r.Goals, "setPresence"); g.Status != GoalMet || g.Value != 0.5 {
		t.Errorf("paired rounds 0.5, 0.45, 0.5: %+v", g)
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
