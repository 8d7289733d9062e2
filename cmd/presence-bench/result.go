package main

import "time"

// OpResult is one operation's figures in one run. Latencies are of
// successful requests, in milliseconds.
type OpResult struct {
	Op         string  `json:"op"`
	Requests   uint64  `json:"requests"`
	Errors     uint64  `json:"errors"`
	RPS        float64 `json:"rps"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	P999ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	FirstError string  `json:"first_error,omitempty"`
	// VsBaseline is RPS over the baseline server's RPS for the same
	// operation in the same scenario (with several rounds, the median of
	// the rounds' ratios); 0 when there is none.
	VsBaseline float64 `json:"vs_baseline,omitempty"`
}

// RunResult is one load run: a scenario against one target.
type RunResult struct {
	Scenario    string     `json:"scenario"`
	Target      string     `json:"target"`
	Connections int        `json:"connections"`
	Seconds     float64    `json:"seconds"`
	Ops         []OpResult `json:"ops"`
	// Requests, Errors and RPS add up the operations.
	Requests uint64  `json:"requests"`
	Errors   uint64  `json:"errors"`
	RPS      float64 `json:"rps"`
	// CPU used during the measured window, in cores (CPU seconds per
	// second), by the server (when its process id is known) and by this
	// tool, the client; and the server's CPU time per request.
	ServerCPUCores    float64 `json:"server_cpu_cores,omitempty"`
	ClientCPUCores    float64 `json:"client_cpu_cores"`
	ServerCPUusPerReq float64 `json:"server_cpu_us_per_request,omitempty"`
	// OtherCPUCores is what the rest of the machine used meanwhile (the
	// server included when its process is not the tool's): other processes
	// competing for the same cores make a run noisy.
	OtherCPUCores float64 `json:"other_cpu_cores"`
	// RoundsRPS are the throughputs of every round, in the order run, when
	// --rounds > 1, and RoundsNoisy which of them were noisy; the run
	// reported is the median of the quiet ones.
	RoundsRPS   []float64 `json:"rounds_rps,omitempty"`
	RoundsNoisy []bool    `json:"rounds_noisy,omitempty"`
	// RoundsP99ms are the p99 latencies of every round of a
	// single-operation run, in the order run, when --rounds > 1.
	RoundsP99ms []float64 `json:"rounds_p99_ms,omitempty"`
	// RoundsRatio are the ratios to the baseline, round by round, of a
	// single-operation presenced run; VsBaseline is then their median.
	RoundsRatio []float64 `json:"rounds_ratio,omitempty"`
	// P99Ratio is the p99 latency over the baseline's of a single-operation
	// presenced run (with several rounds, the median of the rounds'
	// ratios), and RoundsP99Ratio those of each round; 0 without baseline.
	P99Ratio       float64   `json:"p99_ratio,omitempty"`
	RoundsP99Ratio []float64 `json:"rounds_p99_ratio,omitempty"`
	// Noisy marks a run during which other processes used more than
	// --max-other-cpu cores even after repeating it.
	Noisy bool `json:"noisy,omitempty"`
	// RecordsPerFsync and FsyncsPerSecond are presenced's group commit
	// during the window, from its /metrics.
	RecordsPerFsync float64 `json:"records_per_fsync,omitempty"`
	FsyncsPerSecond float64 `json:"fsyncs_per_second,omitempty"`
	// CommitMs is the mean time from a record's arrival at the store's
	// writer to the end of the fsync that made it durable, during the
	// window (presenced_store_commit_seconds_total over records_total).
	CommitMs float64 `json:"commit_ms,omitempty"`
	// SyncMs is the mean time one sync of the log took during the window,
	// from its call to its return (presenced_store_sync_seconds_total over
	// syncs_total): the disk's part of CommitMs.
	SyncMs float64 `json:"sync_ms,omitempty"`
	// With --store redis: the number of presenced nodes (0 otherwise),
	// redis-server's CPU during the window in cores and per request, and
	// the Redis calls per request the nodes made (their
	// presenced_redis_roundtrip_seconds_count, background work included).
	Nodes            int     `json:"nodes,omitempty"`
	RedisCPUCores    float64 `json:"redis_cpu_cores,omitempty"`
	RedisCPUusPerReq float64 `json:"redis_cpu_us_per_request,omitempty"`
	RedisCallsPerReq float64 `json:"redis_calls_per_request,omitempty"`
	redisCPU         time.Duration
	redisCalls       float64
	// Profile is the CPU profile of the server during the last round.
	Profile            string `json:"profile,omitempty"`
	serverCPU, elapsed time.Duration
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// opResult summarizes st, measured over d.
func opResult(op string, st *opStats, d time.Duration) OpResult {
	h := &st.hist
	return OpResult{
		Op: op, Requests: h.Count(), Errors: st.errors, RPS: float64(h.Count()) / d.Seconds(),
		P50ms: ms(h.Quantile(0.50)), P99ms: ms(h.Quantile(0.99)), P999ms: ms(h.Quantile(0.999)), MaxMs: ms(h.Max()),
		FirstError: st.firstErr,
	}
}

// usage records the CPU and store counters between two snapshots.
func (r *RunResult) usage(before, after snapshot, d time.Duration) {
	r.elapsed = d
	r.ClientCPUCores = (after.clientCPU - before.clientCPU).Seconds() / d.Seconds()
	if before.hasServer && after.hasServer {
		r.serverCPU = after.serverCPU - before.serverCPU
		r.ServerCPUCores = r.serverCPU.Seconds() / d.Seconds()
	}
	if before.hasRedis && after.hasRedis {
		r.redisCPU = after.redisCPU - before.redisCPU
		r.RedisCPUCores = r.redisCPU.Seconds() / d.Seconds()
	}
	if before.hasCalls && after.hasCalls {
		r.redisCalls = after.redisCalls - before.redisCalls
	}
	if before.hasMachine && after.hasMachine {
		other := after.machineCPU - before.machineCPU - r.serverCPU - r.redisCPU - (after.clientCPU - before.clientCPU)
		r.OtherCPUCores = max(0, other.Seconds()/d.Seconds())
	}
	if before.hasStore && after.hasStore {
		syncs := after.syncs - before.syncs
		if syncs > 0 {
			r.RecordsPerFsync = (after.records - before.records) / syncs
			r.FsyncsPerSecond = syncs / d.Seconds()
			if after.syncSeconds > before.syncSeconds {
				r.SyncMs = (after.syncSeconds - before.syncSeconds) / syncs * 1000
			}
		}
		if recs := after.records - before.records; recs > 0 && after.commitSeconds > before.commitSeconds {
			r.CommitMs = (after.commitSeconds - before.commitSeconds) / recs * 1000
		}
	}
}

// finish adds up the operations.
func (r *RunResult) finish() {
	r.Requests, r.Errors = 0, 0
	for _, o := range r.Ops {
		r.Requests += o.Requests
		r.Errors += o.Errors
	}
	r.RPS = float64(r.Requests) / r.Seconds
	if r.serverCPU > 0 && r.Requests > 0 {
		r.ServerCPUusPerReq = float64(r.serverCPU.Microseconds()) / float64(r.Requests)
	}
	if r.redisCPU > 0 && r.Requests > 0 {
		r.RedisCPUusPerReq = float64(r.redisCPU.Microseconds()) / float64(r.Requests)
	}
	if r.redisCalls > 0 && r.Requests > 0 {
		r.RedisCallsPerReq = r.redisCalls / float64(r.Requests)
	}
}

// op returns the result of op in r, or nil.
func (r *RunResult) op(op string) *OpResult {
	for i := range r.Ops {
		if r.Ops[i].Op == op {
			return &r.Ops[i]
		}
	}
	return nil
}
