package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
)

// The presenced nodes of the connections scenario: one on the file store,
// or --nodes on the tool's redis-server with --store redis, the
// connections spread round-robin over them (connection i on node
// i % nodes), so that the watchers and the changers are on every node
// and a change reaches most watchers through Redis.

// connNodeResult is what the connections scenario measured of one node.
type connNodeResult struct {
	ID string `json:"id"`
	// Connections is the node's presenced_connections_open after the
	// hold; Watchers and Changers are how many of the watching and
	// changing connections it serves.
	Connections        float64 `json:"connections"`
	Watchers           int     `json:"watchers"`
	Changers           int     `json:"changers"`
	MemoryBefore       memory  `json:"memory_before"`
	MemoryAfter        memory  `json:"memory_after"`
	BytesPerConnection float64 `json:"bytes_per_connection"`
	// HoldCPUCores is the node's CPU, in cores, while the connections
	// were held idle; WatchCPUCores while the changes were made.
	HoldCPUCores  float64 `json:"hold_cpu_cores"`
	WatchCPUCores float64 `json:"watch_cpu_cores"`
	// Of the changes made: the arrivals at the watchers on this node, the
	// change messages it sent and the watchers it dropped as slow.
	Arrivals      uint64  `json:"arrivals"`
	ChangesSent   float64 `json:"change_messages_sent"`
	SlowConsumers float64 `json:"slow_consumers"`
	// RemoteDropped counts, in the last lines the node logged (its
	// output's tail the tool keeps), the warnings that a change made on
	// another node was dropped before its local watchers heard of it.
	RemoteDropped int `json:"remote_changes_dropped_logged"`
	// RemoteDroppedLast is how long before the changes were made the
	// last of those warnings was logged, in seconds (negative: after they
	// began).
	RemoteDroppedLast float64 `json:"remote_changes_dropped_last_seconds_before_watch,omitempty"`
}

// remoteDroppedWarning begins what a node logs when other nodes' changes
// come faster than it relays them to its local watchers, and it drops one
// (since the relay reads such users again, the watchers still get their
// latest presence).
const remoteDroppedWarning = "other nodes' changes arrive faster than"

// countRemoteDropped records, for each node, the dropped remote changes
// its output's tail tells of, and when it last told of one relative to
// watchStart. presenced logs JSON lines and at most 5 of one warning per
// 10 s; the rest it counts in a "log lines suppressed" line when the next
// window opens, so the count is a floor.
func (c *ConnectionsResult) countRemoteDropped(nodes []*target, watchStart time.Time) {
	for i, t := range nodes {
		if i >= len(c.PerNode) || t.proc == nil {
			continue
		}
		n, last := remoteDropped(t.proc.out.String())
		c.PerNode[i].RemoteDropped = n
		if !last.IsZero() {
			c.PerNode[i].RemoteDroppedLast = watchStart.Sub(last).Seconds()
		}
	}
}

// remoteDropped counts the dropped remote changes presenced's log tells
// of, and returns when it last did.
func remoteDropped(log string) (n int, last time.Time) {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, remoteDroppedWarning) {
			continue
		}
		var rec struct {
			Time       time.Time `json:"time"`
			Msg        string    `json:"msg"`
			Message    string    `json:"message"`
			Suppressed int       `json:"suppressed"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue
		}
		switch {
		case strings.Contains(rec.Msg, remoteDroppedWarning):
			n++
		case strings.Contains(rec.Message, remoteDroppedWarning) && rec.Suppressed > 0:
			n += rec.Suppressed
		default:
			continue
		}
		if rec.Time.After(last) {
			last = rec.Time
		}
	}
	return n, last
}

// Metrics of a node's connections read for the watch phase.
const (
	metricChangesSent   = `presenced_connection_messages_out_total{type="change"}`
	metricSlowConsumers = "presenced_connection_slow_consumers_total"
)

// eachCPU returns the CPU time of each node.
func eachCPU(nodes []*target) ([]time.Duration, error) { return eachNode(nodes, processCPU) }

// eachNode reads each node's process with read.
func eachNode[T any](nodes []*target, read func(pid int) (T, error)) ([]T, error) {
	out := make([]T, len(nodes))
	for i, t := range nodes {
		v, err := read(t.proc.pid())
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// cpuPerNode sets, with set, each node's CPU in cores since before (nil
// when that reading failed), seconds ago.
func (c *ConnectionsResult) cpuPerNode(nodes []*target, before []time.Duration, seconds float64, set func(*connNodeResult, float64)) {
	if before == nil || seconds <= 0 {
		return
	}
	after, err := eachCPU(nodes)
	if err != nil {
		return
	}
	for i := range c.PerNode {
		set(&c.PerNode[i], (after[i]-before[i]).Seconds()/seconds)
	}
}

// watchPerNode records what each node did while the changes were made,
// from its metrics (nil when that scrape failed) and CPU before, d ago.
func (c *ConnectionsResult) watchPerNode(nodes []*target, before []map[string]float64, cpuBefore []time.Duration, d time.Duration) {
	c.cpuPerNode(nodes, cpuBefore, d.Seconds(), func(r *connNodeResult, cores float64) { r.WatchCPUCores = cores })
	if before == nil {
		return
	}
	_, after, err := scrapeNodes(context.Background(), nodes)
	if err != nil {
		return
	}
	for i := range c.PerNode {
		c.PerNode[i].ChangesSent = after[i][metricChangesSent] - before[i][metricChangesSent]
		c.PerNode[i].SlowConsumers = after[i][metricSlowConsumers] - before[i][metricSlowConsumers]
	}
}

// connectionNodes starts the scenario's presenced: with --store redis the
// redis-server and --nodes nodes, else one on the file store. It returns
// the nodes, their ids, and the data dir whose development key signs
// tokens they all accept.
func (b *bench) connectionNodes(ctx context.Context, profile bool) (nodes []*target, ids []string, dataDir string, err error) {
	if b.cfg.Store != storeRedis {
		t, dir, err := b.spawn(ctx, "connections", profile)
		if err != nil {
			return nil, nil, "", err
		}
		return []*target{t}, []string{"n1"}, dir, nil
	}
	_, nodes, dataDir, err = b.spawnRedisNodes(ctx, "connections", profile)
	if err != nil {
		return nil, nil, "", err
	}
	for i := range nodes {
		ids = append(ids, fmt.Sprintf("n%d", i+1))
	}
	return nodes, ids, dataDir, nil
}

// nodesMemory returns the resident memory of every node, read together
// after leaving them alone for settle.
func nodesMemory(ctx context.Context, nodes []*target) ([]memory, error) {
	for _, t := range nodes {
		t.client.CloseIdleConnections()
	}
	if err := sleepUntil(ctx, time.Now().Add(settle)); err != nil {
		return nil, err
	}
	return eachNode(nodes, processMemory)
}

// sumMemory adds the nodes' memory up.
func sumMemory(ms []memory) memory {
	var s memory
	for _, m := range ms {
		s.RSS += m.RSS
		s.Peak += m.Peak
	}
	return s
}

// scrapeNodes scrapes every node's /metrics and returns each series
// summed over them, and each node's own; it fails when a node's does.
func scrapeNodes(ctx context.Context, nodes []*target) (map[string]float64, []map[string]float64, error) {
	sum := map[string]float64{}
	each := make([]map[string]float64, len(nodes))
	for i, t := range nodes {
		m, err := scrape(ctx, t.client, t.base)
		if err != nil {
			return nil, nil, err
		}
		each[i] = m
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum, each, nil
}

// nodesCPU returns the CPU time the nodes used in all.
func nodesCPU(nodes []*target) (time.Duration, error) {
	each, err := eachCPU(nodes)
	var sum time.Duration
	for _, cpu := range each {
		sum += cpu
	}
	return sum, err
}

// spread counts, for connections [from, to), how many are on each of
// nodes nodes (connection i on node i % nodes).
func spread(from, to, nodes int) []int {
	out := make([]int, nodes)
	for i := from; i < to; i++ {
		out[i%nodes]++
	}
	return out
}

// describeSpread says how counts are spread over the nodes ids, as
// "217 on n1, 217 on n2, 216 on n3".
func describeSpread(counts []int, ids []string) string {
	parts := make([]string, len(counts))
	for i, n := range counts {
		parts[i] = fmt.Sprintf("%d on %s", n, ids[i])
	}
	return strings.Join(parts, ", ")
}

// redisCPU returns the CPU time of the run's redis-server, 0 without one.
func (b *bench) redisCPU() time.Duration {
	if b.redis == nil {
		return 0
	}
	cpu, err := processCPU(b.redis.proc.pid())
	if err != nil {
		return 0
	}
	return cpu
}

// holdLoad records the store writes of the nodes while the connections
// were held for d, from the sum of their metrics before (nil when that
// scrape failed), and redis-server's CPU.
func (c *ConnectionsResult) holdLoad(before map[string]float64, nodes []*target, d time.Duration, redisBefore, redisAfter time.Duration) {
	if d <= 0 {
		return
	}
	if redisAfter > redisBefore {
		c.HoldRedisCPUCores = (redisAfter - redisBefore).Seconds() / d.Seconds()
	}
	if before == nil {
		return
	}
	after, _, err := scrapeNodes(context.Background(), nodes)
	if err != nil {
		return
	}
	const count, sum = "presenced_store_write_seconds_count", "presenced_store_write_seconds_sum"
	if n := after[count] - before[count]; n > 0 {
		c.HoldWritesPerSecond = n / d.Seconds()
		c.HoldWriteMeanMs = 1000 * (after[sum] - before[sum]) / n
	}
}

// perNode records each node's memory and connections (from its metrics
// after the hold, each nil when that scrape failed).
func (c *ConnectionsResult) perNode(ids []string, before, after []memory, metrics []map[string]float64) {
	w := spread(0, watchers, len(ids))
	ch := spread(watchers, watchers+changedUsers, len(ids))
	c.PerNode = make([]connNodeResult, len(ids))
	for i, id := range ids {
		r := connNodeResult{ID: id, Watchers: w[i], Changers: ch[i], MemoryBefore: before[i], MemoryAfter: after[i]}
		if i < len(metrics) && metrics[i] != nil {
			r.Connections = metrics[i]["presenced_connections_open"]
			c.LeaseTakeovers += metrics[i]["presenced_lease_takeovers_total"]
			for k, v := range metrics[i] {
				if op, ok := strings.CutPrefix(k, "presenced_redis_errors_total{"); ok && v > 0 {
					if c.RedisErrors == nil {
						c.RedisErrors = map[string]float64{}
					}
					c.RedisErrors[strings.TrimSuffix(op, "}")] += v
				}
			}
		}
		if r.Connections > 0 {
			r.BytesPerConnection = float64(r.MemoryAfter.RSS-r.MemoryBefore.RSS) / r.Connections
		}
		c.PerNode[i] = r
	}
}

// toolCPU returns the CPU time of this process and its workers.
func toolCPU(workers []*connWorker) (time.Duration, error) {
	sum, err := processCPU(os.Getpid())
	if err != nil {
		return 0, err
	}
	for _, w := range workers {
		cpu, err := processCPU(w.cmd.Process.Pid)
		if err != nil {
			return 0, err
		}
		sum += cpu
	}
	return sum, nil
}

// allCPUPerConnectMs is the CPU per connection of presenced, redis-server
// and the tool together.
func (c *ConnectionsResult) allCPUPerConnectMs() float64 {
	return c.ServerCPUPerConnectMs + c.RedisCPUPerConnectMs + c.ToolCPUPerConnectMs
}
