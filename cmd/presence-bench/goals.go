package main

import (
	"fmt"
	"math"
	"strings"
)

// Figures are the measurements the goals are judged on. A zero figure was
// not measured in this run.
type Figures struct {
	// Throughputs in successful requests per second, each measured with the
	// same client, connections and duration.
	SetRPS, BaselinePostRPS float64
	GetRPS, BaselineGetRPS  float64
	BulkRPS                 float64
	// SetRatio and GetRatio, when not zero, are the ratios to the baseline
	// taken round by round (the median over rounds run back to back with
	// their baseline); they take precedence over the quotients of the
	// throughputs above.
	SetRatio, GetRatio float64
	// SetP99ms and BaselinePostP99ms are the p99 latencies of setPresence
	// and of the baseline POST; SetP99Ratio, when not zero, is their ratio
	// taken round by round (the median), which takes precedence.
	SetP99ms, BaselinePostP99ms, SetP99Ratio float64
	// Noisy names the throughput goals ("set", "get", "bulk") whose runs
	// were disturbed by other processes.
	Noisy map[string]bool
	// Load, when not empty, holds the set and get figures per concurrency
	// (--conns), each judged on its own; the fields above then serve the
	// bulk goal only (GetRPS being the GET run at bulk's concurrency).
	Load []LoadFigures

	// The scale scenario: users populated, the resident memory of the
	// server holding them, and the time from starting it again to /readyz.
	ScaleUsers     int
	RSSBytes       int64
	RestartSeconds float64

	// The timers scenario: sessions created, and how late the latest of
	// their fades and expiries was processed (an upper bound).
	TimerSessions  int
	MaxLateSeconds float64

	// The webhook scenario: the changes per second asked and achieved
	// (sent in the window and answered 200), the changes due that were not
	// sent or failed (Shortfall), the notifications of sent changes never
	// received, and the p99 from sending a change to receiving its
	// notification. WebhookNoisy marks a run disturbed by other processes.
	WebhookAskedRate, WebhookRate float64
	WebhookShortfall              uint64
	WebhookMissing                uint64
	WebhookP99ms                  float64
	WebhookNoisy                  bool
}

// LoadFigures are the setPresence and GET figures at one concurrency, each
// against its own baseline run at the same concurrency. The ratio fields,
// when not zero, are medians of paired rounds and take precedence over the
// quotients of the throughputs and latencies.
type LoadFigures struct {
	Conns                       int
	SetRPS, BaselinePostRPS     float64
	GetRPS, BaselineGetRPS      float64
	SetRatio, GetRatio          float64
	SetP99ms, BaselinePostP99ms float64
	SetP99Ratio                 float64
	NoisySet, NoisyGet          bool
}

// Goal statuses.
const (
	GoalMet         = "met"
	GoalMissed      = "MISSED"
	GoalNotMeasured = "not measured"
)

// Goal is one target of the issue and how this run fares against it.
type Goal struct {
	Name string `json:"name"`
	// Want says what is required, in words.
	Want string `json:"want"`
	// Value is the measured figure and Limit the bound it must respect:
	// Value >= Limit when AtLeast, else Value <= Limit.
	Value   float64 `json:"value"`
	Limit   float64 `json:"limit"`
	AtLeast bool    `json:"atLeast"`
	Unit    string  `json:"unit,omitempty"`
	Status  string  `json:"status"`
	// Note qualifies the result, e.g. a scale below the goal's.
	Note string `json:"note,omitempty"`
	// Connections is the concurrency of a per-concurrency goal.
	Connections int `json:"connections,omitempty"`
}

// The goals' bounds.
const (
	goalSetRatio       = 0.60
	goalGetRatio       = 0.90
	goalSetP99Ratio    = 2
	goalBulkCost       = 15
	goalScaleUsers     = 1_000_000
	goalRSSBytes       = 1 << 30
	goalRestartSeconds = 10
	goalLateSeconds    = 1
	goalWebhookP99ms   = 100
	goalWebhookRate    = 2000
)

// ratio returns a/b, or NaN when either was not measured.
func ratio(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// judge fills in the status of g from its value; NaN is not measured.
func judge(g Goal) Goal {
	switch {
	case math.IsNaN(g.Value):
		g.Status = GoalNotMeasured
		g.Value = 0
	case g.AtLeast && g.Value >= g.Limit, !g.AtLeast && g.Value <= g.Limit:
		g.Status = GoalMet
	default:
		g.Status = GoalMissed
	}
	return g
}

// Evaluate judges every goal on f. Goals whose inputs were not measured are
// reported as such, never as met.
func Evaluate(f Figures) []Goal {
	load := f.Load
	if len(load) == 0 {
		load = []LoadFigures{{SetRPS: f.SetRPS, BaselinePostRPS: f.BaselinePostRPS, GetRPS: f.GetRPS, BaselineGetRPS: f.BaselineGetRPS,
			SetRatio: f.SetRatio, GetRatio: f.GetRatio, SetP99ms: f.SetP99ms, BaselinePostP99ms: f.BaselinePostP99ms,
			SetP99Ratio: f.SetP99Ratio, NoisySet: f.Noisy["set"], NoisyGet: f.Noisy["get"]}}
	}
	var goals []Goal
	for _, l := range load {
		goals = append(goals, loadGoals(l)...)
	}
	bulk := Goal{Name: "getPresencesByUserId(650) cost", Want: fmt.Sprintf("<= %d GETs (GET req/s / bulk req/s)", goalBulkCost),
		Value: ratio(f.GetRPS, f.BulkRPS), Limit: goalBulkCost, Unit: "GETs"}
	if f.Noisy["bulk"] {
		bulk.Note = noisyNote
	}
	goals = append(goals, bulk)
	scaleNote := ""
	if f.ScaleUsers > 0 && f.ScaleUsers < goalScaleUsers {
		scaleNote = fmt.Sprintf("measured with %d users; the goal is for %d", f.ScaleUsers, goalScaleUsers)
	}
	rss, restart := math.NaN(), math.NaN()
	if f.ScaleUsers > 0 && f.RSSBytes > 0 {
		rss = float64(f.RSSBytes) / (1 << 30)
	}
	if f.ScaleUsers > 0 && f.RestartSeconds > 0 {
		restart = f.RestartSeconds
	}
	goals = append(goals,
		Goal{Name: "resident memory, users with a session and a preferred presence", Want: "<= 1 GiB at 1,000,000 users",
			Value: rss, Limit: float64(goalRSSBytes) / (1 << 30), Unit: "GiB", Note: scaleNote},
		Goal{Name: "restart to /readyz", Want: fmt.Sprintf("<= %d s at 1,000,000 users", goalRestartSeconds),
			Value: restart, Limit: goalRestartSeconds, Unit: "s", Note: scaleNote},
	)
	late := math.NaN()
	timerNote := ""
	if f.TimerSessions > 0 {
		late = f.MaxLateSeconds
		if f.TimerSessions < goalScaleUsers {
			timerNote = fmt.Sprintf("measured with %d pending fades and expiries; the goal is for %d", f.TimerSessions, goalScaleUsers)
		}
	}
	goals = append(goals, Goal{Name: "fades and expiries fire on time", Want: fmt.Sprintf("each within %d s of its instant", goalLateSeconds),
		Value: late, Limit: goalLateSeconds, Unit: "s late (max)", Note: timerNote})
	for i := range goals {
		goals[i] = judge(goals[i])
	}
	return append(goals, webhookGoal(f))
}

// noisyNote marks a goal judged on runs that other processes disturbed.
const noisyNote = "noisy: other processes used the CPU during these runs"

// loadGoals returns the setPresence and GET goals at one concurrency, not
// yet judged.
func loadGoals(l LoadFigures) []Goal {
	setRatio, getRatio := ratio(l.SetRPS, l.BaselinePostRPS), ratio(l.GetRPS, l.BaselineGetRPS)
	if l.SetRatio > 0 {
		setRatio = l.SetRatio
	}
	if l.GetRatio > 0 {
		getRatio = l.GetRatio
	}
	p99 := ratio(l.SetP99ms, l.BaselinePostP99ms)
	if l.SetP99Ratio > 0 {
		p99 = l.SetP99Ratio
	}
	at := ""
	if l.Conns > 0 {
		at = fmt.Sprintf(" at %d connections", l.Conns)
	}
	goals := []Goal{
		{Name: "setPresence throughput" + at, Want: fmt.Sprintf(">= %.2f x baseline POST", goalSetRatio),
			Value: setRatio, Limit: goalSetRatio, AtLeast: true, Unit: "x"},
		{Name: "setPresence p99 latency" + at, Want: fmt.Sprintf("<= %d x baseline POST's p99", goalSetP99Ratio),
			Value: p99, Limit: goalSetP99Ratio, Unit: "x"},
		{Name: "GET presence throughput" + at, Want: fmt.Sprintf(">= %.2f x baseline GET", goalGetRatio),
			Value: getRatio, Limit: goalGetRatio, AtLeast: true, Unit: "x"},
	}
	for i := range goals {
		goals[i].Connections = l.Conns
		if (i < 2 && l.NoisySet) || (i == 2 && l.NoisyGet) {
			goals[i].Note = noisyNote
		}
	}
	return goals
}

// webhookGoal judges change-to-webhook latency: the p99 must be within its
// bound, at the goal's rate or more, with every change due sent and every
// notification received; short of any of them the goal is missed.
func webhookGoal(f Figures) Goal {
	g := Goal{Name: "change to webhook received", Want: fmt.Sprintf("p99 <= %d ms at %s changes/s", goalWebhookP99ms, thousands(goalWebhookRate)),
		Value: math.NaN(), Limit: goalWebhookP99ms, Unit: "ms (p99)"}
	if f.WebhookAskedRate > 0 {
		g.Value = f.WebhookP99ms
	}
	g = judge(g)
	if g.Status == GoalNotMeasured {
		return g
	}
	var why []string
	if f.WebhookRate < goalWebhookRate {
		why = append(why, fmt.Sprintf("at %s changes/s, below the goal's %s", thousands(f.WebhookRate), thousands(goalWebhookRate)))
	}
	if f.WebhookShortfall > 0 {
		why = append(why, fmt.Sprintf("%d changes due at %s/s not sent or failed", f.WebhookShortfall, thousands(f.WebhookAskedRate)))
	}
	if f.WebhookMissing > 0 {
		why = append(why, fmt.Sprintf("%d notifications missing", f.WebhookMissing))
	}
	if len(why) > 0 {
		g.Status = GoalMissed
	} else {
		why = append(why, fmt.Sprintf("at %s changes/s", thousands(f.WebhookRate)))
	}
	if f.WebhookNoisy {
		why = append(why, "noisy: other processes used the CPU during the run")
	}
	g.Note = strings.Join(why, "; ")
	return g
}

// Missed returns the names of the goals in goals that were missed.
func Missed(goals []Goal) []string {
	var out []string
	for _, g := range goals {
		if g.Status == GoalMissed {
			out = append(out, g.Name)
		}
	}
	return out
}
