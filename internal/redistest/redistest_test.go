package redistest

import (
	"strings"
	"testing"
)

func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	if !strings.HasPrefix(s.URL(), "unix://") || s.PID() == 0 {
		t.Fatalf("URL %q PID %d", s.URL(), s.PID())
	}
	if got := s.MustDo("CONFIG", "GET", "appendfsync"); got != "appendfsync\nalways" {
		t.Errorf("appendfsync = %q", got)
	}
	s.MustDo("SET", "k", "v")
	s.Kill9()
	if s.PID() != 0 {
		t.Error("PID after Kill9")
	}
	if _, err := s.Do("PING"); err == nil {
		t.Error("PING answered after Kill9")
	}
	s.Restart()
	if got := s.MustDo("GET", "k"); got != "v" {
		t.Errorf("after restart GET k = %q, want v (appendfsync always)", got)
	}
}

func TestCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := StartCluster(t)
	if n := len(strings.Split(c.Seeds(), ",")); n != 3 {
		t.Fatalf("Seeds %q", c.Seeds())
	}
	if info := c.Nodes[0].MustDo("CLUSTER", "INFO"); !strings.Contains(info, "cluster_size:3") {
		t.Errorf("CLUSTER INFO: %s", info)
	}
}

func TestClusterReplicated(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	c := StartClusterReplicated(t)
	if len(c.Nodes) != 6 || len(c.Masters()) != 3 {
		t.Fatalf("%d nodes, %d masters", len(c.Nodes), len(c.Masters()))
	}
}
