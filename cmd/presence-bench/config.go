package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds of the flags, so that a typo cannot start an hour of load.
const (
	maxDuration    = 10 * time.Minute
	maxConnections = 4096
	maxUsers       = 5_000_000
	maxApps        = 64
	maxRounds      = 9
	// defaultLoadUsers is --users for set, get, bulk and mix when not given.
	defaultLoadUsers = 10_000
	// defaultScaleUsers is --users for scale and timers when not given.
	defaultScaleUsers = 1_000_000
	// maxRate bounds --rate.
	maxRate = 100_000
)

// Config is everything presence-bench runs with.
type Config struct {
	Scenarios   []string
	Duration    time.Duration
	Warmup      time.Duration
	Connections int
	// Conns are the concurrencies the set and get scenarios run at, each
	// with its own paired baseline (--conns); by default just Connections.
	// The other scenarios run at Connections.
	Conns []int
	// Rounds is how many times each load run is repeated, alternating
	// with its baseline; the median is reported.
	Rounds int
	// MaxOtherCPU is the CPU, in cores, other processes may use during a
	// load round before it is run again; negative never repeats.
	MaxOtherCPU float64
	// Users is the number of distinct users; 0 means each scenario's
	// default.
	Users int
	Apps  int
	Seed  uint64
	// Rate is the changes per second the webhook scenario sends.
	Rate float64
	// URL is the presenced to measure; empty means spawn one.
	URL string
	// DataDir holds the development signing key of the presenced at URL.
	DataDir string
	// Presenced is a presenced binary to use instead of building one.
	Presenced   string
	Baseline    bool
	JSON        bool
	JSONFile    string
	Check       bool
	Smoke       bool
	ProfileDir  string
	MaxRequests int64
	Verbose     bool
	// Keep leaves the temporary directory (binary, data dirs) in place.
	Keep bool
	// Store is the spawned presenced's store: "file" or "redis" (the tool
	// then starts a redis-server of its own and Nodes presenced on it).
	Store string
	Nodes int
}

// Spawn reports whether the tool starts presenced itself.
func (c Config) Spawn() bool { return c.URL == "" }

// usersFor returns the number of users scenario runs with.
func (c Config) usersFor(scenario string) int {
	if c.Users > 0 {
		return c.Users
	}
	if scenario == "webhook" {
		return defaultWebhookUsers
	}
	if scenario == "connections" {
		return defaultConnections
	}
	if isOptIn(scenario) {
		return defaultScaleUsers
	}
	return defaultLoadUsers
}

// parseConfig reads the command line.
func parseConfig(args []string, stderr io.Writer) (Config, error) {
	fs := flag.NewFlagSet("presence-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c Config
	var scenario string
	var spawn bool
	var conns string
	fs.StringVar(&scenario, "scenario", strings.Join(defaultScenarios(), ","), "comma-separated scenarios: "+scenarioHelp())
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured time of each load run (at most 10m)")
	c.Warmup = -1
	fs.Var((*autoDuration)(&c.Warmup), "warmup", "`duration` of unmeasured load before each run; auto is a fifth of --duration, at most 1s")
	fs.IntVar(&c.Connections, "connections", 64, "concurrent connections, one request in flight on each")
	fs.StringVar(&conns, "conns", "", "comma-separated concurrencies to run set and get at, each against its own baseline, e.g. 16,32,64,256 (default: --connections); bulk and mix run at --connections")
	fs.IntVar(&c.Rounds, "rounds", 1, "repeat each load run, alternating with its baseline, and report the median (for noisy machines)")
	fs.Float64Var(&c.MaxOtherCPU, "max-other-cpu", 0.25, "run a load round again (up to 3 times) when other processes used more than this many cores meanwhile; negative never")
	fs.IntVar(&c.Users, "users", 0, fmt.Sprintf("distinct users (default %d; %d for scale and timers; %d, %d subscriptions of %d, for webhook)",
		defaultLoadUsers, defaultScaleUsers, defaultWebhookUsers, defaultWebhookUsers/subscriptionUsers, subscriptionUsers))
	fs.Float64Var(&c.Rate, "rate", defaultRate, "webhook: setPresence changes per second, sent open loop to the subscribed users")
	fs.IntVar(&c.Apps, "apps", 4, "applications, each with its own token and session per user")
	fs.Uint64Var(&c.Seed, "seed", 1, "seed of the user and app ids and of the request choices")
	fs.StringVar(&c.URL, "url", "", "base URL of a running presenced on this machine, in development auth mode (default: spawn one)")
	fs.BoolVar(&spawn, "spawn", false, "build and start presenced on a temporary data dir with --rate-limit 0 (the default without --url)")
	fs.StringVar(&c.DataDir, "data", "", "with --url: the server's --data dir, whose development key mints the tokens")
	fs.StringVar(&c.Presenced, "presenced", "", "presenced binary to run (default: go build ./cmd/presenced of this module)")
	fs.BoolVar(&c.Baseline, "baseline", true, "measure a bare net/http server too and report ratios to it")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON instead of a table")
	fs.StringVar(&c.JSONFile, "json-file", "", "also write the report as JSON to this file")
	fs.BoolVar(&c.Check, "check", false, "exit with status 2 when a goal is missed")
	fs.BoolVar(&c.Smoke, "smoke", false, "a few seconds of mix for CI (--duration 2s --scenario mix --connections 8 --users 2000 --max-other-cpu -1); checks no goal")
	fs.StringVar(&c.ProfileDir, "cpuprofile", "", "save a CPU profile of the spawned presenced during each load run into this directory")
	fs.Int64Var(&c.MaxRequests, "max-requests", 100_000_000, "upper bound on the requests of one run")
	fs.BoolVar(&c.Verbose, "v", false, "log progress in detail")
	fs.BoolVar(&c.Keep, "keep", false, "keep the temporary directory (presenced binary, data dirs) for inspection")
	fs.StringVar(&c.Store, "store", storeFile, "store of the spawned presenced: file, or redis (the tool starts a redis-server with appendfsync always, and --nodes presenced on it; the baseline is then the same Redis work without HTTP)")
	fs.IntVar(&c.Nodes, "nodes", 1, fmt.Sprintf("with --store redis: presenced nodes sharing the redis-server, requests (or the connections scenario's connections) round-robin over them (1 to %d)", maxNodes))
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.Smoke {
		if !set["duration"] {
			c.Duration = 2 * time.Second
		}
		if !set["scenario"] {
			scenario = "mix"
		}
		if !set["connections"] {
			c.Connections = 8
		}
		if !set["users"] {
			c.Users = 2000
		}
		if !set["max-other-cpu"] {
			c.MaxOtherCPU = -1 // CI machines are shared: never repeat
		}
	}
	if spawn && c.URL != "" {
		return Config{}, errors.New("--spawn and --url are exclusive")
	}
	var err error
	if c.Scenarios, err = parseScenarios(scenario); err != nil {
		return Config{}, err
	}
	if c.Conns, err = parseConns(conns, c.Connections); err != nil {
		return Config{}, err
	}
	if c.Warmup < 0 {
		c.Warmup = min(c.Duration/5, time.Second)
	}
	return c, c.validate()
}

// validate checks the bounds of c.
func (c Config) validate() error {
	switch {
	case c.Duration < 100*time.Millisecond || c.Duration > maxDuration:
		return fmt.Errorf("--duration: want 100ms to %v, got %v", maxDuration, c.Duration)
	case c.Warmup > maxDuration:
		return fmt.Errorf("--warmup: want at most %v, got %v", maxDuration, c.Warmup)
	case c.Connections < 1 || c.Connections > maxConnections:
		return fmt.Errorf("--connections: want 1 to %d, got %d", maxConnections, c.Connections)
	case c.Rounds < 1 || c.Rounds > maxRounds:
		return fmt.Errorf("--rounds: want 1 to %d, got %d", maxRounds, c.Rounds)
	case c.Users < 0 || c.Users > maxUsers:
		return fmt.Errorf("--users: want 0 to %d, got %d", maxUsers, c.Users)
	case c.Apps < 1 || c.Apps > maxApps:
		return fmt.Errorf("--apps: want 1 to %d, got %d", maxApps, c.Apps)
	case c.Rate <= 0 || c.Rate > maxRate:
		return fmt.Errorf("--rate: want more than 0 and at most %d changes/s, got %g", maxRate, c.Rate)
	case c.MaxRequests < 1:
		return fmt.Errorf("--max-requests: want at least 1, got %d", c.MaxRequests)
	}
	for _, n := range c.Conns {
		if n < 1 || n > maxConnections {
			return fmt.Errorf("--conns: want 1 to %d each, got %d", maxConnections, n)
		}
	}
	if err := c.validateStore(); err != nil {
		return err
	}
	for _, s := range c.Scenarios {
		if needsBulkIDs(s) && c.usersFor(s) < bulkIDs {
			return fmt.Errorf("--users: scenario %s reads %d distinct users at once: want at least %d", s, bulkIDs, bulkIDs)
		}
	}
	if c.URL != "" {
		if err := checkLoopback(c.URL); err != nil {
			return err
		}
		if c.DataDir == "" {
			return errors.New("--url needs --data: the server's data dir, whose development key mints the tokens")
		}
		if slices.Contains(c.Scenarios, "scale") {
			return errors.New("scenario scale measures the server's memory and restarts it: it needs --spawn, not --url")
		}
		if slices.Contains(c.Scenarios, "webhook") {
			return errors.New("scenario webhook starts presenced with --webhook-ca-file so that it trusts the tool's receiver: it needs --spawn, not --url")
		}
		if c.ProfileDir != "" {
			return errors.New("--cpuprofile needs --spawn (profile a server of your own with its --pprof)")
		}
	}
	return nil
}

// parseConns reads --conns: positive integers separated by commas, in the
// order given, without repeats. Empty means just def (--connections).
func parseConns(list string, def int) ([]int, error) {
	if strings.TrimSpace(list) == "" {
		return []int{def}, nil
	}
	var out []int
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("--conns: %q is not a number of connections", f)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--conns: no concurrency in %q", list)
	}
	return out, nil
}

// maxConns is the largest concurrency any load run of c uses: what the
// HTTP clients must allow.
func (c Config) maxConns() int {
	n := c.Connections
	for _, k := range c.Conns {
		n = max(n, k)
	}
	return n
}

// connsFor returns the concurrencies scenario runs at: --conns for set and
// get, --connections for the others.
func (c Config) connsFor(scenario string) []int {
	if (scenario == "set" || scenario == "get") && len(c.Conns) > 0 {
		return c.Conns
	}
	return []int{c.Connections}
}

// checkLoopback refuses a URL that does not name this machine: the tool
// sends load to 127.0.0.1 only.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("--url: want http://127.0.0.1:port, got %q", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--url: %s is not a loopback address; presence-bench loads this machine only", host)
}

// autoDuration is a duration flag whose negative value means "auto".
type autoDuration time.Duration

func (d *autoDuration) String() string {
	if *d < 0 {
		return "auto"
	}
	return time.Duration(*d).String()
}

func (d *autoDuration) Set(s string) error {
	if s == "auto" {
		*d = -1
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return errors.New("negative duration")
	}
	*d = autoDuration(v)
	return nil
}
