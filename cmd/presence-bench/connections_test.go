package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseConfigConnectionsRedis(t *testing.T) {
	c, err := parseConfig([]string{"--scenario", "connections", "--store", "redis", "--nodes", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != storeRedis || c.Nodes != 3 || c.usersFor("connections") != defaultConnections {
		t.Errorf("%+v", c)
	}
	// Its nodes are its own: it runs alone.
	if _, err := parseConfig([]string{"--scenario", "connections,set", "--store", "redis"}, io.Discard); err == nil {
		t.Error("connections with set on Redis accepted")
	}
}

// A short run of the connections scenario on Redis with two nodes, and the
// tool's share per process lowered so that two workers hold most of the
// connections: every connection is held on its node, every change arrives
// at every watcher across the nodes, the nodes' memory is measured, and
// holding idle connections costs no durable write (each node renews one
// record in the registry of holders, not a lease per session). It builds presenced, so it is skipped with -short.
func TestRunConnectionsRedisWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds presenced and holds connections; not with -short")
	}
	startTestRedis(t) // skips, or fails with PRESENCED_REQUIRE_REDIS=1, without redis-server
	t.Setenv(connShareEnv, "700")
	rep, out := runReport(t, []string{"presence-bench", "--scenario", "connections", "--store", "redis", "--nodes", "2", "--users", "1500"})
	c := rep.Connections
	if c == nil {
		t.Fatalf("no connections result:\n%s", out.String())
	}
	if c.Held != 1500 || c.ConnectErrors != 0 || c.Nodes != 2 || c.Processes != 3 || c.Dropped != 0 || c.ConnectRate <= 0 {
		t.Errorf("held %d, errors %d, nodes %d, processes %d, dropped %d, rate %.0f", c.Held, c.ConnectErrors, c.Nodes, c.Processes, c.Dropped, c.ConnectRate)
	}
	if len(c.PerNode) != 2 {
		t.Fatalf("per node: %+v", c.PerNode)
	}
	for _, n := range c.PerNode {
		if n.Connections != 750 || n.MemoryAfter.RSS <= 0 || n.Watchers != 325 || n.Changers != 5 {
			t.Errorf("node %+v", n)
		}
	}
	if c.Changes == 0 || c.Missing != 0 || c.Unexpected != 0 || c.Arrivals != uint64(c.Changes*watchers) {
		t.Errorf("changes %d, arrivals %d, missing %d, unexpected %d", c.Changes, c.Arrivals, c.Missing, c.Unexpected)
	}
	if c.HoldWritesPerSecond != 0 || c.HoldRedisCPUCores <= 0 {
		t.Errorf("while held: %.1f writes/s, redis %.3f cores", c.HoldWritesPerSecond, c.HoldRedisCPUCores)
	}
	if c.LocalP50ms <= 0 || c.RemoteP50ms <= 0 || c.LocalP99ms < c.LocalP50ms || c.RemoteP99ms < c.RemoteP50ms {
		t.Errorf("arrivals on the changer's node p50 %.2f, p99 %.2f; on the other p50 %.2f, p99 %.2f", c.LocalP50ms, c.LocalP99ms, c.RemoteP50ms, c.RemoteP99ms)
	}
	for _, want := range []string{"to 2 presenced node(s), dialed and held by 3 process(es)", "node n1: 750 connections", "watchers 325 on n1, 325 on n2; changers 5 on n1, 5 on n2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the table:\n%s", want, out.String())
		}
	}
}

// The table of a run over several nodes gives each node's figures, and
// says where the watchers and changers are; the file store's says how to
// hold more than one process's descriptors allow.
func TestWriteConnections(t *testing.T) {
	c := &ConnectionsResult{Asked: 50000, Held: 50000, FDLimit: 20000, Nodes: 3, Processes: 3, ConnectRate: 1300, ConnectSeconds: 38,
		ServerCPUPerConnectMs: 0.6, ToolCPUPerConnectMs: 0.45, RedisCPUPerConnectMs: 0.05,
		MemoryBefore: memory{RSS: 60 << 20}, MemoryAfter: memory{RSS: 900 << 20}, BytesPerConnection: 17000,
		HeapBefore: 1, HeapAfter: 2, GoroutinesBefore: 30, GoroutinesAfter: 50030, LiveHeapBefore: 1 << 20, LiveHeapAfter: 1<<20 + 16667*5000,
		HoldWritesPerSecond: 5000, HoldWriteMeanMs: 5, HoldRedisCPUCores: 0.2, RedisErrors: map[string]float64{`op="subscriptions"`: 9},
		Watchers: watchers, ChangedUsers: changedUsers, Changes: 200, Arrivals: 130000,
		WatchersOn: "217 on n1, 217 on n2, 216 on n3", ChangersOn: "3 on n1, 3 on n2, 4 on n3",
		LocalP50ms: 11, LocalP99ms: 40, RemoteP50ms: 15, RemoteP99ms: 45}
	for i := range 3 {
		c.PerNode = append(c.PerNode, connNodeResult{ID: fmt.Sprintf("n%d", i+1), Connections: 16667, Watchers: 217, Arrivals: 43400, ChangesSent: 43400})
	}
	c.PerNode[1].RemoteDropped, c.PerNode[1].RemoteDroppedLast = 25000, 29
	var out strings.Builder
	writeConnections(&out, c)
	for _, want := range []string{
		"50000 held of 50000 asked", "to 3 presenced node(s), dialed and held by 3 process(es)",
		"presenced 0.60 ms, redis-server 0.05 ms, the tool's processes 0.45 ms: 1.10 ms in all",
		"node n2: 16667 connections", "5000 durable state writes/s", "redis-server 0.20 cores",
		"live Go heap of node n1 right after a forced GC: 5000 bytes per connection",
		"watchers 217 on n1, 217 on n2, 216 on n3; changers 3 on n1, 3 on n2, 4 on n3",
		"on the changer's node p50 11.00 ms, p99 40.00 ms; on the other nodes (through Redis) p50 15.00 ms, p99 45.00 ms",
		"node n2 dropped at least 25000 changes made on other nodes",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "NOT the") {
		t.Errorf("three nodes hold 50,000, yet:\n%s", out.String())
	}
	file := &ConnectionsResult{Asked: 50000, Held: 19500, FDLimit: 20000, Nodes: 1, Processes: 1, ConnectRate: 1700}
	out.Reset()
	writeConnections(&out, file)
	if !strings.Contains(out.String(), "NOT the 50000 asked") || !strings.Contains(out.String(), "use --store redis --nodes 3 for 50,000") {
		t.Errorf("file store:\n%s", out.String())
	}
}

// runReport runs the tool with args and a JSON report file, and returns
// the report and what the tool printed.
func runReport(t *testing.T, args []string) (Report, *strings.Builder) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "report.json")
	var out strings.Builder
	if err := run(context.Background(), append(args, "--json-file", file), &out, io.Discard); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	return rep, &out
}
