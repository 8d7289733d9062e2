package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// writeJSON prints r as indented JSON.
func writeJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// writeJSONFile writes r as JSON to file.
func writeJSONFile(file string, r *Report) error {
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := writeJSON(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// writeTable prints r for people.
func writeTable(w io.Writer, r *Report) error {
	m, s := r.Machine, r.Settings
	fmt.Fprintf(w, "presence-bench: %d CPUs (%s), %s/%s, kernel %s, %s\n", m.CPUs, m.Model, m.OS, m.Arch, m.Kernel, m.GoVersion)
	fmt.Fprintf(w, "target: %s", s.Target)
	if s.Commit != "" {
		fmt.Fprintf(w, ", built from %s", s.Commit)
	}
	fmt.Fprintf(w, "\n%d connections", s.Connections)
	if len(s.Conns) > 1 || (len(s.Conns) == 1 && s.Conns[0] != s.Connections) {
		fmt.Fprintf(w, " (set and get at %s)", joinInts(s.Conns))
	}
	fmt.Fprintf(w, ", %d apps, seed %d", s.Apps, s.Seed)
	if len(r.Runs) > 0 {
		fmt.Fprintf(w, "; load runs: %gs measured after %gs of warm-up", s.DurationSeconds, s.WarmupSeconds)
	}
	fmt.Fprintln(w)
	if p := r.Populate; p != nil {
		fmt.Fprintf(w, "populated %d users with a session each in %.1fs (%s req/s)\n", p.Users, p.Seconds, thousands(p.RPS))
	}
	if len(r.Runs) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\ttarget\tconns\toperation\treq/s\tp50 ms\tp99 ms\tp99.9 ms\tmax ms\terrors\tvs baseline\tp99 vs baseline\tserver CPU\tserver µs/req\tclient CPU\tother CPU\trec/fsync\tcommit ms\tsync ms\t")
		for _, run := range r.Runs {
			writeRun(tw, run)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		for _, run := range r.Runs {
			for _, o := range run.Ops {
				if o.FirstError != "" {
					fmt.Fprintf(w, "first error of %s/%s/%s: %s\n", run.Scenario, run.Target, o.Op, o.FirstError)
				}
			}
			if len(run.RoundsRPS) > 0 {
				rounds := make([]string, len(run.RoundsRPS))
				for i, v := range run.RoundsRPS {
					rounds[i] = thousands(v)
					if i < len(run.RoundsNoisy) && run.RoundsNoisy[i] {
						rounds[i] += " (noisy)"
					}
				}
				fmt.Fprintf(w, "rounds of %s/%s at %d conns, req/s (the median of the quiet ones is shown): %s", run.Scenario, run.Target, run.Connections, strings.Join(rounds, ", "))
				if len(run.RoundsRatio) > 0 {
					fmt.Fprintf(w, "; vs baseline round by round: %s (the median of the quiet ones is shown)", decimals(run.RoundsRatio))
				}
				if len(run.RoundsP99Ratio) > 0 {
					fmt.Fprintf(w, "; p99 vs baseline round by round: %s", decimals(run.RoundsP99Ratio))
				}
				fmt.Fprintln(w)
			}
			writeRedisRun(w, run)
			if run.Profile != "" {
				fmt.Fprintf(w, "CPU profile of %s/%s (the last round): go tool pprof -top %s\n", run.Scenario, run.Target, run.Profile)
			}
		}
	}
	if r.RepeatedRounds > 0 {
		fmt.Fprintf(w, "%d load round(s) were run again because other processes used the CPU meanwhile\n", r.RepeatedRounds)
	}
	writeScale(w, r.Scale)
	writeTimers(w, r.Timers)
	writeWebhook(w, r.Webhook)
	writeConnections(w, r.Connections)
	return writeGoals(w, r.Goals, r.Error)
}

// writeRun prints one run: a row per operation, and a total row when the
// run mixes several. CPU figures go on the last row.
func writeRun(w io.Writer, run RunResult) {
	cpu := func() string {
		server, perReq := "-", "-"
		if run.ServerCPUCores > 0 {
			server = fmt.Sprintf("%.2f", run.ServerCPUCores)
			perReq = fmt.Sprintf("%.0f", run.ServerCPUusPerReq)
		}
		fsync, commit, sync := "-", "-", "-"
		if run.RecordsPerFsync > 0 {
			fsync = fmt.Sprintf("%.1f", run.RecordsPerFsync)
		}
		if run.CommitMs > 0 {
			commit = fmt.Sprintf("%.2f", run.CommitMs)
		}
		if run.SyncMs > 0 {
			sync = fmt.Sprintf("%.2f", run.SyncMs)
		}
		return fmt.Sprintf("%s\t%s\t%.2f\t%.2f\t%s\t%s\t%s\t", server, perReq, run.ClientCPUCores, run.OtherCPUCores, fsync, commit, sync)
	}
	target := run.Target
	if run.Noisy {
		target += " (noisy)"
	}
	for i, o := range run.Ops {
		vs, p99 := "-", "-"
		if o.VsBaseline > 0 {
			vs = fmt.Sprintf("%.3fx", o.VsBaseline)
		}
		tail := "\t\t\t\t\t\t\t"
		if len(run.Ops) == 1 && i == 0 {
			tail = cpu()
			if run.P99Ratio > 0 {
				p99 = fmt.Sprintf("%.2fx", run.P99Ratio)
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.1f\t%d\t%s\t%s\t%s\n", run.Scenario, target, run.Connections, o.Op,
			thousands(o.RPS), o.P50ms, o.P99ms, o.P999ms, o.MaxMs, o.Errors, vs, p99, tail)
	}
	if len(run.Ops) > 1 {
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t\t\t\t\t%d\t\t\t%s\n", run.Scenario, target, run.Connections, "(all)", thousands(run.RPS), run.Errors, cpu())
	}
}

func writeScale(w io.Writer, s *ScaleResult) {
	if s == nil {
		return
	}
	p := s.Populate
	fmt.Fprintf(w, "\nscale: %d users, each with a live session and a preferred presence, populated in %.1fs (%s req/s over %d connections)\n",
		p.Users, p.Seconds, thousands(p.RPS), p.Connections)
	fmt.Fprintf(w, "  server VmRSS %s (peak VmHWM %s); Go heap in use %s; data dir %s\n",
		mib(s.Memory.RSS), mib(s.Memory.Peak), mib(int64(s.GoHeapInuseBytes)), mib(s.DataBytes))
	fmt.Fprintf(w, "  SIGTERM to exit: %s s; restart to /readyz: %s s (median %.2fs)\n",
		decimals(s.ShutdownSeconds), decimals(s.RestartsSeconds), s.RestartSeconds)
	fmt.Fprintf(w, "  VmRSS after restart %s (peak VmHWM %s); %d of %d sampled users read back correctly after every restart\n",
		mib(s.MemoryAfterRestart.RSS), mib(s.MemoryAfterRestart.Peak), s.Verified, s.Sampled)
}

func writeTimers(w io.Writer, t *TimersResult) {
	if t == nil {
		return
	}
	fmt.Fprintf(w, "\ntimers: %d sessions due %s after creation, created in %.1fs (%s req/s)\n",
		t.Sessions, t.Expiry, t.Populate.Seconds, thousands(t.Populate.RPS))
	fmt.Fprintf(w, "  fired %d of %d (presenced_scheduler_fired_total) in %.1fs from the first instant; %s fired/s while behind\n",
		t.Fired, t.Sessions, t.FireSeconds, thousands(t.FireRate))
	fmt.Fprintf(w, "  lateness, an upper bound (poll every %s): p50 %.2fs, p99 %.2fs, max %.2fs; largest presenced_scheduler_lag_seconds seen %.2fs\n",
		t.Poll, t.P50LateSeconds, t.P99LateSeconds, t.MaxLateSeconds, t.MaxLagGaugeSeconds)
	fmt.Fprintf(w, "  max lateness by %s window of instants: %s s\n", t.LateWindow, decimals(t.MaxLateByWindow))
}

func writeWebhook(w io.Writer, h *WebhookResult) {
	if h == nil {
		return
	}
	fmt.Fprintf(w, "\nwebhook: %d users in %d subscriptions; %s changes/s asked, %s achieved over %gs (%d due, %d sent, %d not sent, %d failed)\n",
		h.Users, h.Subscriptions, thousands(h.AskedRate), thousands(h.Rate), h.Seconds, h.Due, h.Sent, h.Unsent, h.Failed)
	fmt.Fprintf(w, "  notifications: %d received, %d missing after %s, %d unexpected; %.1f per POST\n",
		h.Notified, h.Missing, h.Grace, h.Unexpected, h.PerPost)
	fmt.Fprintf(w, "  change sent to webhook received: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.1f ms\n",
		h.P50ms, h.P90ms, h.P99ms, h.P999ms, h.MaxMs)
	fmt.Fprintf(w, "  changes sent late against the schedule: p99 %.2f ms, max %.1f ms", h.SendLagP99ms, h.SendLagMaxMs)
	if h.ServerWithin100ms >= 0 {
		fmt.Fprintf(w, "; presenced's own histogram: %.1f%% of deliveries within 100 ms", 100*h.ServerWithin100ms)
	}
	fmt.Fprintln(w)
	if h.FirstError != "" {
		fmt.Fprintf(w, "  first error of setPresence: %s\n", h.FirstError)
	}
}

func writeGoals(w io.Writer, goals []Goal, stopped string) error {
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var unmeasured []string
	header := false
	for _, g := range goals {
		if g.Status == GoalNotMeasured {
			unmeasured = append(unmeasured, g.Name)
			continue
		}
		if !header {
			fmt.Fprintln(tw, "GOAL\tWANT\tMEASURED\tSTATUS\tNOTE")
			header = true
		}
		val := fmt.Sprintf("%.2f %s", g.Value, g.Unit)
		if g.Unit == "x" {
			val = fmt.Sprintf("%.3f %s", g.Value, g.Unit)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", g.Name, g.Want, val, g.Status, g.Note)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if len(unmeasured) > 0 {
		fmt.Fprintf(w, "goals not measured in this run: %s\n", strings.Join(unmeasured, "; "))
	}
	if stopped != "" {
		fmt.Fprintf(w, "\nSTOPPED EARLY: %s\n", stopped)
	}
	return nil
}

// thousands formats a rate as an integer with thousands separators.
func thousands(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// joinInts lists integers separated by commas.
func joinInts(v []int) string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = strconv.Itoa(x)
	}
	return strings.Join(out, ",")
}

// decimals lists numbers with two decimals.
func decimals(v []float64) string {
	out := make([]string, len(v))
	for i, x := range v {
		out[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(out, ", ")
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
