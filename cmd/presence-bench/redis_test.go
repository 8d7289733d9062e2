package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/redistest"
)

func TestParseConfigRedis(t *testing.T) {
	c, err := parseConfig([]string{"--store", "redis", "--nodes", "3", "--scenario", "set,get,bulk"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != storeRedis || c.Nodes != 3 || !slices.Equal(c.Scenarios, []string{"set", "get", "bulk"}) {
		t.Errorf("redis: %+v", c)
	}
	// The smoke run stays on the file store: CI needs no Redis for it.
	c, err = parseConfig([]string{"--smoke"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store != storeFile || c.Nodes != 1 {
		t.Errorf("smoke: store %q, %d nodes", c.Store, c.Nodes)
	}
	for _, bad := range [][]string{
		{"--nodes", "3"},
		{"--store", "memory"},
		{"--store", "redis", "--nodes", "0"},
		{"--store", "redis", "--nodes", "9"},
		{"--store", "redis", "--url", "http://127.0.0.1:8080", "--data", "d"},
		{"--store", "redis", "--scenario", "scale"},
		{"--store", "redis", "--scenario", "webhook"},
		{"--store", "redis", "--scenario", "set", "--users", "100"},
	} {
		if _, err := parseConfig(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Without redis-server on PATH the tool says how to install it.
func TestFindRedisServerMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findRedisServer()
	if !errors.Is(err, errNoRedis) || !strings.Contains(err.Error(), "apt-get install redis-server") {
		t.Fatalf("err = %v", err)
	}
}

func TestNextBaseRoundRobin(t *testing.T) {
	one := &target{base: "http://a"}
	for range 2 {
		if got := one.nextBase(); got != "http://a" {
			t.Errorf("one node: %q", got)
		}
	}
	three := &target{base: "http://a", multi: &multiTarget{bases: []string{"http://a", "http://b", "http://c"}}}
	var got []string
	for range 6 {
		got = append(got, three.nextBase())
	}
	if want := []string{"http://a", "http://b", "http://c", "http://a", "http://b", "http://c"}; !slices.Equal(got, want) {
		t.Errorf("got %v", got)
	}
}

func TestHashTag(t *testing.T) {
	for k, want := range map[string]string{"pd:{ab}:u:x}y": "ab", "pd:{}:u:": "", "bl:{q{}:due": "q{"} {
		if got, ok := hashTag(k); !ok || got != want {
			t.Errorf("hashTag(%q) = %q, %v", k, got, ok)
		}
	}
	for _, k := range []string{"pd:u:x", "pd:{ab"} {
		if _, ok := hashTag(k); ok {
			t.Errorf("hashTag(%q) found a tag", k)
		}
	}
}

// startTestRedis starts the tool's redis-server, skipping the test (or
// failing it with PRESENCED_REQUIRE_REDIS=1) when redis-server is missing.
func startTestRedis(t *testing.T) *redisServer {
	t.Helper()
	bin, _ := redistest.Binaries(t)
	dir, err := os.MkdirTemp("", "pbredis")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := startRedis(ctx, bin, filepath.Join(dir, "redis"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.proc.stop(time.Minute); err != nil {
			t.Errorf("stop redis-server: %v", err)
		}
	})
	return r
}

// The tool's redis-server keeps presenced's durability promise and stops
// cleanly.
func TestStartRedis(t *testing.T) {
	r := startTestRedis(t)
	if !strings.HasPrefix(r.URL(), "unix:///") {
		t.Errorf("URL %q", r.URL())
	}
	for name, want := range map[string]string{"appendonly": "yes", "appendfsync": "always", "maxmemory-policy": "noeviction"} {
		got, err := redisDo(r.socket, "CONFIG", "GET", name)
		if err != nil || got != name+"\n"+want {
			t.Errorf("CONFIG GET %s = %q, %v; want %s", name, got, err, want)
		}
	}
	if _, err := processCPU(r.proc.pid()); err != nil {
		t.Errorf("CPU of redis-server: %v", err)
	}
}

// The Redis baseline copies presenced's user keys and does each
// operation's Redis work: reads, and compare-and-set writes that raise the
// revision and keep the value's size.
func TestRedisBaseline(t *testing.T) {
	r := startTestRedis(t)
	const users = bulkIDs + 50
	val := func(rev uint64) string {
		return string(binary.BigEndian.AppendUint64(nil, rev)) + strings.Repeat("s", 60)
	}
	for i := range users {
		k := "pd:{t" + strconv.Itoa(i%7) + "}:u:m" + strconv.Itoa(i)
		if _, err := redisDo(r.socket, "SET", k, val(5)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	d, err := newRedisBaseline(ctx, r, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if len(d.keys) != users || d.meanValue != len(val(5)) {
		t.Fatalf("copied %d users of mean %d bytes", len(d.keys), d.meanValue)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, op := range []string{opGet, opBulk, opSet, opPreferred} {
		for range 20 {
			if err := d.do(ctx, op, rng); err != nil {
				t.Fatalf("%s: %v", op, err)
			}
		}
	}
	var writes uint64
	for _, k := range d.keys {
		v, err := redisDo(r.socket, "GET", k)
		if err != nil || len(v) != len(val(5)) {
			t.Fatalf("GET %s = %d bytes, %v", k, len(v), err)
		}
		writes += binary.BigEndian.Uint64([]byte(v[:8])) - 5
		orig, _ := redisDo(r.socket, "GET", "pd:"+strings.TrimPrefix(k, baselinePrefix))
		if orig != val(5) {
			t.Fatalf("presenced's key of %s changed", k)
		}
	}
	if writes != 40 {
		t.Errorf("revisions rose by %d in all, want 40", writes)
	}
	if n, err := redisDo(r.socket, "ZCARD", d.due[0]); err != nil || n == "0" {
		t.Errorf("ZCARD %s = %s, %v", d.due[0], n, err)
	}
	if err := d.do(ctx, "nope", rng); err == nil {
		t.Error("unknown operation accepted")
	}
	// Copying again starts over from presenced's keys as they are.
	if err := d.copyUsers(ctx); err != nil || len(d.keys) != users || len(d.due) != users || len(d.channel) != users {
		t.Errorf("copy again: %d keys, %v", len(d.keys), err)
	}
}

// A whole short run with --store redis and two nodes: every load run has
// its Redis baseline and ratio, redis-server's CPU is measured, and the
// nodes' Redis calls per setPresence are at least the GET and the
// compare-and-set. It builds presenced, so it is skipped with -short.
func TestRunRedisNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds presenced and runs load; not with -short")
	}
	startTestRedis(t) // skips, or fails with PRESENCED_REQUIRE_REDIS=1, without redis-server
	rep, out := runReport(t, []string{"presence-bench", "--store", "redis", "--nodes", "2", "--scenario", "set,get", "--duration", "500ms",
		"--warmup", "100ms", "--users", "700", "--connections", "4", "--max-other-cpu", "-1"})
	for _, sc := range []string{"set", "get"} {
		p, base := rep.run(sc, targetPresenced), rep.run(sc, targetRedisBaseline)
		if p == nil || base == nil {
			t.Fatalf("%s: runs %+v", sc, rep.Runs)
		}
		if p.Nodes != 2 || p.RPS <= 0 || p.Ops[0].VsBaseline <= 0 || p.RedisCPUCores <= 0 || p.ServerCPUCores <= 0 {
			t.Errorf("%s/presenced: %+v", sc, p)
		}
		if base.RPS <= 0 || base.ServerCPUCores <= 0 || base.RedisCPUCores <= 0 {
			t.Errorf("%s/redis-baseline: %+v", sc, base)
		}
	}
	if set := rep.run("set", targetPresenced); set != nil && set.RedisCallsPerReq < 2 {
		t.Errorf("setPresence made %.2f Redis calls per request, want at least 2 (GET and the compare-and-set)", set.RedisCallsPerReq)
	}
	if !strings.Contains(out.String(), "redis-server during set/presenced (2 node(s))") {
		t.Errorf("table:\n%s", out.String())
	}
}
