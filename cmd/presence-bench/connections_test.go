package main

import (
	"context"
	"encoding/json"
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
// at every watcher across the nodes, and the nodes' memory and lease
// renewals are measured. It builds presenced, so it is skipped with -short.
func TestRunConnectionsRedisWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds presenced and holds connections; not with -short")
	}
	startTestRedis(t) // skips, or fails with PRESENCED_REQUIRE_REDIS=1, without redis-server
	t.Setenv(connShareEnv, "700")
	file := filepath.Join(t.TempDir(), "report.json")
	args := []string{"presence-bench", "--scenario", "connections", "--store", "redis", "--nodes", "2", "--users", "1500", "--json-file", file}
	var out strings.Builder
	if err := run(context.Background(), args, &out, io.Discard); err != nil {
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
	if c.HoldWritesPerSecond <= 0 || c.HoldRedisCPUCores <= 0 {
		t.Errorf("while held: %.1f writes/s, redis %.3f cores", c.HoldWritesPerSecond, c.HoldRedisCPUCores)
	}
	for _, want := range []string{"to 2 presenced node(s), dialed and held by 3 process(es)", "node n1: 750 connections", "watchers 325 on n1, 325 on n2; changers 5 on n1, 5 on n2"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in the table:\n%s", want, out.String())
		}
	}
}
