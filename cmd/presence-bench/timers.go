package main

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The timers scenario's sessions: the shortest expiry setPresence accepts,
// which for an Available session is also the instant of its first fade.
const (
	timerExpiryISO = "PT5M"
	timerExpiry    = 5 * time.Minute
	// timerPoll is how often /metrics is read while the timers fall due.
	timerPoll = 100 * time.Millisecond
	// timerGrace bounds the wait for the scheduler after the last instant.
	timerGrace = 10 * time.Minute
)

// TimersResult is what the timers scenario measured.
type TimersResult struct {
	Sessions int            `json:"sessions"`
	Expiry   string         `json:"expiry"`
	Populate PopulateResult `json:"populate"`
	// Fired is how many users the scheduler re-evaluated, of Sessions.
	Fired    uint64 `json:"fired"`
	Complete bool   `json:"complete"`
	// FireSeconds runs from the first instant until the last was fired;
	// FireRate is the users fired per second while the scheduler was
	// behind.
	FireSeconds float64 `json:"fire_seconds"`
	FireRate    float64 `json:"fire_rate"`
	// Lateness of the k-th instant: when the fired counter was first seen
	// at k or more, minus the k-th earliest instant; an upper bound that
	// includes the poll interval and the creating request's latency.
	P50LateSeconds     float64 `json:"p50_late_seconds"`
	P99LateSeconds     float64 `json:"p99_late_seconds"`
	MaxLateSeconds     float64 `json:"max_late_seconds"`
	MaxLagGaugeSeconds float64 `json:"max_lag_gauge_seconds"`
	Poll               string  `json:"poll"`
	// MaxLateByWindow is the largest lateness of the instants in each
	// window of lateWindow, from the first instant: when the scheduler fell
	// behind.
	MaxLateByWindow []float64 `json:"max_late_by_window_seconds"`
	LateWindow      string    `json:"late_window"`
}

// lateWindow is the width of the windows of MaxLateByWindow.
const lateWindow = 10 * time.Second

// firedSample is the scheduler's counter as seen at one instant.
type firedSample struct {
	at    time.Time
	fired uint64
}

// runTimers creates --users sessions of PT5M on a fresh presenced, waits
// until they fall due, and watches presenced_scheduler_fired_total climb,
// to bound how late each fade and expiry is processed.
func runTimers(ctx context.Context, b *bench) error {
	t, dataDir, err := b.presencedTarget(ctx, "timers", false)
	if err != nil {
		return err
	}
	n := b.cfg.usersFor("timers")
	wl, err := b.workload(ctx, dataDir, n, timerExpiryISO)
	if err != nil {
		return err
	}
	m, err := scrape(ctx, t.client, t.base)
	if err != nil {
		return err
	}
	fired0 := m["presenced_scheduler_fired_total"]
	res := &TimersResult{Sessions: n, Expiry: timerExpiryISO, Poll: timerPoll.String()}
	b.report.Timers = res
	sent := make([]time.Time, n)
	b.log.Info("creating sessions", "sessions", n, "expiry", timerExpiryISO)
	// Pair 0 is Available: its first fade falls at the expiry's instant.
	res.Populate, err = populate(ctx, t, wl, populateOptions{conns: b.cfg.Connections, pair: 0, sent: sent, log: b.log})
	if err != nil {
		return err
	}
	slices.SortFunc(sent, func(a, b time.Time) int { return a.Compare(b) })
	first, last := sent[0].Add(timerExpiry), sent[n-1].Add(timerExpiry)
	b.log.Info("waiting for the first instant", "in", time.Until(first).Round(time.Second))
	if err := sleepUntil(ctx, first.Add(-time.Second)); err != nil {
		return err
	}
	samples, maxLag, err := watchFired(ctx, t, uint64(fired0), uint64(n), last.Add(timerGrace))
	if err != nil {
		return err
	}
	res.MaxLagGaugeSeconds = maxLag
	summarizeTimers(res, sent, samples)
	if !res.Complete {
		return fmt.Errorf("only %d of %d timers fired within %v of the last instant", res.Fired, n, timerGrace)
	}
	return nil
}

// watchFired polls /metrics until the scheduler has fired want users more
// than it had at start, or until deadline. It returns the samples and the
// largest lag gauge seen.
func watchFired(ctx context.Context, t *target, start, want uint64, deadline time.Time) ([]firedSample, float64, error) {
	var samples []firedSample
	maxLag := 0.0
	tick := time.NewTicker(timerPoll)
	defer tick.Stop()
	for {
		m, err := scrape(ctx, t.client, t.base)
		if err != nil {
			return samples, maxLag, err
		}
		s := firedSample{at: time.Now(), fired: uint64(m["presenced_scheduler_fired_total"]) - start}
		samples = append(samples, s)
		maxLag = max(maxLag, m["presenced_scheduler_lag_seconds"])
		if s.fired >= want || s.at.After(deadline) {
			return samples, maxLag, nil
		}
		select {
		case <-ctx.Done():
			return samples, maxLag, ctx.Err()
		case <-tick.C:
		}
	}
}

// summarizeTimers computes the lateness of every instant from the sorted
// send times and the samples of the fired counter. The scheduler takes due
// users earliest first, so when the counter reads k the k earliest
// instants have been processed (give or take the few in flight when it
// works on several at once); the k-th instant is at least the k-th
// earliest send time plus the expiry.
func summarizeTimers(res *TimersResult, sent []time.Time, samples []firedSample) {
	var late Histogram
	res.LateWindow = lateWindow.String()
	record := func(k int, d time.Duration) {
		d = max(0, d)
		late.Record(d)
		w := int(sent[k].Sub(sent[0]) / lateWindow)
		for len(res.MaxLateByWindow) <= w {
			res.MaxLateByWindow = append(res.MaxLateByWindow, 0)
		}
		res.MaxLateByWindow[w] = max(res.MaxLateByWindow[w], d.Seconds())
	}
	k := 0 // instants sent[:k] are accounted for
	var behindFrom time.Time
	var behindFired uint64
	for _, s := range samples {
		for k < len(sent) && uint64(k) < s.fired {
			record(k, s.at.Sub(sent[k].Add(timerExpiry)))
			k++
		}
		if behindFrom.IsZero() && s.fired > 0 {
			behindFrom, behindFired = s.at, s.fired
		}
	}
	if len(samples) > 0 {
		final := samples[len(samples)-1]
		res.Fired = min(final.fired, uint64(len(sent)))
		res.Complete = final.fired >= uint64(len(sent))
		res.FireSeconds = final.at.Sub(sent[0].Add(timerExpiry)).Seconds()
		if d := final.at.Sub(behindFrom).Seconds(); d > 0 {
			res.FireRate = float64(final.fired-behindFired) / d
		}
		// Instants never seen fired are late by at least until the end.
		for ; k < len(sent); k++ {
			record(k, final.at.Sub(sent[k].Add(timerExpiry)))
		}
	}
	res.P50LateSeconds = late.Quantile(0.50).Seconds()
	res.P99LateSeconds = late.Quantile(0.99).Seconds()
	res.MaxLateSeconds = late.Max().Seconds()
}
