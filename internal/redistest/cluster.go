package redistest

import (
	"fmt"
	"github.com/presenced/presenced/internal/redisprobe"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Cluster is a Redis Cluster of three masters on loopback ports (and, from
// StartClusterReplicated, one replica each), every node with the
// append-only file fsynced on every write.
type Cluster struct {
	// Nodes are the servers: the three masters first, in the order their
	// slots ascend, then the replicas.
	Nodes []*Server
}

// Seeds returns the comma-separated "host:port" list of every node, the
// form presenced's --redis-url takes for Redis Cluster.
func (c *Cluster) Seeds() string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr()
	}
	return strings.Join(addrs, ",")
}

// StartCluster starts three redis-server processes with cluster mode on,
// joins them with redis-cli --cluster create, waits until every node
// reports cluster_state:ok, and returns the cluster. The servers stop at
// the test's cleanup.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, 0)
}

// StartClusterReplicated is StartCluster with one replica per master
// (six servers), for failover tests: kill a master and its replica takes
// over within a few seconds (cluster-node-timeout is 2 s).
func StartClusterReplicated(t testing.TB) *Cluster {
	t.Helper()
	return startCluster(t, 1)
}

func startCluster(t testing.TB, replicas int) *Cluster {
	t.Helper()
	bin, cli := Binaries(t)
	var c Cluster
	var addrs []string
	for range 3 * (1 + replicas) {
		dir, err := os.MkdirTemp("", "redistest-cluster")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		port := freeClusterPort(t)
		s := &Server{t: t, bin: bin, dir: dir, port: port, args: append([]string{
			"--port", strconv.Itoa(port),
			"--bind", "127.0.0.1",
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
		}, redisprobe.DurableArgs(dir, filepath.Join(dir, "redis.log"))...)}
		t.Cleanup(s.Stop)
		if err := s.start(); err != nil {
			t.Fatal(err)
		}
		c.Nodes = append(c.Nodes, s)
		addrs = append(addrs, s.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(startTimeout)
	for _, n := range c.Nodes {
		for {
			info, err := n.Do("CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster node %s not ok after %v: %q %v", n.Addr(), startTimeout, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, n := range c.Nodes {
		for {
			role, err := n.Do("ROLE")
			if err == nil && (strings.HasPrefix(role, "master") || strings.Contains(role, "\nconnected\n")) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster node %s: replication not up after %v: %q %v", n.Addr(), startTimeout, role, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return &c
}

// Masters returns the nodes that are masters now (after a failover, a
// former replica).
func (c *Cluster) Masters() []*Server {
	var ms []*Server
	for _, n := range c.Nodes {
		if role, err := n.Do("ROLE"); err == nil && strings.HasPrefix(role, "master") {
			ms = append(ms, n)
		}
	}
	return ms
}

// freeClusterPort returns a loopback port that is free, and whose cluster
// bus port (port + 10000) is free too.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+10000))
		if err != nil {
			l.Close()
			continue
		}
		bus.Close()
		l.Close()
		return port
	}
	t.Fatal(fmt.Errorf("redistest: no free port pair for a cluster node"))
	return 0
}

// StartReplicated starts a master (on its Unix socket and on a loopback TCP
// port, which its replica needs) and one replica of it, and waits until
// the replica's link is up. Both have the settings of Start.
func StartReplicated(t testing.TB) (master, replica *Server) {
	t.Helper()
	port := freeClusterPort(t)
	master = Start(t, "--port", strconv.Itoa(port), "--bind", "127.0.0.1")
	replica = Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(startTimeout)
	for replica.Info("master_link_status") != "up" {
		if time.Now().After(deadline) {
			t.Fatalf("redis replica link not up after %v", startTimeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return master, replica
}
