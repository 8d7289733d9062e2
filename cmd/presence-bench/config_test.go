package main

import (
	"bufio"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseConfig(t *testing.T) {
	c, err := parseConfig(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Scenarios, []string{"set", "get", "bulk", "mix"}) || !c.Spawn() || c.Duration != 10*time.Second || c.Warmup != time.Second {
		t.Errorf("defaults: %+v", c)
	}
	c, err = parseConfig([]string{"--smoke"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Scenarios, []string{"mix"}) || c.Duration != 2*time.Second || c.Users != 2000 {
		t.Errorf("smoke: %+v", c)
	}
	// bulk needs get to be judged; opt-in scenarios run only when named.
	c, err = parseConfig([]string{"--scenario", "bulk,timers"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Scenarios, []string{"get", "bulk", "timers"}) || c.usersFor("timers") != defaultScaleUsers || c.usersFor("get") != defaultLoadUsers {
		t.Errorf("bulk,timers: %+v", c)
	}
	for _, bad := range [][]string{
		{"--duration", "11m"},
		{"--connections", "0"},
		{"--scenario", "nope"},
		{"--scenario", "bulk", "--users", "100"},
		{"--url", "http://example.com:8080", "--data", "d"},
		{"--url", "http://127.0.0.1:8080"},
		{"--url", "http://127.0.0.1:8080", "--data", "d", "--scenario", "scale"},
		{"--url", "http://127.0.0.1:8080", "--spawn"},
		{"--rounds", "0"},
		{"--conns", "16,x"},
		{"--conns", "0,16"},
		{"--conns", "5000"},
		{"--conns", ","},
	} {
		if _, err := parseConfig(bad, io.Discard); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	// --conns: set and get at each, the rest at --connections.
	c, err = parseConfig([]string{"--conns", "16, 32,16,256", "--connections", "64"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.connsFor("set"), []int{16, 32, 256}) || !slices.Equal(c.connsFor("get"), []int{16, 32, 256}) ||
		!slices.Equal(c.connsFor("bulk"), []int{64}) || c.maxConns() != 256 {
		t.Errorf("--conns: %+v", c)
	}
	if c, _ := parseConfig(nil, io.Discard); !slices.Equal(c.connsFor("set"), []int{64}) || c.maxConns() != 64 {
		t.Errorf("without --conns: %v", c.Conns)
	}
	if _, err := parseConfig([]string{"--url", "http://[::1]:8080/", "--data", "d"}, io.Discard); err != nil {
		t.Errorf("IPv6 loopback refused: %v", err)
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP presenced_scheduler_fired_total Users re-evaluated.
# TYPE presenced_scheduler_fired_total counter
presenced_scheduler_fired_total 1.234567e+06
presenced_scheduler_lag_seconds 0.25
presenced_http_requests_total{method="GET",route="getPresence",status="200"} 42
`
	m, err := parseMetrics(bufio.NewScanner(strings.NewReader(text)))
	if err != nil {
		t.Fatal(err)
	}
	if m["presenced_scheduler_fired_total"] != 1234567 || m["presenced_scheduler_lag_seconds"] != 0.25 ||
		m[`presenced_http_requests_total{method="GET",route="getPresence",status="200"}`] != 42 {
		t.Errorf("parsed %v", m)
	}
}

func TestIDs(t *testing.T) {
	u := userIDs(7, 1000)
	if !slices.Equal(u, userIDs(7, 1000)) || slices.Equal(u[:10], userIDs(8, 10)) {
		t.Error("user ids are not a function of the seed")
	}
	seen := map[string]bool{}
	for _, id := range u {
		if len(id) != 36 || id[14] != '4' || seen[id] {
			t.Fatalf("bad or repeated id %q", id)
		}
		seen[id] = true
	}
	if a := appIDs(7, 3); a[0] != devApp || len(a) != 3 || a[1] == a[2] {
		t.Errorf("apps %q", a)
	}
	if got := thousands(1234567.4); got != "1,234,567" {
		t.Errorf("thousands = %q", got)
	}
}
