package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path/filepath"
	"slices"
	"time"
)

// ScaleResult is what the scale scenario measured.
type ScaleResult struct {
	Populate PopulateResult `json:"populate"`
	// Memory is the server's, populated and left to settle.
	Memory           memory  `json:"memory"`
	GoHeapInuseBytes float64 `json:"go_heap_inuse_bytes,omitempty"`
	StoreUsers       float64 `json:"store_users,omitempty"`
	DataBytes        int64   `json:"data_dir_bytes"`
	// ShutdownSeconds runs from SIGTERM to exit (the store compacts), for
	// each stop.
	ShutdownSeconds []float64 `json:"shutdown_seconds"`
	// RestartsSeconds run from exec to the first 200 of /readyz, for each
	// restart; RestartSeconds is their median, which the goal judges.
	RestartsSeconds []float64 `json:"restarts_to_readyz_seconds"`
	RestartSeconds  float64   `json:"restart_to_readyz_seconds"`
	// MemoryAfterRestart is the largest of the restarted servers', settled.
	MemoryAfterRestart memory `json:"memory_after_restart"`
	// Sampled users were read back after each restart; Verified showed the
	// preferred presence they were given, every time.
	Sampled  int `json:"sampled"`
	Verified int `json:"verified"`
}

// scaleSample is how many users are read back after a restart.
const scaleSample = 200

// scaleRestarts is how many times the populated server is restarted.
const scaleRestarts = 3

// settle is how long the server is left alone before its memory is read.
const settle = 3 * time.Second

// runScale populates a fresh presenced with --users users, each with a
// session and a preferred presence, reads its resident memory, then stops
// it with SIGTERM and times restarts until /readyz.
func runScale(ctx context.Context, b *bench) error {
	t, dataDir, err := b.spawn(ctx, "scale", false)
	if err != nil {
		return err
	}
	wl, err := b.workload(ctx, dataDir, b.cfg.usersFor("scale"), loadExpiry)
	if err != nil {
		return err
	}
	res := &ScaleResult{}
	b.report.Scale = res
	b.log.Info("populating", "users", len(wl.users), "connections", b.cfg.Connections)
	res.Populate, err = populate(ctx, t, wl, populateOptions{conns: b.cfg.Connections, pair: -1, preferred: true, log: b.log})
	if err != nil {
		return err
	}
	if res.Memory, err = settledMemory(ctx, t); err != nil {
		return err
	}
	if m, err := scrape(ctx, t.client, t.base); err == nil {
		res.GoHeapInuseBytes = m["go_memstats_heap_inuse_bytes"]
		res.StoreUsers = m["presenced_store_users"]
	}
	b.log.Info("populated", "vm_rss", mib(res.Memory.RSS), "vm_hwm", mib(res.Memory.Peak))
	res.Sampled = min(scaleSample, len(wl.users))
	res.Verified = res.Sampled
	for range scaleRestarts {
		if err := restartOnce(ctx, b, t, wl, dataDir, res); err != nil {
			return err
		}
	}
	t.client.CloseIdleConnections()
	if err := b.stop(t.proc); err != nil {
		return err
	}
	if res.Verified != res.Sampled {
		return fmt.Errorf("after a restart only %d of %d sampled users showed the preferred presence they were given", res.Verified, res.Sampled)
	}
	return nil
}

// restartOnce stops t's server, starts it again on dataDir, timing both,
// and reads its memory and a sample of users back.
func restartOnce(ctx context.Context, b *bench, t *target, wl *workload, dataDir string, res *ScaleResult) error {
	t.client.CloseIdleConnections()
	stopAt := time.Now()
	if err := b.stop(t.proc); err != nil {
		return err
	}
	res.ShutdownSeconds = append(res.ShutdownSeconds, time.Since(stopAt).Seconds())
	var err error
	if res.DataBytes, err = dirSize(dataDir); err != nil {
		return err
	}
	bin, err := b.presencedBinary(ctx)
	if err != nil {
		return err
	}
	p, ready, err := spawnPresenced(ctx, bin, spawnOptions{dataDir: dataDir}, t.client)
	if err != nil {
		return err
	}
	b.procs = append(b.procs, p)
	t.base, t.proc = "http://"+p.addr, p
	res.RestartsSeconds = append(res.RestartsSeconds, ready.Seconds())
	res.RestartSeconds = lowerMedian(slices.Clone(res.RestartsSeconds), cmp.Compare[float64])
	b.log.Info("restarted", "shutdown_seconds", res.ShutdownSeconds[len(res.ShutdownSeconds)-1],
		"ready_after", ready.Round(time.Millisecond))
	m, err := settledMemory(ctx, t)
	if err != nil {
		return err
	}
	if m.RSS > res.MemoryAfterRestart.RSS {
		res.MemoryAfterRestart = m
	}
	ok, err := verifyPreferred(ctx, t, wl, res.Sampled)
	if err != nil {
		return err
	}
	res.Verified = min(res.Verified, ok)
	return nil
}

// settledMemory leaves t's server alone for a moment, then reads its memory.
func settledMemory(ctx context.Context, t *target) (memory, error) {
	t.client.CloseIdleConnections()
	if err := sleepUntil(ctx, time.Now().Add(settle)); err != nil {
		return memory{}, err
	}
	return processMemory(t.proc.pid())
}

// verifyPreferred reads n users spread over wl and counts those showing
// the preferred pair populate gave them.
func verifyPreferred(ctx context.Context, t *target, wl *workload, n int) (int, error) {
	ok := 0
	for k := range n {
		i := k * len(wl.users) / n
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+"/v1.0/users/"+wl.users[i]+"/presence", nil)
		if err != nil {
			return ok, fmt.Errorf("verify: %w", err)
		}
		req.Header.Set("Authorization", wl.apps[0].auth)
		res, err := t.client.Do(req)
		if err != nil {
			return ok, fmt.Errorf("verify: %w", err)
		}
		var got struct{ Availability, Activity string }
		err = json.NewDecoder(res.Body).Decode(&got)
		res.Body.Close()
		if err != nil || res.StatusCode != http.StatusOK {
			return ok, fmt.Errorf("verify %s: HTTP %d: %v", wl.users[i], res.StatusCode, err)
		}
		want := preferredPairs[i%len(preferredPairs)]
		if got.Availability == want[0] && got.Activity == want[1] {
			ok++
		}
	}
	return ok, nil
}

// dirSize returns the bytes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return n, fmt.Errorf("size of %s: %w", dir, err)
	}
	return n, nil
}
