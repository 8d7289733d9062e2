package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
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
