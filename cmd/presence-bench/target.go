package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// Target names in the report.
const (
	targetPresenced = "presenced"
	targetBaseline  = "baseline"
)

// target is a server under load.
type target struct {
	name   string
	base   string // http://127.0.0.1:port
	client *http.Client
	// proc is the server's process when the tool started it; nil for --url.
	proc *process
	// pprofAddr serves the server's profiles, when the tool asked for them.
	pprofAddr string
	// metrics says the server exports presenced's /metrics.
	metrics bool
	// multi, when not nil, is the nodes of a several-node presenced on
	// Redis (--store redis): requests go round-robin over their bases, and
	// their CPU and redis-server's are measured (redis.go).
	multi *multiTarget
	// direct, when not nil, makes this target the Redis baseline: the tool
	// itself doing presenced's Redis work per operation, without HTTP.
	direct *redisBaseline
}

// newClient returns a client tuned for conns concurrent requests to one
// host: keep-alive, as many idle connections kept as there are workers, no
// HTTP/2 and no compression, and a generous per-request timeout.
func newClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0, // no global limit
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       conns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// snapshot is the counters read at one edge of a measured window.
type snapshot struct {
	clientCPU      time.Duration
	serverCPU      time.Duration
	hasServer      bool
	machineCPU     time.Duration
	hasMachine     bool
	records, syncs float64
	commitSeconds  float64
	syncSeconds    float64
	hasStore       bool
	// redisCPU is redis-server's CPU time, and redisCalls the Redis calls
	// the nodes made (presenced_redis_roundtrip_seconds_count), with
	// --store redis.
	redisCPU   time.Duration
	hasRedis   bool
	redisCalls float64
	hasCalls   bool
}

// snapshot reads the CPU time of this process and of the target's, and
// presenced's group-commit counters. What cannot be read is left out.
func (t *target) snapshot(ctx context.Context) snapshot {
	var s snapshot
	s.clientCPU = selfCPU()
	if cpu, err := machineCPU(); err == nil {
		s.machineCPU, s.hasMachine = cpu, true
	}
	if t.proc != nil {
		if cpu, err := processCPU(t.proc.pid()); err == nil {
			s.serverCPU, s.hasServer = cpu, true
		}
	}
	if t.multi != nil || t.direct != nil {
		t.snapshotRedis(ctx, &s)
	}
	if t.metrics {
		if m, err := scrape(ctx, t.client, t.base); err == nil {
			rec, ok1 := m["presenced_store_records_total"]
			syn, ok2 := m["presenced_store_syncs_total"]
			s.records, s.syncs, s.hasStore = rec, syn, ok1 && ok2
			s.commitSeconds = m["presenced_store_commit_seconds_total"]
			s.syncSeconds = m["presenced_store_sync_seconds_total"]
		}
	}
	return s
}

// profile saves a CPU profile of secs seconds of the target into file.
func (t *target) profile(ctx context.Context, file string, secs int) error {
	if t.pprofAddr == "" {
		return fmt.Errorf("profile %s: the target serves no pprof", t.name)
	}
	url := "http://" + t.pprofAddr + "/debug/pprof/profile?seconds=" + strconv.Itoa(secs)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	res, err := (&http.Client{Timeout: time.Duration(secs+60) * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s answered %s", url, res.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile: write %s: %w", file, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("profile: write %s: %w", file, err)
	}
	return nil
}
