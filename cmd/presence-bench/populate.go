package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// PopulateResult is how fast users were given their state before a
// measurement.
type PopulateResult struct {
	Users       int     `json:"users"`
	Requests    int64   `json:"requests"`
	Seconds     float64 `json:"seconds"`
	RPS         float64 `json:"rps"`
	Connections int     `json:"connections"`
}

// populateOptions say what each user gets.
type populateOptions struct {
	conns int
	// pair is the index in sessionPairs of the session's pair; negative
	// picks by user.
	pair int
	// preferred also sets a preferred presence, preferredPairs[i % n] for
	// user i.
	preferred bool
	// sent, when not nil, receives for each user i the instant just before
	// its setPresence was sent (a lower bound of the session's start).
	sent []time.Time
	log  *slog.Logger
}

// populate gives every user of wl one session of app i % len(apps) (its
// expiry is the workload's), over opts.conns connections, and with
// opts.preferred a preferred presence too. Any failed request fails it.
func populate(ctx context.Context, t *target, wl *workload, opts populateOptions) (PopulateResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, done atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range opts.conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(wl.users) {
					return
				}
				if err := populateUser(ctx, t, wl, i, opts); err != nil {
					cancel(err)
					return
				}
				done.Add(1)
			}
		})
	}
	stopProgress := progress(ctx, opts.log, "populating", &done, len(wl.users))
	wg.Wait()
	stopProgress()
	if err := context.Cause(ctx); err != nil {
		return PopulateResult{}, fmt.Errorf("populate: %w", err)
	}
	elapsed := time.Since(start)
	perUser := int64(1)
	if opts.preferred {
		perUser = 2
	}
	r := PopulateResult{Users: len(wl.users), Requests: perUser * int64(len(wl.users)), Seconds: elapsed.Seconds(), Connections: opts.conns}
	r.RPS = float64(r.Requests) / r.Seconds
	return r, nil
}

// populateUser sends user i's requests.
func populateUser(ctx context.Context, t *target, wl *workload, i int, opts populateOptions) error {
	user := wl.users[i]
	a := &wl.apps[i%len(wl.apps)]
	pair := opts.pair
	if pair < 0 {
		pair = i
	}
	if opts.sent != nil {
		opts.sent[i] = time.Now()
	}
	if err := mustOK(ctx, t, "/v1.0/users/"+user+"/presence/setPresence", a.auth, a.setBody(pair)); err != nil {
		return err
	}
	if !opts.preferred {
		return nil
	}
	return mustOK(ctx, t, "/v1.0/users/"+user+"/presence/setUserPreferredPresence", a.auth, wl.preferred[i%len(wl.preferred)])
}

// mustOK POSTs body to path and fails unless the answer is 200.
func mustOK(ctx context.Context, t *target, path, auth string, body []byte) error {
	req, err := newPost(ctx, t.base+path, auth, body)
	if err != nil {
		return err
	}
	status, detail, err := send(t.client, req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("POST %s: HTTP %d: %s", path, status, detail)
	}
	return nil
}

// progress logs done out of total every few seconds until stopped.
func progress(ctx context.Context, log *slog.Logger, what string, done *atomic.Int64, total int) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				log.Info(what, "done", done.Load(), "of", total)
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}
