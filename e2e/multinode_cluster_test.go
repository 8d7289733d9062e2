package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/presenced/presenced/internal/redistest"
)

// Several nodes on a Redis Cluster (issue #8): the multi-node cases of
// conformance C13 again, with three presenced nodes whose --redis-url is
// the seed list of a three-master Redis Cluster on loopback, and a master
// failover under load (multinode_failover_test.go).

// startClusterNodesOn returns a startFunc that starts presenced nodes on
// the Redis Cluster rc, after emptying it (the previous subtest's nodes
// are gone by then: a subtest's cleanup kills them), so that each subtest
// starts from a fresh service as startNodes does. When the test ends it
// fails if any node logged a CROSSSLOT error.
func startClusterNodesOn(rc *redistest.Cluster) startFunc {
	return func(t *testing.T, n int, extra ...string) *cluster {
		t.Helper()
		for _, m := range rc.Masters() {
			m.MustDo("FLUSHALL")
		}
		return startNodesURL(t, rc.Seeds(), n, extra...)
	}
}

// startNodesURL starts n presenced nodes (node ids n1, n2, …) on the Redis
// at url, with --test-hooks and extra flags. When the test ends it fails
// if any node logged a CROSSSLOT error: every multi-key command must stay
// within one Cluster slot.
func startNodesURL(t *testing.T, url string, n int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{}
	for i := range n {
		c.add(t, url, fmt.Sprintf("n%d", i+1), extra...)
	}
	t.Cleanup(func() { noCrossSlot(t, c.nodes...) })
	return c
}

// add starts one more node with the given id on the Redis at url.
func (c *cluster) add(t *testing.T, url, id string, extra ...string) *server {
	t.Helper()
	args := hookedArgs(t, append([]string{"--store", "redis", "--redis-url", url, "--node-id", id}, extra...)...)
	s := startRestartableServer(t, args)
	c.args = append(c.args, args)
	c.nodes = append(c.nodes, s)
	return s
}

// noCrossSlot fails the test when a node's log mentions CROSSSLOT.
func noCrossSlot(t *testing.T, nodes ...*server) {
	t.Helper()
	for i, s := range nodes {
		for _, line := range strings.Split(s.log.String(), "\n") {
			if strings.Contains(line, "CROSSSLOT") {
				t.Errorf("node %d (%s) logged a CROSSSLOT error: %s", i+1, s.base, line)
				break
			}
		}
	}
}

// noCrossSlotServed fails the test when a Redis server answered any
// command with CROSSSLOT (its INFO errorstats counts every error reply by
// its first word), whether or not a node logged it.
func noCrossSlotServed(t *testing.T, rc *redistest.Cluster) {
	t.Helper()
	for _, n := range rc.Nodes {
		stats, err := n.Do("INFO", "errorstats")
		if err != nil {
			continue // a node killed by the test
		}
		for _, line := range strings.Split(stats, "\n") {
			if strings.Contains(line, "CROSSSLOT") {
				t.Errorf("redis node %s answered CROSSSLOT: %s", n.Addr(), strings.TrimSpace(line))
			}
		}
	}
}

// The multi-node cases of C13 on a three-master Redis Cluster: the same
// test bodies as on one redis-server, with --redis-url the cluster's seed
// list. One cluster serves every subtest, emptied between them.
func TestNodesOnRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Redis Cluster and three presenced nodes per case")
	}
	rc := redistest.StartCluster(t)
	start := startClusterNodesOn(rc)
	for _, tc := range []struct {
		name string
		body func(*testing.T, startFunc)
	}{
		{"ReadYourWrites", nodesReadYourWrites},
		{"ConcurrentWritersOneUser", nodesConcurrentWritersOneUser},
		{"FadeNotifiedOnce", nodesFadeNotifiedOnce},
		{"SubscriptionAcrossNodes", nodesSubscriptionAcrossNodes},
		{"ThrottleShared", nodesThrottleShared},
		{"StreamSeesOtherNodes", nodesStreamSeesOtherNodes},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.body(t, start) })
	}
	noCrossSlotServed(t, rc)
}
