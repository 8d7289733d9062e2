package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/presenced/presenced/internal/redisprobe"
)

// --store values.
const (
	storeFile  = "file"
	storeRedis = "redis"
)

// maxNodes bounds --nodes.
const maxNodes = 8

// targetRedisBaseline names the Redis baseline in the report: the tool
// itself doing, with the same client library, the Redis work presenced
// does per operation, without HTTP.
const targetRedisBaseline = "redis-baseline"

// redisInstallHint says how to get redis-server.
const redisInstallHint = "install it with: apt-get install redis-server (Redis >= 7.0 or Valkey >= 7.2)"

// errNoRedis reports that redis-server is not installed.
var errNoRedis = errors.New("redis-server not found")

// findRedisServer returns the path of redis-server, or an error matching
// errNoRedis that says how to install it.
func findRedisServer() (string, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return "", fmt.Errorf("--store redis: %w on PATH (%v); %s", errNoRedis, err, redisInstallHint)
	}
	return bin, nil
}

// redisStartWithin bounds how long redis-server may take to answer PING.
const redisStartWithin = 30 * time.Second

// redisServer is a redis-server the tool started.
type redisServer struct {
	proc   *process
	socket string
	dir    string
}

// URL is the server's address for presenced's --redis-url.
func (r *redisServer) URL() string { return "unix://" + r.socket }

// startRedis starts bin as a standalone redis-server listening only on a
// Unix socket in dir, with the settings presenced's durability promise
// needs (appendonly yes, appendfsync always, no RDB snapshots, noeviction),
// and waits until it answers PING. The caller stops it with proc.stop.
func startRedis(ctx context.Context, bin, dir string) (*redisServer, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	socket := filepath.Join(dir, "r.sock")
	if len(socket) > 100 {
		return nil, fmt.Errorf("start redis-server: socket path %s is too long for a Unix socket", socket)
	}
	args := append([]string{"--port", "0", "--unixsocket", socket, "--unixsocketperm", "700"},
		redisprobe.DurableArgs(dir, "")...)
	p := &process{name: "redis-server", out: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	dieWithParent(p.cmd)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start redis-server: %w", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	p.addr = socket
	r := &redisServer{proc: p, socket: socket, dir: dir}
	deadline := time.Now().Add(redisStartWithin)
	for {
		reply, err := redisDo(socket, "PING")
		if err == nil && reply == "PONG" {
			return r, nil
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("redis-server exited at start (%v):\n%s", p.err, p.out.String())
		case <-ctx.Done():
			_ = p.stop(stopWithin)
			return nil, fmt.Errorf("start redis-server: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = p.stop(stopWithin)
			return nil, fmt.Errorf("redis-server does not answer PING within %v (last: %q, %v):\n%s", redisStartWithin, reply, err, p.out.String())
		}
	}
}

// redisDo sends one command to the server at the Unix socket.
func redisDo(socket string, args ...string) (string, error) {
	return redisprobe.Do("unix", socket, args...)
}

// multiTarget is several presenced nodes on one redis-server.
type multiTarget struct {
	bases []string
	nodes []*process
	redis *redisServer
	next  atomic.Uint64
}

// nextBase returns the base URL of the next request: with several nodes,
// each in turn.
func (t *target) nextBase() string {
	if t.multi == nil || len(t.multi.bases) == 0 {
		return t.base
	}
	n := t.multi.next.Add(1) - 1
	return t.multi.bases[n%uint64(len(t.multi.bases))]
}

// snapshotRedis reads, with --store redis, the CPU time of every node and
// of redis-server, and the Redis calls the nodes made; for the Redis
// baseline, the tool's own CPU is the server's.
func (t *target) snapshotRedis(ctx context.Context, s *snapshot) {
	var r *redisServer
	switch {
	case t.direct != nil:
		r = t.direct.redis
		s.serverCPU, s.hasServer = s.clientCPU, true
		s.clientCPU = 0
	case t.multi != nil:
		r = t.multi.redis
		var sum time.Duration
		ok := true
		for _, p := range t.multi.nodes {
			cpu, err := processCPU(p.pid())
			if err != nil {
				ok = false
				break
			}
			sum += cpu
		}
		s.serverCPU, s.hasServer = sum, ok
		var calls float64
		okCalls := true
		for _, base := range t.multi.bases {
			m, err := scrape(ctx, t.client, base)
			if err != nil {
				okCalls = false
				break
			}
			for k, v := range m {
				if strings.HasPrefix(k, "presenced_redis_roundtrip_seconds_count") {
					calls += v
				}
			}
		}
		s.redisCalls, s.hasCalls = calls, okCalls
	}
	if r != nil {
		if cpu, err := processCPU(r.proc.pid()); err == nil {
			s.redisCPU, s.hasRedis = cpu, true
		}
	}
}

// redisServerFor returns the redis-server of this run, starting it the
// first time.
func (b *bench) redisServerFor(ctx context.Context) (*redisServer, error) {
	if b.redis != nil {
		return b.redis, nil
	}
	bin, err := findRedisServer()
	if err != nil {
		return nil, err
	}
	// A short directory of its own: a socket path must fit in 108 bytes.
	r, err := startRedis(ctx, bin, filepath.Join(b.tmp, "redis"))
	if err != nil {
		return nil, err
	}
	b.procs = append(b.procs, r.proc)
	b.log.Info("redis-server ready", "socket", r.socket, "pid", r.proc.pid())
	b.redis = r
	return r, nil
}

// spawnRedisNodes starts the redis-server of the run (once) and --nodes
// presenced nodes on it (--store redis, node ids n1, n2, …, data dirs
// named after prefix), each its own target; with profileFirst the first
// node serves pprof. The nodes share their development key through Redis,
// so the key file in dataDir, the first node's, signs tokens every node
// accepts.
func (b *bench) spawnRedisNodes(ctx context.Context, prefix string, profileFirst bool) (m *multiTarget, nodes []*target, dataDir string, err error) {
	r, err := b.redisServerFor(ctx)
	if err != nil {
		return nil, nil, "", err
	}
	m = &multiTarget{redis: r}
	for i := range b.cfg.Nodes {
		id := "n" + strconv.Itoa(i+1)
		t, dir, err := b.spawn(ctx, prefix+"-"+id, i == 0 && profileFirst,
			"--store", storeRedis, "--redis-url", r.URL(), "--node-id", id)
		if err != nil {
			return nil, nil, "", fmt.Errorf("node %s: %w", id, err)
		}
		m.bases = append(m.bases, t.base)
		m.nodes = append(m.nodes, t.proc)
		nodes = append(nodes, t)
		if i == 0 {
			dataDir = dir
		}
	}
	return m, nodes, dataDir, nil
}

// redisLoadTarget starts a redis-server and --nodes presenced nodes on it
// (--store redis, node ids n1, n2, …), gives every user a session through
// the first node, and returns the nodes as one target whose requests go
// round-robin over them. With --cpuprofile, the first node is profiled.
func (b *bench) redisLoadTarget(ctx context.Context) (*target, *workload, error) {
	m, nodes, dataDir, err := b.spawnRedisNodes(ctx, "load", b.cfg.ProfileDir != "")
	if err != nil {
		return nil, nil, err
	}
	first := nodes[0]
	// One target for them all: the client of the first node, which every
	// base shares (its pool holds conns connections per host).
	t := &target{name: targetPresenced, base: first.base, client: newClient(b.cfg.maxConns() * len(m.bases)),
		pprofAddr: first.pprofAddr, multi: m}
	wl, err := b.workload(ctx, dataDir, b.cfg.usersFor("set"), loadExpiry)
	if err != nil {
		return nil, nil, err
	}
	b.log.Info("populating", "users", len(wl.users), "nodes", len(m.bases))
	pop, err := populate(ctx, t, wl, populateOptions{conns: b.cfg.Connections, pair: -1, log: b.log})
	if err != nil {
		return nil, nil, err
	}
	b.report.Populate = &pop
	b.load, b.loadWL = t, wl
	return t, wl, nil
}

// redisBaselineTarget returns the Redis baseline, preparing it the first
// time: it runs after the nodes were populated, and copies their users.
func (b *bench) redisBaselineTarget(ctx context.Context) (*target, error) {
	if b.baseline != nil {
		// Copy presenced's users again: the previous scenario's writes
		// changed them (more sessions, longer values).
		d := b.baseline.direct
		if err := d.copyUsers(ctx); err != nil {
			return nil, err
		}
		b.log.Info("redis baseline: users copied again", "users", len(d.keys), "mean_value_bytes", d.meanValue)
		return b.baseline, nil
	}
	r, err := b.redisServerFor(ctx)
	if err != nil {
		return nil, err
	}
	d, err := newRedisBaseline(ctx, r, b.cfg.Seed)
	if err != nil {
		return nil, err
	}
	b.closers = append(b.closers, d.close)
	b.log.Info("redis baseline ready", "users", len(d.keys), "mean_value_bytes", d.meanValue)
	b.baseline = &target{name: targetRedisBaseline, direct: d}
	return b.baseline, nil
}

// validateStore checks --store and --nodes: Redis is for the load
// scenarios of a spawned presenced, and needs 650 users (its baseline
// copies them and reads 650 at once).
func (c Config) validateStore() error {
	switch c.Store {
	case storeFile:
		if c.Nodes != 1 {
			return errors.New("--nodes needs --store redis: nodes share a store through Redis")
		}
		return nil
	case storeRedis:
	default:
		return fmt.Errorf("--store: want file or redis, got %q", c.Store)
	}
	if c.Nodes < 1 || c.Nodes > maxNodes {
		return fmt.Errorf("--nodes: want 1 to %d, got %d", maxNodes, c.Nodes)
	}
	if !c.Spawn() {
		return errors.New("--store redis starts its own redis-server and presenced nodes: it needs --spawn, not --url")
	}
	if slices.Contains(c.Scenarios, "connections") {
		// Its nodes are its own: the load scenarios' would share their
		// node ids and Redis.
		if len(c.Scenarios) > 1 {
			return errors.New("--store redis: the connections scenario runs alone (--scenario connections)")
		}
		return nil
	}
	for _, s := range c.Scenarios {
		switch s {
		case "set", "get", "bulk", "mix":
		default:
			return fmt.Errorf("--store redis runs the load scenarios set, get, bulk and mix, or connections alone, not %s", s)
		}
	}
	if c.usersFor("set") < bulkIDs {
		return fmt.Errorf("--users: --store redis needs at least %d users (its baseline reads %d at once)", bulkIDs, bulkIDs)
	}
	return nil
}

// writeRedisRun prints, under the table, what --store redis measured of a
// run: redis-server's CPU and the nodes' Redis calls.
func writeRedisRun(w io.Writer, run RunResult) {
	if run.RedisCPUCores == 0 && run.RedisCallsPerReq == 0 {
		return
	}
	who := run.Target
	if run.Nodes > 0 {
		who = fmt.Sprintf("%s (%d node(s))", run.Target, run.Nodes)
	}
	fmt.Fprintf(w, "redis-server during %s/%s: %.2f cores, %.1f µs/req", run.Scenario, who, run.RedisCPUCores, run.RedisCPUusPerReq)
	if run.RedisCallsPerReq > 0 {
		fmt.Fprintf(w, "; Redis calls by the nodes: %.2f per request", run.RedisCallsPerReq)
	}
	fmt.Fprintln(w)
}
