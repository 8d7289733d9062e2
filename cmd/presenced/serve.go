package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/auth"
	"github.com/presenced/presenced/filestore"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/memstore"
	"github.com/presenced/presenced/notify"
	"github.com/presenced/presenced/testclock"
	"github.com/presenced/presenced/testhooks"
)

// serve runs presenced until ctx is done, then shuts down gracefully: it
// stops accepting, finishes in-flight requests and closes the store.
func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	logger := slog.New(newLimitedHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel})))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// With --store redis every node shares the store, the test clock, the
	// budgets, the keys and the subscriptions through Redis.
	var rnode *redisNode
	var store presence.Store
	var err error
	if cfg.Store == "redis" {
		if rnode, err = openRedisNode(ctx, cfg, logger, reg); err != nil {
			return err
		}
		store = rnode.store
	} else if store, err = openStore(ctx, cfg, logger); err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			logger.Error("closing the store", "err", err)
		}
	}()

	var clock presence.Clock = presence.SystemClock{}
	var testClock testhooks.Clock
	if cfg.TestHooks {
		if rnode != nil {
			testClock = rnode.store.Clock()
		} else if testClock, err = openTestClock(cfg, logger); err != nil {
			return err
		}
		clock = testClock
		logger.Warn("TEST HOOKS ENABLED: /_test/ is mounted and the service clock moves only when advanced; never use this in production")
	}
	writes := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "presenced_store_write_seconds",
		Help:    "Latency of one user's read-modify-write, until durable.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
	})
	reg.MustRegister(writes)
	svc := presence.NewService(timedStore{Store: store, writes: writes}, clock, logger)

	verifier, err := newAuthenticator(ctx, cfg, rnode, logger, stderr)
	if err != nil {
		return err
	}
	defer verifier.Close()

	registerServiceMetrics(reg, svc)
	if fs, ok := store.(*filestore.Store); ok {
		registerStoreMetrics(reg, fs)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	defer ln.Close()
	scheme := "http"
	if cfg.TLSCertFile != "" {
		scheme = "https"
	}
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = scheme + "://" + ln.Addr().String()
	}
	notifier, signer, err := newNotifier(ctx, cfg, rnode, svc, publicURL, logger, reg)
	if err != nil {
		return err
	}
	defer notifier.Close()

	var limiter graphapi.Limiter // in memory, unless the nodes share one
	if rnode != nil {
		limiter = rnode.limiter()
	}
	tickets := newTickets(svc, rnode)
	api, err := graphapi.NewServer(graphapi.Config{
		Service:       svc,
		Tickets:       tickets,
		Subscriptions: notifier,
		Auth:          verifier,
		PublicURL:     cfg.PublicURL,
		RateLimit:     cfg.RateLimit,
		// A test clock stands still: a throttling window also ends in
		// real time, or a client over its budget would wait forever.
		ThrottleRealTime: cfg.TestHooks,
		MaxStreams:       cfg.MaxStreams,
		MaxStreamsPerApp: cfg.MaxStreamsPerApp,
		Limiter:          limiter,
		Logger:           logger,
		Registerer:       reg,
	})
	if err != nil {
		return err
	}

	// The test hooks' budget: on Redis, set for every node.
	setRateLimit, setThrottleWindow := api.SetRateLimit, api.SetThrottleWindow
	if rnode != nil {
		setRateLimit = func(n int) { api.SetRateLimit(n); rnode.setSetting(settingLimit, n) }
		setThrottleWindow = func(d time.Duration) {
			api.SetThrottleWindow(d)
			rnode.setSetting(settingWindow, int(d/time.Second))
		}
	}

	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_streams_open", Help: "Event streams open now."},
		func() float64 { return float64(api.OpenStreams()) }))

	mux := http.NewServeMux()
	conns, err := newConnections(cfg, svc, rnode, verifier, tickets, api, logger, reg, mux)
	if err != nil {
		return err
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		// The store is open once serve gets here; a read proves it answers.
		if _, err := store.Get(r.Context(), devTenant, []string{devApp}); err != nil {
			http.Error(w, "store not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		// A store that cannot write (a full disk) is not ready either.
		if h, ok := store.(interface{ Healthy() error }); ok {
			if err := h.Healthy(); err != nil {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "store cannot write: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		// A node of several must hear the others' changes for its streams.
		if f, ok := store.(interface{ Following() error }); ok {
			if err := f.Following(); err != nil {
				w.Header().Set("Retry-After", "1")
				http.Error(w, "not following the other nodes' changes: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		if err := verifier.Ready(); err != nil {
			http.Error(w, "token keys not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ready\n")
	})
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	} else {
		stopMetrics, err := serveMetrics(cfg.MetricsAddr, reg, logger)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	jwks := signer.JWKS()
	mux.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	})
	if cfg.TestHooks {
		mux.Handle("/_test/", testhooks.NewHandler(testhooks.Config{
			Service:           svc,
			Clock:             testClock,
			SetRateLimit:      setRateLimit,
			SetThrottleWindow: setThrottleWindow,
			WriteError:        api.WriteError,
			// Holders found dead at the new time are swept before the
			// notifications go out.
			AfterAdvance: func(ctx context.Context) error {
				return errors.Join(conns.Sweep(ctx), notifier.Flush(ctx))
			},
			ResetSubscriptions: func(ctx context.Context, tenant string) error {
				_, err := notifier.Reset(ctx, tenant)
				return err
			},
			// Open connections renew their leases as the clock jumps.
			BeforeAdvance: extendLeases(conns),
		}))
	}
	con, err := mountConsole(mux, consoleDeps{cfg: cfg, svc: svc, store: store, verifier: verifier, notifier: notifier, gatherer: reg, writeError: api.WriteError, logger: logger})
	if err != nil {
		return err
	}
	mux.Handle("/", api)

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, logger)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	ln = newLimitListener(ln, cfg.MaxConnections)
	srv := &http.Server{
		Handler:           guard(graphapi.CORS(cfg.CORSOrigins, mux), api.WriteError),
		MaxHeaderBytes:    hardHeaderBytes,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	srv.RegisterOnShutdown(api.CloseStreams)
	srv.RegisterOnShutdown(con.Close)

	// Before anything writes: count the stored sessions and queue the
	// notifications a crash left in outboxes. On Redis no node scans every
	// user: each finds the undelivered notices of the partitions it owns
	// (redisNode.attach), and the sessions gauge counts this node's writes.
	if rnode == nil {
		if err := svc.Recover(ctx, func(k presence.Key, _ []presence.Notice) { notifier.Pending(k) }); err != nil {
			return err
		}
	}
	schedCtx, stopSched := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Go(func() { svc.RunScheduler(schedCtx, 100*time.Millisecond) })
	wg.Go(func() { notifier.Run(schedCtx) })
	if rnode != nil {
		wg.Go(func() { rnode.run(schedCtx, svc) })
	}
	wg.Go(func() { conns.Run(schedCtx) })
	defer func() {
		stopSched()
		wg.Wait()
	}()
	// Catch up at once on what fell due while the server was down.
	if _, err := svc.Fire(ctx); err != nil {
		logger.Error("first scheduler pass", "err", err)
	}

	bi := readBuildInfo()
	logger.Info("listening", "addr", ln.Addr().String(), "node", cfg.NodeID, "scheme", scheme, "store", cfg.Store, "data", cfg.DataDir, "test_hooks", cfg.TestHooks,
		"console", publicURL+"/presenced/console/", "version", bi.Version, "commit", bi.Commit, "modified", bi.Modified)
	fmt.Fprintf(stdout, "presenced listening on %s://%s\n", scheme, ln.Addr())
	errc := make(chan error, 1)
	go func() {
		if cfg.TLSCertFile != "" {
			errc <- srv.ServeTLS(ln, cfg.TLSCertFile, cfg.TLSKeyFile)
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	// Client connections are hijacked: Shutdown does not wait for them.
	conns.Close()
	shutCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if rnode != nil {
		// Hand the partitions over while the deliverer still runs, so
		// that its POSTs in flight end and are recorded first.
		rnode.leave(shutCtx)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// openTestClock returns the test clock: with the file store a durable one
// in the data directory, which resumes where the last run left it;
// otherwise one in memory starting at the real time.
func openTestClock(cfg Config, logger *slog.Logger) (*testclock.Clock, error) {
	if cfg.Store != "file" {
		return testclock.New(time.Now()), nil
	}
	c, resumed, err := testclock.Open(cfg.DataDir, time.Now())
	if err != nil {
		return nil, err
	}
	if resumed {
		logger.Info("test clock resumed from the data directory", "now", c.Now(), "real_time", time.Now().UTC(),
			"file", filepath.Join(cfg.DataDir, testclock.FileName))
	}
	return c, nil
}

func openStore(ctx context.Context, cfg Config, logger *slog.Logger) (presence.Store, error) {
	if cfg.Store == "memory" {
		logger.Warn("memory store: every write is lost when presenced stops")
		return memstore.New(), nil
	}
	s, err := filestore.Open(ctx, cfg.DataDir, filestore.Options{Logger: logger, SyncDepth: cfg.StoreSyncDepth})
	if err != nil {
		if errors.Is(err, filestore.ErrCorrupt) {
			return nil, fmt.Errorf("open store in %s: %w; stop here and run `presenced repair --data %s` to keep every valid record (README: Storage faults and recovery)", cfg.DataDir, err, cfg.DataDir)
		}
		return nil, fmt.Errorf("open store in %s: %w", cfg.DataDir, err)
	}
	return s, nil
}

// newAuthenticator builds the token verifier: from the configured JWKS, or in
// development mode from presenced's own signing key, said loudly.
func newAuthenticator(ctx context.Context, cfg Config, rnode *redisNode, logger *slog.Logger, stderr io.Writer) (*auth.Verifier, error) {
	acfg := auth.Config{JWKSURL: cfg.JWKSURL, JWKSFile: cfg.JWKSFile, Issuers: cfg.Issuers, Audiences: cfg.Audiences, Logger: logger}
	if cfg.JWKSURL != "" || cfg.JWKSFile != "" {
		v, err := auth.NewVerifier(ctx, acfg, logger)
		if err != nil {
			return nil, fmt.Errorf("token verifier: %w", err)
		}
		return v, nil
	}
	var dev *auth.DevIssuer
	var err error
	if rnode != nil {
		dev, err = rnode.devIssuer(ctx, cfg.DevKeyFile)
	} else {
		dev, err = auth.NewDevIssuer(cfg.DevKeyFile)
	}
	if err != nil {
		return nil, fmt.Errorf("development issuer: %w", err)
	}
	warnIfDevKeyExposed(cfg.DevKeyFile, logger, stderr)
	if len(acfg.Issuers) == 0 {
		acfg.Issuers = []string{devIssuer}
	}
	if len(acfg.Audiences) == 0 {
		acfg.Audiences = []string{auth.DefaultAudience, auth.GraphAppID}
	}
	fmt.Fprintln(stderr, "WARNING: DEVELOPMENT AUTH MODE. No --jwks-url or --jwks-file is set, so presenced accepts tokens")
	fmt.Fprintln(stderr, "WARNING: signed by its own development key. Anyone who can read that key can act as any user.")
	fmt.Fprintln(stderr, "WARNING: Mint a token with: presenced token "+tokenDataArgs(cfg)+"  (from a checkout: go run ./cmd/presenced token …)")
	logger.Warn("development auth mode: accepting tokens signed by presenced's own key", "key", cfg.DevKeyFile, "issuer", acfg.Issuers)
	return dev.Verifier(acfg), nil
}

// tokenDataArgs are the flags `presenced token` needs to find this
// server's development key: --data with the data directory as an absolute
// path, so the hint works from any directory (or --dev-key when one was
// given).
func tokenDataArgs(cfg Config) string {
	abs := func(p string) string {
		if a, err := filepath.Abs(p); err == nil {
			return a
		}
		return p
	}
	if cfg.DevKeyFile != filepath.Join(cfg.DataDir, "dev-signing-key.pem") && cfg.DevKeyFile != cfg.DataDir+"/dev-signing-key.pem" {
		return "--dev-key " + abs(cfg.DevKeyFile)
	}
	return "--data " + abs(cfg.DataDir)
}

func registerServiceMetrics(reg prometheus.Registerer, svc *presence.Service) {
	stat := func(f func(presence.Stats) float64) func() float64 {
		return func() float64 { return f(svc.Stats()) }
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_change_events_total", Help: "Presence change events emitted (visible availability or activity changed)."},
			stat(func(s presence.Stats) float64 { return float64(s.Events) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_change_events_dropped_total", Help: "Change events a slow in-process subscriber did not take."},
			stat(func(s presence.Stats) float64 { return float64(s.EventsDropped) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_scheduler_fired_total", Help: "Users re-evaluated by the scheduler because a fade or expiry fell due."},
			stat(func(s presence.Stats) float64 { return float64(s.Fired) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_scheduler_lag_seconds", Help: "How late the last due change was processed."},
			stat(func(s presence.Stats) float64 { return time.Duration(s.LagNanos).Seconds() })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_sessions", Help: "Sessions stored (expired ones leave when the scheduler prunes them)."},
			stat(func(s presence.Stats) float64 { return float64(s.Sessions) })),
	)
}

// registerStoreMetrics exports the durable store's counters; records per
// sync is the group commit's batch size.
func registerStoreMetrics(reg prometheus.Registerer, fs *filestore.Store) {
	stat := func(f func(filestore.Stats) float64) func() float64 {
		return func() float64 { return f(fs.Stats()) }
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_store_records_total", Help: "Log records made durable."},
			stat(func(s filestore.Stats) float64 { return float64(s.Records) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_store_syncs_total", Help: "fsyncs of the log; records_total / syncs_total is the mean group-commit batch size."},
			stat(func(s filestore.Stats) float64 { return float64(s.Syncs) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_store_commit_seconds_total", Help: "Sum over the records made durable of the time from queueing each to the end of its fsync; over records_total, the mean commit latency."},
			stat(func(s filestore.Stats) float64 { return s.CommitSeconds })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_store_sync_seconds_total", Help: "Time the log's syncs took, each from the call to the return of fdatasync; over syncs_total, the mean sync: the disk's part of a commit."},
			stat(func(s filestore.Stats) float64 { return s.SyncSeconds })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_store_log_bytes", Help: "Size of the current log segment."},
			stat(func(s filestore.Stats) float64 { return float64(s.LogBytes) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "presenced_store_compactions_total", Help: "Snapshots written."},
			stat(func(s filestore.Stats) float64 { return float64(s.Compactions) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_store_users", Help: "Users held by the store."},
			stat(func(s filestore.Stats) float64 { return float64(s.Users) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_store_write_failing", Help: "1 while the log cannot be written (a full disk): writes answer 503 and /readyz is not ready."},
			stat(func(s filestore.Stats) float64 {
				if s.WriteFailing {
					return 1
				}
				return 0
			})),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "presenced_scheduler_pending", Help: "Entries in the due index (pending fades and expiries, stale ones included)."},
			stat(func(s filestore.Stats) float64 { return float64(s.DueIndexLen) })),
	)
}

// timedStore measures every Update (the durable write, group commit
// included) in a histogram.
type timedStore struct {
	presence.Store
	writes prometheus.Histogram
}

// DueAll passes presence.AllDue through, so that Service.FireAll reaches
// every node's users on a shared store.
func (t timedStore) DueAll(ctx context.Context, now time.Time, limit int) ([]presence.Key, error) {
	if a, ok := t.Store.(presence.AllDue); ok {
		return a.DueAll(ctx, now, limit)
	}
	return t.Store.Due(ctx, now, limit)
}

func (t timedStore) Update(ctx context.Context, key presence.Key, fn func(*presence.State) error) (presence.State, presence.State, error) {
	start := time.Now()
	before, after, err := t.Store.Update(ctx, key, fn)
	t.writes.Observe(time.Since(start).Seconds())
	return before, after, err
}

// UpdateEach passes presence.EachUpdater through: each user's write took
// as long as the call. On a store without it, the Updates are timed one
// by one.
func (t timedStore) UpdateEach(ctx context.Context, keys []presence.Key, fn func(int, *presence.State) error) []presence.Updated {
	e, ok := t.Store.(presence.EachUpdater)
	if !ok {
		return presence.UpdateConcurrently(ctx, t, keys, fn)
	}
	start := time.Now()
	out := e.UpdateEach(ctx, keys, fn)
	d := time.Since(start).Seconds()
	for range keys {
		t.writes.Observe(d)
	}
	return out
}

// newNotifier builds the change-notification service: the webhook client
// (trusting --webhook-ca-file too), presenced's signing key for validation
// tokens, and the subscription store beside the presence store.
func newNotifier(ctx context.Context, cfg Config, rnode *redisNode, svc *presence.Service, publicURL string, logger *slog.Logger, reg prometheus.Registerer) (*notify.Notifier, *notify.Signer, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if cfg.WebhookCAFile != "" {
		pem, err := os.ReadFile(cfg.WebhookCAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--webhook-ca-file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--webhook-ca-file: no PEM certificate in %s", cfg.WebhookCAFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 64
	if !cfg.WebhookAllowPrivate {
		notify.GuardTransport(tr)
	}
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	keyFile, dir := "", ""
	if cfg.Store == "file" {
		keyFile = filepath.Join(cfg.DataDir, "notify-signing-key.pem")
		dir = filepath.Join(cfg.DataDir, "notify")
	}
	var signer *notify.Signer
	if rnode != nil {
		signer, err = rnode.signer(ctx)
	} else {
		signer, err = notify.NewSigner(keyFile)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("notification signing key: %w", err)
	}
	ncfg := notify.Config{
		Service:               svc,
		Dir:                   dir,
		Client:                client,
		Signer:                signer,
		Issuer:                publicURL,
		AllowAppSubscriptions: cfg.AllowAppSubscriptions,
		MaxLifetime:           cfg.MaxSubscriptionLifetime,
		ValidationTimeout:     cfg.ValidationTimeout,
		Logger:                logger,
		Metrics:               notify.NewMetrics(reg),
	}
	if rnode != nil {
		// The subscriptions live in Redis; one node (a partition's owner)
		// delivers each user's notices, one (the leader) runs the lifecycle.
		ncfg.Subscriptions = rnode.store.Subscriptions()
		// The delivery log too, so any node's console shows every node's deliveries.
		ncfg.DeliveryLog = rnode.store.DeliveryLog()
		ncfg.Owns = rnode.store.Owns
		ncfg.Leader = rnode.store.Leader
	}
	n, err := notify.New(ncfg)
	if err != nil {
		return nil, nil, fmt.Errorf("change notifications: %w", err)
	}
	if rnode != nil {
		rnode.attach(n)
	}
	return n, signer, nil
}
