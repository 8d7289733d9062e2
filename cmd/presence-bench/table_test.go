package main

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// TestWriteReport renders a report both ways: every figure and every goal
// appears, and the JSON reads back.
func TestWriteReport(t *testing.T) {
	r := &Report{
		Settings: Settings{Connections: 64, DurationSeconds: 10},
		Runs: []RunResult{
			{Scenario: "set", Target: targetBaseline, RPS: 30_000, Ops: []OpResult{{Op: opSet, RPS: 30_000, Requests: 300_000}}},
			{Scenario: "set", Target: targetPresenced, RPS: 12_000, Noisy: true, ServerCPUCores: 1.1, ServerCPUusPerReq: 61,
				Ops: []OpResult{{Op: opSet, RPS: 12_000, Requests: 120_000, Errors: 3, FirstError: "HTTP 503: busy"}}},
			{Scenario: "mix", Target: targetPresenced, RPS: 5_000, Ops: []OpResult{{Op: opGet, RPS: 3_000}, {Op: opBulk, RPS: 2_000}}},
		},
		Scale: &ScaleResult{Populate: PopulateResult{Users: 1_000_000}, Memory: memory{RSS: 2 << 30}, RestartSeconds: 3},
	}
	r.finish()
	var table bytes.Buffer
	if err := writeTable(&table, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.400x", "presenced (noisy)", "(all)", "5,000", "HTTP 503: busy", "1000000 users",
		"setPresence throughput", "MISSED", "resident memory", "goals not measured in this run: setPresence p99 latency; GET presence throughput"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := writeJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Runs) != 3 || back.Runs[1].Ops[0].VsBaseline != 0.4 || len(back.Goals) != 8 {
		t.Errorf("JSON round trip: %v %+v", err, back)
	}
}

// TestUsageStoreCounters turns presenced's store counters at the two edges
// of a window into the group commit's figures, and the table shows them.
func TestUsageStoreCounters(t *testing.T) {
	before := snapshot{hasStore: true, records: 1_000, syncs: 100, commitSeconds: 0.5, syncSeconds: 0.03}
	after := snapshot{hasStore: true, records: 5_000, syncs: 600, commitSeconds: 2.5, syncSeconds: 0.23}
	r := RunResult{Scenario: "set", Target: targetPresenced, RPS: 800, Ops: []OpResult{{Op: opSet, RPS: 800}}}
	r.usage(before, after, 5*time.Second)
	if r.RecordsPerFsync != 8 || r.FsyncsPerSecond != 100 {
		t.Errorf("records per fsync %g, fsyncs/s %g; want 8, 100", r.RecordsPerFsync, r.FsyncsPerSecond)
	}
	// 2 s of commits over 4,000 records; 0.2 s of syncs over 500 syncs.
	if math.Abs(r.CommitMs-0.5) > 1e-9 || math.Abs(r.SyncMs-0.4) > 1e-9 {
		t.Errorf("commit %g ms, sync %g ms; want 0.5, 0.4", r.CommitMs, r.SyncMs)
	}
	var table bytes.Buffer
	if err := writeTable(&table, &Report{Runs: []RunResult{r}}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(table.String(), "\n")
	var header, row string
	for i, l := range lines {
		if strings.Contains(l, "sync ms") && i+1 < len(lines) {
			header, row = l, lines[i+1]
		}
	}
	// The last three columns: rec/fsync, commit ms, sync ms.
	h, f := strings.Fields(header), strings.Fields(row)
	if len(h) < 5 || strings.Join(h[len(h)-5:], " ") != "rec/fsync commit ms sync ms" ||
		len(f) < 3 || strings.Join(f[len(f)-3:], " ") != "8.0 0.50 0.40" {
		t.Errorf("table:\n%s", table.String())
	}
}
