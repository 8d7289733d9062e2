package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/auth"
)

// The connections scenario holds many idle client connections
// (/presenced/connect) to a fresh presenced, with its default heartbeats,
// and measures its resident memory per connection, the connect rate, and
// the time from a change to its arrival at 650 connections watching the
// changed users.

// Parameters of the connections scenario.
const (
	// defaultConnections is --users of the scenario: the goal's 50,000
	// connections, one user each.
	defaultConnections = 50000
	// connectWorkers dial side by side.
	connectWorkers = 256
	// sourceAddrs is how many loopback source addresses (127.0.0.1 …)
	// the connections come from, each with its own ephemeral ports.
	sourceAddrs = 8
	// holdFor is how long the connections are held idle before the memory
	// is read: more than presenced's default heartbeat of 15 s, so every
	// connection is pinged and answers meanwhile.
	holdFor = 20 * time.Second
	// watchers is how many connections watch the changed users.
	watchers = 650
	// changedUsers are watched by every watcher and change in turn, each
	// through its own connection, changeRate times a second in all, for
	// changeFor.
	changedUsers = 10
	changeRate   = 20
	changeFor    = 10 * time.Second
	// fdMargin is kept free of the file-descriptor limit, which bounds how
	// many connections each side can hold.
	fdMargin = 500
	// devIssuer is the iss of presenced's development tokens.
	devIssuer = "https://presenced.invalid/dev"
)

// ConnectionsResult is what the connections scenario measured.
type ConnectionsResult struct {
	// Asked is --users (or 50,000); Held the connections held, fewer when
	// the file-descriptor limit (FDLimit, of this process and of the
	// presenced it starts) does not allow as many.
	Asked   int    `json:"asked"`
	Held    int    `json:"held"`
	FDLimit uint64 `json:"fd_limit"`
	// ConnectSeconds is from the first dial to the last "ready"; Rate is
	// connections per second over it.
	ConnectSeconds float64 `json:"connect_seconds"`
	ConnectRate    float64 `json:"connect_rate"`
	ConnectErrors  int     `json:"connect_errors"`
	// ConnectRetries are hellos answered serviceNotAvailable (presenced's
	// store timed out) and sent again a second later on a new connection.
	ConnectRetries int64 `json:"connect_retries"`
	// ServerCPUPerConnectMs is presenced's CPU time per connection made
	// (upgrade, token, hello and its durable write); LoadAverage is the
	// machine's one-minute load average as the connecting ended.
	ServerCPUPerConnectMs float64 `json:"server_cpu_ms_per_connect"`
	// ToolCPUPerConnectMs is the CPU time of the tool's processes (dialing,
	// the clients' side of the upgrade and hello), RedisCPUPerConnectMs
	// redis-server's, per connection made.
	ToolCPUPerConnectMs  float64 `json:"tool_cpu_ms_per_connect"`
	RedisCPUPerConnectMs float64 `json:"redis_cpu_ms_per_connect"`
	// RedisErrors are the nodes' failed Redis calls by operation, and
	// LeaseTakeovers the partition leases they took, over the run until
	// the connections were held.
	RedisErrors    map[string]float64 `json:"redis_errors,omitempty"`
	LeaseTakeovers float64            `json:"lease_takeovers"`
	LoadAverage    string             `json:"load_average"`
	FirstError     string             `json:"first_error,omitempty"`
	// Memory before connecting and after holding the connections idle for
	// HoldSeconds; BytesPerConnection is the growth over Held.
	MemoryBefore       memory  `json:"memory_before"`
	MemoryAfter        memory  `json:"memory_after"`
	HoldSeconds        float64 `json:"hold_seconds"`
	BytesPerConnection float64 `json:"bytes_per_connection"`
	// The server's Go memory (heap and goroutine stacks in use) and
	// goroutines, before and after, from its /metrics.
	// HeapUnused is heap memory the runtime holds without using it (idle
	// spans not yet returned to the system), before and after.
	HeapUnusedBefore float64 `json:"go_heap_unused_bytes_before"`
	HeapUnusedAfter  float64 `json:"go_heap_unused_bytes_after"`
	HeapBefore       float64 `json:"go_heap_inuse_bytes_before"`
	HeapAfter        float64 `json:"go_heap_inuse_bytes_after"`
	StackBefore      float64 `json:"go_stack_inuse_bytes_before"`
	StackAfter       float64 `json:"go_stack_inuse_bytes_after"`
	GoroutinesBefore float64 `json:"goroutines_before"`
	GoroutinesAfter  float64 `json:"goroutines_after"`
	// The server's live Go heap (allocated bytes right after a forced
	// GC), before and after; only with --cpuprofile, whose pprof endpoint
	// forces the GC (on several nodes, the first node's). Unlike the resident memory it leaves out the garbage
	// of the connect burst that the next GC frees.
	LiveHeapBefore float64 `json:"go_heap_live_bytes_before,omitempty"`
	LiveHeapAfter  float64 `json:"go_heap_live_bytes_after,omitempty"`
	// Dropped connections ended while held; DroppedWatching those of the
	// tool's own (the watchers and changers among them) that ended while
	// changes were made.
	Dropped         int64 `json:"dropped"`
	DroppedWatching int64 `json:"dropped_watching"`
	// Nodes is how many presenced held the connections (connection i on
	// node i % Nodes), each measured in PerNode; Processes how many
	// processes of the tool dialed and held them (the tool and its
	// workers, each within its file-descriptor limit).
	Nodes     int              `json:"nodes"`
	Processes int              `json:"processes"`
	PerNode   []connNodeResult `json:"per_node,omitempty"`
	// While the connections were held idle: the nodes' durable writes per
	// second (lease renewals, mostly) and their mean, and redis-server's
	// CPU in cores (with --store redis).
	HoldWritesPerSecond float64 `json:"hold_store_writes_per_second"`
	HoldWriteMeanMs     float64 `json:"hold_store_write_mean_ms"`
	HoldRedisCPUCores   float64 `json:"hold_redis_cpu_cores,omitempty"`
	// WatchersOn and ChangersOn say on which nodes the watching and the
	// changing connections are.
	WatchersOn string `json:"watchers_on,omitempty"`
	ChangersOn string `json:"changers_on,omitempty"`
	// Watchers watch ChangedUsers; Changes were made, Arrivals of them
	// received (Changes × Watchers when none is missing).
	Watchers     int    `json:"watchers"`
	ChangedUsers int    `json:"changed_users"`
	Changes      int    `json:"changes"`
	Arrivals     uint64 `json:"arrivals"`
	Missing      int64  `json:"missing"`
	// StoreWriteMeanMs is presenced's mean durable write (group commit
	// included) while the changes were made: a change is published once
	// its write is durable.
	StoreWriteMeanMs float64 `json:"store_write_mean_ms"`
	// StoreWriteP99Ms bounds the 99th percentile of those writes: the
	// upper bound of the histogram bucket it falls in.
	StoreWriteP99Ms float64 `json:"store_write_p99_ms"`
	// Unexpected changes arrived that were not sent (none should).
	Unexpected uint64  `json:"unexpected"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	// Per change: its first arrival at any watcher (the write and the
	// hand-out), and the spread from its first to its last arrival (the
	// fan-out to every watcher).
	FirstP50ms  float64 `json:"first_p50_ms"`
	FirstP99ms  float64 `json:"first_p99_ms"`
	SpreadP50ms float64 `json:"spread_p50_ms"`
	SpreadP99ms float64 `json:"spread_p99_ms"`
	// With several nodes: the arrivals at watchers on the changer's own
	// node, and at watchers on the other nodes (through Redis).
	LocalP50ms  float64 `json:"local_p50_ms,omitempty"`
	LocalP99ms  float64 `json:"local_p99_ms,omitempty"`
	RemoteP50ms float64 `json:"remote_p50_ms,omitempty"`
	RemoteP99ms float64 `json:"remote_p99_ms,omitempty"`
	// Garbage collections while the changes were made, in presenced and in
	// the tool (which reads the watchers' changes), with their total
	// stop-the-world pauses.
	ServerGCs       float64 `json:"server_gcs"`
	ServerGCPauseMs float64 `json:"server_gc_pause_ms"`
	ToolGCs         uint32  `json:"tool_gcs"`
	ToolGCPauseMs   float64 `json:"tool_gc_pause_ms"`
}

// benchConn is one of the tool's client connections.
type benchConn struct {
	raw  *rawConn
	user string
}

// close closes the connection at once.
func (c *benchConn) close() { _ = c.raw.Close() }

// newWatchState returns the state of a watcher on node, made while
// connecting and written through once. Made at a watcher's first change,
// 650 of them at once stalled the tool for the first few changes, which
// then took 100-270 ms to arrive in every run (a whole percent of the
// arrivals): the histograms' memory, fresh from the system, was faulted in
// page by page inside the first arrivals' Record.
func newWatchState(node int) *watchState {
	w := &watchState{node: node}
	for _, h := range []*Histogram{&w.hist, &w.local, &w.remote} {
		clear(h.counts[:])
	}
	return w
}

// watchState is what one watcher received.
type watchState struct {
	mu     sync.Mutex
	node   int // of the watching connection
	counts [changedUsers]int
	hist   Histogram
	// local and remote split hist: arrivals of changes made on the
	// watcher's own node, and on the others.
	local, remote Histogram
	unexpected    uint64
}

func runConnections(ctx context.Context, b *bench) error {
	limit, err := fdLimit()
	if err != nil {
		return err
	}
	res := &ConnectionsResult{Asked: b.cfg.usersFor("connections"), FDLimit: limit, Nodes: max(1, b.cfg.Nodes)}
	b.report.Connections = res
	n := res.Asked
	if max := (int(limit) - fdMargin) * res.Nodes; n > max {
		if b.cfg.Store == storeRedis {
			b.log.Warn("fewer connections than asked: each node holds one connection per file descriptor, and the limit is per process; add nodes", "asked", n, "held", max, "limit", limit, "nodes", res.Nodes)
		} else {
			b.log.Warn("fewer connections than asked: one presenced holds one connection per file descriptor, and the limit is per process; use --store redis --nodes 3 for 50,000", "asked", n, "held", max, "limit", limit)
		}
		n = max
	}
	if n < watchers+changedUsers {
		return fmt.Errorf("connections: %d connections are too few to watch with %d", n, watchers)
	}
	share, err := connShare(limit)
	if err != nil {
		return err
	}
	plan := planConnections(n, share)
	res.Processes = 1 + len(plan.Workers)
	profile := b.cfg.ProfileDir != ""
	nodes, nodeIDs, dataDir, err := b.connectionNodes(ctx, profile)
	if err != nil {
		return err
	}
	t := nodes[0]
	keyFile := filepath.Join(dataDir, "dev-signing-key.pem")
	issuer, err := auth.NewDevIssuer(keyFile)
	if err != nil {
		return err
	}
	wsURLs := make([]string, len(nodes))
	for i, nt := range nodes {
		wsURLs[i] = "ws" + nt.base[len("http"):] + "/presenced/connect"
	}
	// The workers mint their tokens while the tool mints its own.
	var workers []*connWorker
	defer func() {
		for _, w := range workers {
			if err := w.stop(); err != nil {
				b.log.Warn("connections worker", "err", err)
			}
		}
	}()
	for _, r := range plan.Workers {
		w, err := startConnWorker(connJob{URLs: wsURLs, KeyFile: keyFile, App: b.apps[0], Seed: b.cfg.Seed, From: r[0], To: r[1]})
		if err != nil {
			return err
		}
		workers = append(workers, w)
	}
	own := plan.Own
	users := userIDs(b.cfg.Seed, own)
	tokens, err := mintConnTokens(ctx, issuer, b.apps[0], users)
	if err != nil {
		return err
	}
	for _, w := range workers {
		if _, err := w.next(ctx, reportPrepared); err != nil {
			return err
		}
	}
	memBefore, err := nodesMemory(ctx, nodes)
	if err != nil {
		return err
	}
	res.MemoryBefore = sumMemory(memBefore)
	if m, _, err := scrapeNodes(ctx, nodes); err == nil {
		res.HeapBefore, res.StackBefore, res.GoroutinesBefore = m["go_memstats_heap_inuse_bytes"], m["go_memstats_stack_inuse_bytes"], m["go_goroutines"]
		res.HeapUnusedBefore = m["go_memstats_heap_idle_bytes"] - m["go_memstats_heap_released_bytes"]
	}
	if profile {
		res.LiveHeapBefore = liveHeap(ctx, t, "")
	}

	conns := make([]*benchConn, own)
	var dropped atomic.Int64
	var held sync.WaitGroup
	// onChange, once set, takes the change messages of the watchers.
	var onChange atomic.Pointer[func(w *watchState, user string, at time.Time)]
	var watchMu sync.Mutex
	var watchStates []*watchState
	var failed connectErrors
	var retried atomic.Int64
	b.log.Info("connecting", "connections", n, "nodes", len(nodes), "processes", res.Processes, "by_the_tool", own, "workers", connectWorkers)
	connectProfiled := make(chan struct{})
	if !profile {
		close(connectProfiled)
	}
	if profile {
		go func() {
			defer close(connectProfiled)
			if err := t.profile(ctx, filepath.Join(b.cfg.ProfileDir, "connections-connect.pprof"), 10); err != nil {
				b.log.Warn("profile", "err", err)
			}
		}()
	}
	cpuBefore, _ := nodesCPU(nodes)
	toolBefore, toolErr := toolCPU(workers)
	redisBefore := b.redisCPU()
	start := time.Now()
	for _, w := range workers {
		if err := w.command(cmdGo); err != nil {
			return err
		}
	}
	dialers := sourceDialers()
	_ = parallel(ctx, connectWorkers, own, func(i int) error {
		raw, err := rawDialRetrying(ctx, dialers[i%sourceAddrs], wsURLs[i%len(wsURLs)], tokens[i], fmt.Sprintf("bench-%d", i), &retried)
		if err != nil {
			failed.add(err)
			return nil
		}
		conns[i] = &benchConn{raw: raw, user: users[i]}
		held.Add(1)
		go func() {
			defer held.Done()
			var w *watchState
			if i < watchers {
				w = newWatchState(i % len(wsURLs))
				watchMu.Lock()
				watchStates = append(watchStates, w)
				watchMu.Unlock()
			}
			raw.hold(func(data []byte) {
				f := onChange.Load()
				if f == nil || w == nil {
					return
				}
				at := time.Now()
				var m struct{ Type, ID string }
				if json.Unmarshal(data, &m) == nil && m.Type == "change" {
					(*f)(w, m.ID, at)
				}
			})
			if ctx.Err() == nil {
				dropped.Add(1)
			}
		}()
		return nil
	})
	res.ConnectErrors, res.FirstError = failed.n, failed.first
	ownErrors := res.ConnectErrors
	for _, w := range workers {
		r, err := w.next(ctx, reportConnected)
		if err != nil {
			return err
		}
		res.ConnectErrors += r.Errors
		res.ConnectRetries += r.Retries
		if res.FirstError == "" {
			res.FirstError = r.FirstError
		}
	}
	res.ConnectSeconds = time.Since(start).Seconds()
	res.ConnectRetries += retried.Load()
	res.Held = n - res.ConnectErrors
	res.ConnectRate = float64(res.Held) / res.ConnectSeconds
	if cpuAfter, err := nodesCPU(nodes); err == nil && res.Held > 0 {
		res.ServerCPUPerConnectMs = ms(cpuAfter-cpuBefore) / float64(res.Held)
	}
	if toolAfter, err := toolCPU(workers); err == nil && toolErr == nil && res.Held > 0 {
		res.ToolCPUPerConnectMs = ms(toolAfter-toolBefore) / float64(res.Held)
		res.RedisCPUPerConnectMs = ms(b.redisCPU()-redisBefore) / float64(res.Held)
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAverage = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	b.log.Info("connected", "held", res.Held, "seconds", res.ConnectSeconds, "rate", res.ConnectRate, "errors", res.ConnectErrors, "by_the_tool", own-ownErrors)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
		held.Wait()
	}()
	if res.ConnectErrors > 0 {
		return fmt.Errorf("connections: %d of %d failed, the first: %s", res.ConnectErrors, n, res.FirstError)
	}

	holdStart := time.Now()
	if profile {
		go func() {
			// One CPU profile at a time: the connect phase's may still run.
			<-connectProfiled
			if err := t.profile(ctx, filepath.Join(b.cfg.ProfileDir, "connections-hold.pprof"), 10); err != nil {
				b.log.Warn("profile", "err", err)
			}
		}()
	}
	holdMetrics, _, _ := scrapeNodes(ctx, nodes)
	redisCPUBefore := b.redisCPU()
	cpuHold, _ := eachCPU(nodes)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(holdFor):
	}
	res.holdLoad(holdMetrics, nodes, time.Since(holdStart), redisCPUBefore, b.redisCPU())
	memAfter, err := nodesMemory(ctx, nodes)
	if err != nil {
		return err
	}
	res.MemoryAfter = sumMemory(memAfter)
	if profile {
		res.LiveHeapAfter = liveHeap(ctx, t, filepath.Join(b.cfg.ProfileDir, "connections-heap.pprof"))
	}
	var perNode []map[string]float64
	if m, each, err := scrapeNodes(ctx, nodes); err == nil {
		res.HeapAfter, res.StackAfter, res.GoroutinesAfter = m["go_memstats_heap_inuse_bytes"], m["go_memstats_stack_inuse_bytes"], m["go_goroutines"]
		res.HeapUnusedAfter = m["go_memstats_heap_idle_bytes"] - m["go_memstats_heap_released_bytes"]
		perNode = each
	}
	res.HoldSeconds = time.Since(holdStart).Seconds()
	res.Dropped = dropped.Load()
	for _, w := range workers {
		if err := w.command(cmdStatus); err != nil {
			return err
		}
		r, err := w.next(ctx, reportStatus)
		if err != nil {
			return err
		}
		res.Dropped += r.Dropped
	}
	res.BytesPerConnection = float64(res.MemoryAfter.RSS-res.MemoryBefore.RSS) / float64(res.Held)
	res.perNode(nodeIDs, memBefore, memAfter, perNode)
	res.cpuPerNode(nodes, cpuHold, res.HoldSeconds, func(r *connNodeResult, cores float64) { r.HoldCPUCores = cores })
	b.log.Info("held", "rss", mib(res.MemoryAfter.RSS), "bytes_per_connection", res.BytesPerConnection, "dropped", res.Dropped)

	// Change to arrival at 650 watchers.
	res.Watchers, res.ChangedUsers = watchers, changedUsers
	res.WatchersOn = describeSpread(spread(0, watchers, len(nodes)), nodeIDs)
	res.ChangersOn = describeSpread(spread(watchers, watchers+changedUsers, len(nodes)), nodeIDs)
	changers := conns[watchers : watchers+changedUsers]
	ids := make([]string, changedUsers)
	for i, c := range changers {
		ids[i] = c.user
	}
	// Every watcher receives every change of a user, in order: its n-th
	// change of a user is the user's n-th change sent.
	index := make(map[string]int, changedUsers)
	for i, id := range ids {
		index[id] = i
	}
	var sentMu sync.RWMutex
	sent := make([][]time.Time, changedUsers)
	// The first and last arrival of each change (user k's n-th at
	// k*maxChanges+n): the first says how long the change took to be
	// written and handed out, the spread how long the fan-out to every
	// watcher took.
	const maxChanges = 1 << 20
	var spanMu sync.Mutex
	spans := map[int][2]time.Duration{}
	f := func(w *watchState, user string, at time.Time) {
		k, ok := index[user]
		if !ok {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		n := w.counts[k]
		w.counts[k]++
		sentMu.RLock()
		var from time.Time
		if n < len(sent[k]) {
			from = sent[k][n]
		}
		sentMu.RUnlock()
		if from.IsZero() {
			w.unexpected++
			return
		}
		d := at.Sub(from)
		w.hist.Record(d)
		if (watchers+k)%len(nodes) == w.node {
			w.local.Record(d)
		} else {
			w.remote.Record(d)
		}
		spanMu.Lock()
		sp, ok := spans[k*maxChanges+n]
		if !ok || d < sp[0] {
			sp[0] = d
		}
		sp[1] = max(sp[1], d)
		spans[k*maxChanges+n] = sp
		spanMu.Unlock()
	}
	onChange.Store(&f)
	watch, _ := json.Marshal(map[string]any{"type": "watch", "ids": ids})
	for _, c := range conns[:watchers] {
		if err := c.raw.send(watch); err != nil {
			return fmt.Errorf("connections: watch: %w", err)
		}
	}
	time.Sleep(time.Second) // the snapshots
	writesBefore, eachBefore, _ := scrapeNodes(ctx, nodes)
	cpuWatch, _ := eachCPU(nodes)
	watchStart, droppedBefore := time.Now(), dropped.Load()
	stopProfiles := b.profileWatch(ctx, t)
	var gcBefore runtime.MemStats
	runtime.ReadMemStats(&gcBefore)
	states := [2][]byte{
		[]byte(`{"type":"state","availability":"Busy","activity":"InACall"}`),
		[]byte(`{"type":"state","availability":"Available","activity":"Available"}`),
	}
	tick := time.NewTicker(time.Second / changeRate)
	defer tick.Stop()
	end := time.Now().Add(changeFor)
	for i := 0; time.Now().Before(end); i++ {
		<-tick.C
		k := i % changedUsers
		round := (i / changedUsers) % 2
		sentMu.Lock()
		sent[k] = append(sent[k], time.Now())
		sentMu.Unlock()
		if err := changers[k].raw.send(states[round]); err != nil {
			return fmt.Errorf("connections: state: %w", err)
		}
		res.Changes++
	}
	time.Sleep(5 * time.Second) // the last arrivals
	onChange.Store(nil)
	stopProfiles()
	var gcAfter runtime.MemStats
	runtime.ReadMemStats(&gcAfter)
	res.ToolGCs = gcAfter.NumGC - gcBefore.NumGC
	res.ToolGCPauseMs = ms(time.Duration(gcAfter.PauseTotalNs - gcBefore.PauseTotalNs))
	res.DroppedWatching = dropped.Load() - droppedBefore
	res.countRemoteDropped(nodes, watchStart)
	res.watchPerNode(nodes, eachBefore, cpuWatch, time.Since(watchStart))
	if after, _, err := scrapeNodes(ctx, nodes); err == nil && writesBefore != nil {
		if n := after["presenced_store_write_seconds_count"] - writesBefore["presenced_store_write_seconds_count"]; n > 0 {
			res.StoreWriteMeanMs = 1000 * (after["presenced_store_write_seconds_sum"] - writesBefore["presenced_store_write_seconds_sum"]) / n
		}
		res.StoreWriteP99Ms = bucketQuantile(writesBefore, after, "presenced_store_write_seconds", 0.99) * 1000
		res.ServerGCs = after["go_gc_duration_seconds_count"] - writesBefore["go_gc_duration_seconds_count"]
		res.ServerGCPauseMs = 1000 * (after["go_gc_duration_seconds_sum"] - writesBefore["go_gc_duration_seconds_sum"])
	}
	var hist, local, remote Histogram
	watchMu.Lock()
	for _, w := range watchStates {
		w.mu.Lock()
		hist.Merge(&w.hist)
		local.Merge(&w.local)
		remote.Merge(&w.remote)
		res.Unexpected += w.unexpected
		res.PerNode[w.node].Arrivals += w.hist.Count()
		w.mu.Unlock()
	}
	watchMu.Unlock()
	res.Arrivals = hist.Count()
	res.Missing = int64(res.Changes*watchers) - int64(res.Arrivals)
	res.P50ms = ms(hist.Quantile(0.50))
	res.P99ms = ms(hist.Quantile(0.99))
	res.MaxMs = ms(hist.Max())
	if len(nodes) > 1 {
		res.LocalP50ms, res.LocalP99ms = ms(local.Quantile(0.50)), ms(local.Quantile(0.99))
		res.RemoteP50ms, res.RemoteP99ms = ms(remote.Quantile(0.50)), ms(remote.Quantile(0.99))
	}
	var first, spread Histogram
	spanMu.Lock()
	for _, sp := range spans {
		first.Record(sp[0])
		spread.Record(sp[1] - sp[0])
	}
	spanMu.Unlock()
	res.FirstP50ms, res.FirstP99ms = ms(first.Quantile(0.50)), ms(first.Quantile(0.99))
	res.SpreadP50ms, res.SpreadP99ms = ms(spread.Quantile(0.50)), ms(spread.Quantile(0.99))
	b.log.Info("watched", "changes", res.Changes, "arrivals", res.Arrivals, "p99_ms", res.P99ms)
	return nil
}

// errHelloUnavailable is a hello answered serviceNotAvailable: presenced
// could not write the session (its store timed out), and says to retry.
var errHelloUnavailable = errors.New("presenced unavailable")

// Retries of a connection whose hello was answered serviceNotAvailable.
const (
	helloRetries    = 3
	helloRetryAfter = time.Second
)

// connectErrors counts the connects that failed and keeps the first error.
type connectErrors struct {
	mu    sync.Mutex
	n     int
	first string
}

func (e *connectErrors) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if e.first == "" {
		e.first = err.Error()
	}
}

// parallel runs fn(0..n-1) on workers goroutines; it returns the first
// error, after which no new call starts.
func parallel(ctx context.Context, workers, n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					once.Do(func() { first = err })
					next.Store(int64(n))
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// writeConnections prints the connections scenario's figures.
func writeConnections(w io.Writer, c *ConnectionsResult) {
	if c == nil || c.Held == 0 {
		return
	}
	nodes := max(1, c.Nodes)
	fmt.Fprintf(w, "\nconnections: %d held of %d asked (file-descriptor limit %d per process), from %d loopback source addresses, to %d presenced node(s), dialed and held by %d process(es) of the tool\n",
		c.Held, c.Asked, c.FDLimit, sourceAddrs, nodes, max(1, c.Processes))
	if limited := (int(c.FDLimit) - fdMargin) * nodes; c.Asked > limited && limited > 0 {
		hint := "use --store redis --nodes 3 for 50,000 (each node then holds its share), or raise the hard limit"
		if c.Nodes > 1 {
			hint = "add nodes, or raise the hard limit"
		}
		fmt.Fprintf(w, "  NOT the %d asked: the file-descriptor limit (ulimit -Hn) is %d, so at most %d connections per presenced (one descriptor each, %d kept for everything else) on %d node(s); %s\n",
			c.Asked, c.FDLimit, int(c.FDLimit)-fdMargin, fdMargin, nodes, hint)
	}
	fmt.Fprintf(w, "  connect rate: %.0f connections/s (%d in %.2f s, %d errors, %d hellos retried after serviceNotAvailable); presenced CPU %.2f ms per connection; load average %s\n",
		c.ConnectRate, c.Held, c.ConnectSeconds, c.ConnectErrors, c.ConnectRetries, c.ServerCPUPerConnectMs, c.LoadAverage)
	if c.ToolCPUPerConnectMs > 0 {
		redis := ""
		if c.Nodes > 1 || c.RedisCPUPerConnectMs > 0 {
			redis = fmt.Sprintf(", redis-server %.2f ms", c.RedisCPUPerConnectMs)
		}
		fmt.Fprintf(w, "  CPU per connection while connecting: presenced %.2f ms%s, the tool's processes %.2f ms: %.2f ms in all, at most %.0f connections/s on this machine's %d cores\n",
			c.ServerCPUPerConnectMs, redis, c.ToolCPUPerConnectMs, c.allCPUPerConnectMs(), 1000*float64(runtime.NumCPU())/c.allCPUPerConnectMs(), runtime.NumCPU())
	}
	fmt.Fprintf(w, "  presenced resident memory: %s before, %s after holding them %.0f s idle with heartbeats: %.0f bytes (%.1f KiB) per connection; %d dropped\n",
		mib(c.MemoryBefore.RSS), mib(c.MemoryAfter.RSS), c.HoldSeconds, c.BytesPerConnection, c.BytesPerConnection/1024, c.Dropped)
	if len(c.PerNode) > 1 {
		for _, n := range c.PerNode {
			fmt.Fprintf(w, "    node %s: %.0f connections, %s before, %s after: %.0f bytes (%.1f KiB) per connection; CPU %.2f cores while held\n",
				n.ID, n.Connections, mib(n.MemoryBefore.RSS), mib(n.MemoryAfter.RSS), n.BytesPerConnection, n.BytesPerConnection/1024, n.HoldCPUCores)
		}
	}
	if len(c.RedisErrors) > 0 {
		fmt.Fprintf(w, "  the nodes' failed Redis calls until then: %v; partition leases taken: %.0f\n", c.RedisErrors, c.LeaseTakeovers)
	}
	if c.HoldWritesPerSecond > 0 || c.HoldRedisCPUCores > 0 {
		fmt.Fprintf(w, "  while held: %.0f durable state writes/s (session lease renewals) over the node(s), mean %.2f ms", c.HoldWritesPerSecond, c.HoldWriteMeanMs)
		if c.HoldRedisCPUCores > 0 {
			fmt.Fprintf(w, "; redis-server %.2f cores", c.HoldRedisCPUCores)
		}
		fmt.Fprintln(w)
	}
	if c.GoroutinesAfter > 0 {
		per := func(after, before float64) float64 { return (after - before) / float64(c.Held) }
		fmt.Fprintf(w, "  of which, per connection: Go heap %.0f bytes, goroutine stacks %.0f bytes, heap held unused (not yet returned to the system) %.0f bytes, %.2f goroutines\n",
			per(c.HeapAfter, c.HeapBefore), per(c.StackAfter, c.StackBefore), per(c.HeapUnusedAfter, c.HeapUnusedBefore), per(c.GoroutinesAfter, c.GoroutinesBefore))
		if c.LiveHeapAfter > 0 && len(c.PerNode) > 1 && c.PerNode[0].Connections > 0 {
			// Only the first node serves pprof.
			fmt.Fprintf(w, "  live Go heap of node %s right after a forced GC: %.0f bytes per connection (the rest of the heap above is garbage of the connect burst and GC headroom)\n",
				c.PerNode[0].ID, (c.LiveHeapAfter-c.LiveHeapBefore)/c.PerNode[0].Connections)
		} else if c.LiveHeapAfter > 0 {
			fmt.Fprintf(w, "  live Go heap right after a forced GC: %.0f bytes per connection (the rest of the heap above is garbage of the connect burst and GC headroom)\n",
				per(c.LiveHeapAfter, c.LiveHeapBefore))
		}
	}
	if c.Changes > 0 {
		fmt.Fprintf(w, "  change to arrival at %d watchers of %d users: %d changes, %d arrivals (%d missing, %d unexpected): p50 %.2f ms, p99 %.2f ms, max %.1f ms; presenced's durable writes meanwhile: mean %.1f ms, p99 <= %g ms\n",
			c.Watchers, c.ChangedUsers, c.Changes, c.Arrivals, c.Missing, c.Unexpected, c.P50ms, c.P99ms, c.MaxMs, c.StoreWriteMeanMs, c.StoreWriteP99Ms)
		fmt.Fprintf(w, "  per change: first arrival p50 %.2f ms, p99 %.2f ms (the write and the hand-out); first to last arrival p50 %.2f ms, p99 %.2f ms (the fan-out)\n",
			c.FirstP50ms, c.FirstP99ms, c.SpreadP50ms, c.SpreadP99ms)
		fmt.Fprintf(w, "  garbage collections meanwhile: presenced %.0f (pauses %.1f ms in all), the tool %d (pauses %.1f ms)\n",
			c.ServerGCs, c.ServerGCPauseMs, c.ToolGCs, c.ToolGCPauseMs)
		if nodes > 1 {
			fmt.Fprintf(w, "    watchers %s; changers %s: most changes reach their watchers through Redis\n", c.WatchersOn, c.ChangersOn)
			fmt.Fprintf(w, "    arrivals at watchers on the changer's node p50 %.2f ms, p99 %.2f ms; on the other nodes (through Redis) p50 %.2f ms, p99 %.2f ms\n",
				c.LocalP50ms, c.LocalP99ms, c.RemoteP50ms, c.RemoteP99ms)
			for _, n := range c.PerNode {
				fmt.Fprintf(w, "    node %s: %d watchers received %d changes (%.0f change messages sent, %.0f slow watchers dropped); CPU %.2f cores meanwhile\n",
					n.ID, n.Watchers, n.Arrivals, n.ChangesSent, n.SlowConsumers, n.WatchCPUCores)
				if n.RemoteDropped > 0 {
					fmt.Fprintf(w, "      node %s dropped at least %d changes made on other nodes from its relay queue (its log's last 16 KiB; the last %.1f s before the changes began): they came faster than it relayed them to its watchers\n", n.ID, n.RemoteDropped, n.RemoteDroppedLast)
				}
			}
		}
		if c.DroppedWatching > 0 {
			fmt.Fprintf(w, "    %d of the watching and changing connections ended meanwhile\n", c.DroppedWatching)
		}
	}
}

// liveHeap has the server collect its garbage (its heap profile, saved to
// file unless that is "", is taken after a GC) and returns its allocated
// heap bytes then, 0 when either fails.
func liveHeap(ctx context.Context, t *target, file string) float64 {
	if file == "" {
		file = os.DevNull
	}
	if err := fetchHeapProfile(ctx, t, file); err != nil {
		return 0
	}
	m, err := scrape(ctx, t.client, t.base)
	if err != nil {
		return 0
	}
	return m["go_memstats_heap_alloc_bytes"]
}

// fetchHeapProfile saves the server's heap profile, taken right after a
// GC, to file.
func fetchHeapProfile(ctx context.Context, t *target, file string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+t.pprofAddr+"/debug/pprof/heap?gc=1", nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, data, 0o644)
}

// profileWatch, with --cpuprofile, profiles the watch phase: presenced
// (connections-watch.pprof) and the tool itself (connections-watch-tool.pprof),
// whose reading of 650 watchers' changes shares the machine with presenced.
// The returned func stops the tool's profile.
func (b *bench) profileWatch(ctx context.Context, t *target) (stop func()) {
	if b.cfg.ProfileDir == "" {
		return func() {}
	}
	go func() {
		if err := t.profile(ctx, filepath.Join(b.cfg.ProfileDir, "connections-watch.pprof"), 10); err != nil {
			b.log.Warn("profile", "err", err)
		}
	}()
	f, err := os.Create(filepath.Join(b.cfg.ProfileDir, "connections-watch-tool.pprof"))
	if err != nil {
		b.log.Warn("profile", "err", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.log.Warn("profile", "err", err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.log.Warn("profile", "err", err)
		}
	}
}

// bucketQuantile returns the upper bound of the bucket of histogram name
// in which its q-quantile fell between two scrapes (+Inf as 0 when past
// the last bound).
func bucketQuantile(before, after map[string]float64, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, v := range after {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(k[len(prefix):], `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v - before[k]})
	}
	slices.SortFunc(bs, func(a, b bucket) int { return cmp.Compare(a.le, b.le) })
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return 0
	}
	total := bs[len(bs)-1].n
	for _, b := range bs {
		if b.n >= q*total {
			if math.IsInf(b.le, 1) {
				return 0
			}
			return b.le
		}
	}
	return 0
}
