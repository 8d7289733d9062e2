package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is everything presenced is started with.
type Config struct {
	Addr          string
	DataDir       string
	Store         string
	PublicURL     string
	JWKSURL       string
	JWKSFile      string
	Issuers       []string
	Audiences     []string
	TestHooks     bool
	WebhookCAFile string
	RateLimit     int
	LogLevel      slog.Level
	DevKeyFile    string
	TLSCertFile   string
	TLSKeyFile    string
	PprofAddr     string
	// AllowAppSubscriptions lets application tokens subscribe (beyond Graph).
	AllowAppSubscriptions bool
	// MaxSubscriptionLifetime is the longest a subscription may live
	// (Graph: 60 minutes).
	MaxSubscriptionLifetime time.Duration
	// ValidationTimeout bounds the notification URL handshake (Graph: 10 s).
	ValidationTimeout time.Duration
	// ConsoleOperatorTokenFile holds the console's operator secret; empty
	// turns the operator view off.
	ConsoleOperatorTokenFile string
	// WebhookAllowPrivate lets notification and lifecycle URLs reach
	// loopback, private, link-local and other non-public addresses; on by
	// default with --test-hooks only.
	WebhookAllowPrivate bool
	// MaxStreams caps the event streams open at once, MaxStreamsPerApp
	// those of one (app, tenant).
	MaxStreams, MaxStreamsPerApp int
	// MaxConnections caps the connections served at once; more wait to be
	// accepted.
	MaxConnections int
	// StoreSyncDepth is how many fsyncs of the file store's log may run at
	// once (filestore.Options.SyncDepth); 0 is the store's default.
	StoreSyncDepth int
	// MetricsAddr, when set, serves /metrics on its own listener instead
	// of the API's.
	MetricsAddr string
	// RedisURL is where the Redis store is (--store redis): a redis://,
	// rediss:// or unix:// URL, or a comma-separated list of a Redis
	// Cluster's seed addresses.
	RedisURL string
	// NodeID names this node in the start-up log, the console's health
	// view and the Redis store's leases.
	NodeID string
	// RedisWaitReplicas makes each write wait until that many replicas
	// have it.
	RedisWaitReplicas int
	// CORSOrigins are the origins whose browser scripts may call presenced
	// ("*": any); empty turns CORS off.
	CORSOrigins []string
	// Connections are the client connections' timings (connect.go).
	Connections ConnectionConfig
}

// Development-mode token defaults, shared by the server and `presenced token`.
const (
	devIssuer = "https://presenced.invalid/dev"
	devTenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	devApp    = "22553876-f5ab-4529-bffb-cfe50aa89f87"
)

// envFlag is one flag and the environment variable that sets it when the
// command line does not.
type envFlag struct {
	name, env, def, usage string
	target                *string
}

// usageHead is the start of `presenced --help`.
const usageHead = `presenced serves the Microsoft Graph presence API (v1.0 and beta).

Usage:
  presenced [flags]          serve until SIGINT or SIGTERM
  presenced token [flags]    print a bearer token for development auth mode (token --help)
  presenced repair [flags]   rewrite a damaged data directory, keeping every valid record (repair --help)
  presenced version          print the version and commit
  presenced help             print this help

Each flag also reads the environment variable shown; a flag given on the
command line wins.

Flags:
`

// parseConfig reads flags, falling back to the environment, then defaults.
// Usage goes to stdout when asked for (--help), to stderr after a mistake.
func parseConfig(args []string, getenv func(string) string, stdout, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("presenced", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var addr, data, store, publicURL, jwksURL, jwksFile, issuer, audience, caFile, rate, logLevel, devKey, tlsCert, tlsKey, pprofAddr, maxLife, validation, operatorFile, maxStreams, maxStreamsPerApp, maxConns, metricsAddr, corsOrigins, redisURL, nodeID, waitReplicas string
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" || a == "--h" {
			fs.SetOutput(stdout)
		}
	}
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	var connGrace, connHeartbeat, connTimeout string
	var syncDepth string
	flags := []envFlag{
		{"addr", "PRESENCED_ADDR", "127.0.0.1:8080", "listen address", &addr},
		{"data", "PRESENCED_DATA", "./presenced-data", "directory of the embedded store", &data},
		{"store", "PRESENCED_STORE", "file", "store engine: file (durable, default), memory (lost at exit) or redis (several nodes, --redis-url)", &store},
		{"redis-url", "PRESENCED_REDIS_URL", "", "with --store redis: redis://[user:password@]host:port/db, rediss://…, unix:///path, or a comma-separated list of Redis Cluster seeds", &redisURL},
		{"node-id", "PRESENCED_NODE_ID", "", "this node's name in the start-up log, the console's health view and the Redis store's leases (default: host name and port)", &nodeID},
		{"redis-wait-replicas", "PRESENCED_REDIS_WAIT_REPLICAS", "0", "with --store redis: each write waits until this many replicas have it (0: none)", &waitReplicas},
		{"public-url", "PRESENCED_PUBLIC_URL", "", "base URL used in @odata.context (default: derived from each request)", &publicURL},
		{"jwks-url", "PRESENCED_JWKS_URL", "", "URL of the JSON Web Key Set that signs accepted access tokens", &jwksURL},
		{"jwks-file", "PRESENCED_JWKS_FILE", "", "file holding the JSON Web Key Set that signs accepted access tokens", &jwksFile},
		{"issuer", "PRESENCED_ISSUER", "", "required iss of access tokens (comma-separated list)", &issuer},
		{"audience", "PRESENCED_AUDIENCE", "", "accepted aud values (comma-separated)", &audience},
		{"webhook-ca-file", "PRESENCED_WEBHOOK_CA_FILE", "", "extra PEM roots trusted when calling notification URLs (for change notifications)", &caFile},
		{"rate-limit", "PRESENCED_RATE_LIMIT", "1500", "presence requests allowed per 30 s per (app, tenant); 0 turns throttling off", &rate},
		{"log-level", "PRESENCED_LOG_LEVEL", "info", "debug, info, warn or error (debug logs every request)", &logLevel},
		{"dev-key", "PRESENCED_DEV_KEY", "", "development signing key (default: <data>/dev-signing-key.pem)", &devKey},
		{"tls-cert", "PRESENCED_TLS_CERT", "", "PEM certificate (chain) to serve HTTPS with; needs --tls-key", &tlsCert},
		{"tls-key", "PRESENCED_TLS_KEY", "", "PEM private key of --tls-cert", &tlsKey},
		{"pprof", "PRESENCED_PPROF", "", "serve net/http/pprof on this separate address (off when empty)", &pprofAddr},
		{"max-subscription-lifetime", "PRESENCED_MAX_SUBSCRIPTION_LIFETIME", "60m", "longest lifetime of a subscription (Graph: 60m; beyond Graph when longer)", &maxLife},
		{"validation-timeout", "PRESENCED_VALIDATION_TIMEOUT", "10s", "time a notification URL has to answer the validation handshake (Graph: 10s)", &validation},
		{"console-operator-token-file", "PRESENCED_CONSOLE_OPERATOR_TOKEN_FILE", "", "file holding a secret (32+ characters) that signs in to the console as operator of every tenant (off when empty)", &operatorFile},
		{"max-streams", "PRESENCED_MAX_STREAMS", "10000", "event streams (/presenced/stream) open at once; more are refused with 429", &maxStreams},
		{"max-streams-per-app", "PRESENCED_MAX_STREAMS_PER_APP", "1000", "event streams one application may hold open in one tenant; more are refused with 429", &maxStreamsPerApp},
		{"max-connections", "PRESENCED_MAX_CONNECTIONS", strconv.Itoa(defaultMaxConnections), "connections served at once; more wait to be accepted", &maxConns},
		{"metrics-addr", "PRESENCED_METRICS_ADDR", "", "serve /metrics on this separate address instead of the API's (empty: on the API's)", &metricsAddr},
		{"cors-origins", "PRESENCED_CORS_ORIGINS", "", "origins whose browser scripts may call presenced, comma-separated, * for any (off when empty)", &corsOrigins},
		{"connection-grace", "PRESENCED_CONNECTION_GRACE", "30s", "how long a client connection's session outlives the connection, for a reconnect to resume it", &connGrace},
		{"connection-heartbeat", "PRESENCED_CONNECTION_HEARTBEAT", "15s", "how often presenced pings each client connection", &connHeartbeat},
		{"connection-timeout", "PRESENCED_CONNECTION_TIMEOUT", "45s", "how long a client connection may stay silent (no message, no pong) before it is dead", &connTimeout},
		{"store-sync-depth", "PRESENCED_STORE_SYNC_DEPTH", "1", "with --store file: fsyncs of the log that may run at once; 2 lets a second overlap the first while fewer than 24 writers wait (for measurements, see BENCHMARKS.md)", &syncDepth},
	}
	for _, f := range flags {
		def := f.def
		if v := getenv(f.env); v != "" {
			def = v
		}
		fs.StringVar(f.target, f.name, def, f.usage+" ($"+f.env+")")
	}
	var testHooks, appSubs bool
	for _, f := range []struct {
		name, env, usage string
		target           *bool
	}{
		{"test-hooks", "PRESENCED_TEST_HOOKS", "mount /_test/ and use a test clock (never in production)", &testHooks},
		{"allow-app-subscriptions", "PRESENCED_ALLOW_APP_SUBSCRIPTIONS", "let application tokens with Presence.Read.All subscribe to presence (beyond Graph)", &appSubs},
	} {
		def, err := parseBool(getenv(f.env))
		if err != nil {
			return Config{}, fmt.Errorf("%s: %w", f.env, err)
		}
		fs.BoolVar(f.target, f.name, def, f.usage+" ($"+f.env+"=1)")
	}
	var allowPrivate optBool
	if v := getenv("PRESENCED_WEBHOOK_ALLOW_PRIVATE"); v != "" {
		b, err := parseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("PRESENCED_WEBHOOK_ALLOW_PRIVATE: %w", err)
		}
		allowPrivate = optBool{set: true, v: b}
	}
	fs.Var(&allowPrivate, "webhook-allow-private", "let notification and lifecycle URLs reach loopback, private, link-local and other non-public addresses (default: on with --test-hooks, else off) ($PRESENCED_WEBHOOK_ALLOW_PRIVATE=1)")
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg := Config{Addr: addr, DataDir: data, Store: store, PublicURL: strings.TrimSuffix(publicURL, "/"), JWKSURL: jwksURL,
		JWKSFile: jwksFile, Issuers: splitList(issuer), Audiences: splitList(audience), WebhookCAFile: caFile, DevKeyFile: devKey,
		TestHooks: testHooks, TLSCertFile: tlsCert, TLSKeyFile: tlsKey, PprofAddr: pprofAddr, AllowAppSubscriptions: appSubs,
		CORSOrigins: splitList(corsOrigins)}
	cfg.ConsoleOperatorTokenFile = operatorFile
	cfg.WebhookAllowPrivate = testHooks
	if allowPrivate.set {
		cfg.WebhookAllowPrivate = allowPrivate.v
	}
	var err error
	if cfg.MaxSubscriptionLifetime, err = time.ParseDuration(maxLife); err != nil || cfg.MaxSubscriptionLifetime < time.Minute {
		return Config{}, fmt.Errorf("--max-subscription-lifetime: want a duration of a minute or more such as 60m or 24h, got %q", maxLife)
	}
	if cfg.ValidationTimeout, err = time.ParseDuration(validation); err != nil || cfg.ValidationTimeout <= 0 {
		return Config{}, fmt.Errorf("--validation-timeout: want a positive duration such as 10s, got %q", validation)
	}
	if cfg.ValidationTimeout > writeTimeout {
		return Config{}, fmt.Errorf("--validation-timeout: %s exceeds the server's write timeout of %s: a subscription request would be cut off before its handshake ends", cfg.ValidationTimeout, writeTimeout)
	}
	if cfg.StoreSyncDepth, err = strconv.Atoi(syncDepth); err != nil || cfg.StoreSyncDepth < 1 || cfg.StoreSyncDepth > 8 {
		return Config{}, fmt.Errorf("--store-sync-depth: want 1 to 8, got %q", syncDepth)
	}
	if cfg.MaxConnections, err = strconv.Atoi(maxConns); err != nil || cfg.MaxConnections < 1 {
		return Config{}, fmt.Errorf("--max-connections: want a number of connections, 1 or more, got %q", maxConns)
	}
	cfg.MetricsAddr = metricsAddr
	if cfg.Connections, err = parseConnectionConfig(connGrace, connHeartbeat, connTimeout); err != nil {
		return Config{}, err
	}
	if (tlsCert == "") != (tlsKey == "") {
		return Config{}, errors.New("--tls-cert and --tls-key go together")
	}
	if cfg.MaxStreams, err = strconv.Atoi(maxStreams); err != nil || cfg.MaxStreams < 1 {
		return Config{}, fmt.Errorf("--max-streams: want a number of streams, 1 or more, got %q", maxStreams)
	}
	if cfg.MaxStreamsPerApp, err = strconv.Atoi(maxStreamsPerApp); err != nil || cfg.MaxStreamsPerApp < 1 {
		return Config{}, fmt.Errorf("--max-streams-per-app: want a number of streams, 1 or more, got %q", maxStreamsPerApp)
	}
	if cfg.RateLimit, err = strconv.Atoi(rate); err != nil || cfg.RateLimit < 0 {
		return Config{}, fmt.Errorf("--rate-limit: want a number of requests, 0 or more, got %q", rate)
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return Config{}, fmt.Errorf("--log-level: %w", err)
	}
	switch cfg.Store {
	case "file", "memory":
	case "redis":
		if redisURL == "" {
			return Config{}, errors.New("--store redis needs --redis-url (or PRESENCED_REDIS_URL)")
		}
	default:
		return Config{}, fmt.Errorf("--store: want file, memory or redis, got %q", cfg.Store)
	}
	cfg.RedisURL, cfg.NodeID = redisURL, nodeID
	if cfg.NodeID == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(cfg.Addr)
		cfg.NodeID = host + ":" + port
	}
	if cfg.RedisWaitReplicas, err = strconv.Atoi(waitReplicas); err != nil || cfg.RedisWaitReplicas < 0 {
		return Config{}, fmt.Errorf("--redis-wait-replicas: want a number of replicas, 0 or more, got %q", waitReplicas)
	}
	for _, o := range cfg.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			return Config{}, fmt.Errorf("--cors-origins: %w", err)
		}
	}
	if cfg.DevKeyFile == "" {
		cfg.DevKeyFile = data + "/dev-signing-key.pem"
	}
	return cfg, nil
}

// optBool is a boolean flag that knows whether it was given.
type optBool struct{ set, v bool }

func (b *optBool) String() string {
	if b == nil {
		return "false"
	}
	return strconv.FormatBool(b.v)
}

func (b *optBool) Set(s string) error {
	v, err := parseBool(s)
	if err != nil {
		return err
	}
	b.set, b.v = true, v
	return nil
}

// IsBoolFlag lets the flag be given without a value.
func (b *optBool) IsBoolFlag() bool { return true }

// checkOrigin accepts "*" or an origin: scheme://host[:port], nothing more.
func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("want * or origins such as https://app.example.com, got %q", o)
	}
	return nil
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "true", "yes", "on":
		return true, nil
	case "", "0", "false", "no", "off":
		return false, nil
	}
	return false, errors.New("want true or false, got " + strconv.Quote(s))
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
