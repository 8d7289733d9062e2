package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// weighted is an operation and its share of a scenario's requests.
type weighted struct {
	op     string
	weight int
}

// loadRun is one measurement: conns connections, each with one request in
// flight, sending mix to a target for warmup (not measured) then duration.
type loadRun struct {
	scenario    string
	target      *target
	wl          *workload
	mix         []weighted
	conns       int
	warmup      time.Duration
	duration    time.Duration
	maxRequests int64
	seed        uint64
	// profile, when not empty, is a file to save a CPU profile of the
	// target into, taken during the measured window.
	profile string
}

// opStats accumulates one operation's results in one shard.
type opStats struct {
	hist     Histogram
	errors   uint64
	firstErr string
}

// statShard is the stats of a few workers; sharding keeps both the memory
// (a histogram is 18 KiB) and the lock contention small.
type statShard struct {
	mu  sync.Mutex
	ops []opStats
}

const maxShards = 32

// execute runs the load and returns its result. Requests are counted when
// they start inside the measured window; a run stops issuing requests at
// its end or after maxRequests, whichever comes first.
func (lr *loadRun) execute(ctx context.Context) (RunResult, error) {
	cum := make([]int, len(lr.mix))
	total := 0
	for i, w := range lr.mix {
		total += w.weight
		cum[i] = total
	}
	shards := make([]statShard, min(lr.conns, maxShards))
	for i := range shards {
		shards[i].ops = make([]opStats, len(lr.mix))
	}
	start := time.Now()
	from := start.Add(lr.warmup)
	end := from.Add(lr.duration)
	perWorker := (lr.maxRequests + int64(lr.conns) - 1) / int64(lr.conns)

	var wg sync.WaitGroup
	errc := make(chan error, lr.conns)
	for i := range lr.conns {
		w := worker{lr: lr, rng: rand.New(rand.NewPCG(lr.seed, uint64(i))), cum: cum, total: total,
			shard: &shards[i%len(shards)], from: from, end: end, limit: perWorker}
		wg.Go(func() {
			if err := w.loop(ctx); err != nil {
				errc <- err
			}
		})
	}
	res, sampleErr := lr.sample(ctx, from, end)
	wg.Wait()
	close(errc)
	if err := ctx.Err(); err != nil {
		return RunResult{}, err
	}
	if err := <-errc; err != nil {
		return RunResult{}, err
	}
	if sampleErr != nil {
		return RunResult{}, sampleErr
	}
	for k, w := range lr.mix {
		var st opStats
		for i := range shards {
			o := &shards[i].ops[k]
			st.hist.Merge(&o.hist)
			st.errors += o.errors
			if st.firstErr == "" {
				st.firstErr = o.firstErr
			}
		}
		res.Ops = append(res.Ops, opResult(w.op, &st, lr.duration))
	}
	res.finish()
	return res, nil
}

// sample waits for the measured window, measuring the CPU time of both
// processes (and the store's group commit) across it, and profiling the
// target if asked.
func (lr *loadRun) sample(ctx context.Context, from, end time.Time) (RunResult, error) {
	res := RunResult{Scenario: lr.scenario, Target: lr.target.name, Connections: lr.conns, Seconds: lr.duration.Seconds()}
	if err := sleepUntil(ctx, from); err != nil {
		return res, err
	}
	before := lr.target.snapshot(ctx)
	var profErr error
	var profWG sync.WaitGroup
	if lr.profile != "" {
		secs := max(1, min(30, int(lr.duration.Seconds())-1))
		profWG.Go(func() { profErr = lr.target.profile(ctx, lr.profile, secs) })
		res.Profile = lr.profile
	}
	if err := sleepUntil(ctx, end); err != nil {
		return res, err
	}
	after := lr.target.snapshot(ctx)
	res.usage(before, after, lr.duration)
	profWG.Wait()
	if profErr != nil {
		return res, profErr
	}
	return res, nil
}

// worker is one connection's request loop.
type worker struct {
	lr        *loadRun
	rng       *rand.Rand
	cum       []int
	total     int
	shard     *statShard
	from, end time.Time
	limit     int64
}

func (w *worker) loop(ctx context.Context) error {
	client := w.lr.target.client
	for n := int64(0); n < w.limit; n++ {
		if ctx.Err() != nil || !time.Now().Before(w.end) {
			return nil
		}
		k := w.pick()
		var status int
		var detail string
		var err error
		t0 := time.Now()
		if d := w.lr.target.direct; d != nil {
			if err = d.do(ctx, w.lr.mix[k].op, w.rng); err == nil {
				status = http.StatusOK
			}
		} else {
			req, rerr := w.lr.wl.request(ctx, w.lr.target.nextBase(), w.lr.mix[k].op, w.rng)
			if rerr != nil {
				return rerr
			}
			t0 = time.Now()
			status, detail, err = send(client, req)
		}
		lat := time.Since(t0)
		if t0.Before(w.from) {
			continue
		}
		w.shard.mu.Lock()
		st := &w.shard.ops[k]
		switch {
		case err != nil && ctx.Err() == nil:
			st.errors++
			if st.firstErr == "" {
				st.firstErr = err.Error()
			}
		case err == nil && status != http.StatusOK:
			st.errors++
			if st.firstErr == "" {
				st.firstErr = fmt.Sprintf("HTTP %d: %s", status, detail)
			}
		case err == nil:
			st.hist.Record(lat)
		}
		w.shard.mu.Unlock()
	}
	return nil
}

// pick chooses an operation of the mix by weight.
func (w *worker) pick() int {
	x := w.rng.IntN(w.total)
	for i, c := range w.cum {
		if x < c {
			return i
		}
	}
	return len(w.cum) - 1
}

// send performs req and drains the answer so the connection is reused. It
// returns the status and, for a failure, the start of the body.
func send(c *http.Client, req *http.Request) (int, string, error) {
	res, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	var detail string
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 300))
		detail = strings.TrimSpace(string(b))
	}
	if _, err := io.Copy(io.Discard, res.Body); err != nil {
		return res.StatusCode, detail, fmt.Errorf("read answer: %w", err)
	}
	return res.StatusCode, detail, nil
}

// sleepUntil waits until t or until ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
