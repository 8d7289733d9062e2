package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/redistest"
)

// Several nodes on a Redis Cluster (issue #8): the multi-node cases of
// conformance C13 again, with three presenced nodes whose --redis-url is
// the seed list of a three-master Redis Cluster on loopback, and a master
// failover under load.

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
	waitReady(t, c.nodes...)
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

// read reads the writer's own status message through node s (GET
// /me/presence with the writer's token): the status and, on 200, the
// message's content.
func (w *statusWriter) read(hc *http.Client, s *server) (int, string, error) {
	req, _ := http.NewRequest("GET", s.base+"/v1.0/me/presence", nil)
	req.Header.Set("Authorization", "Bearer "+w.token)
	res, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	var p struct {
		StatusMessage struct {
			Message struct{ Content string }
		}
	}
	if res.StatusCode == http.StatusOK {
		if err := json.NewDecoder(res.Body).Decode(&p); err != nil {
			return 0, "", err
		}
	}
	return res.StatusCode, p.StatusMessage.Message.Content, nil
}

// older reports whether content, a status message read back, comes from a
// write older than the last acknowledged one (the one attempted after it
// may have been applied without its answer arriving).
func (w *statusWriter) older(content string) bool {
	acked := w.acked.Load()
	if acked == 0 {
		return false
	}
	var k int64
	if _, err := fmt.Sscanf(content, "w%d", &k); err != nil {
		return true
	}
	return k < acked
}

// A master of a Redis Cluster (three masters, one replica each) is killed
// with kill -9 while 16 writers load three presenced nodes. The writes
// that land in the dead master's slots answer 503 with Retry-After in
// Graph's envelope until its replica has been promoted (cluster-node-
// timeout 2 s, then an election), and succeed again afterwards without
// any presenced node being restarted; writes to the other masters' slots
// go on throughout.
//
// What asynchronous replication can lose: a master answers a write once
// its own append-only file has it (appendfsync always) and streams it to
// its replica afterwards. A write acknowledged in the instant before the
// master died may not have reached the replica; the replica is promoted
// without it, and when the old master comes back it becomes the new
// master's replica and discards its own copy. The write is gone: the
// user reads the value before it, and the notices that write put in the
// user's outbox go with it. With --redis-wait-replicas 1 every write is
// followed by WAIT 1 in the same pipeline and answered 200 only when a
// replica acknowledged it, so a promoted replica has every acknowledged
// write; the price is that while a shard has no live replica (after its
// promotion, until the old master rejoins as a replica) its writes answer
// 503. The Wait1 case asserts that nothing acknowledged is lost; NoWait
// reports how much was.
func TestNodesRedisClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a six-node Redis Cluster")
	}
	for _, tc := range []struct {
		name  string
		extra []string
	}{
		{"Wait1", []string{"--redis-wait-replicas", "1"}},
		{"NoWait", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waitReplicas := tc.extra != nil
			rc := redistest.StartClusterReplicated(t)
			c := startNodesURL(t, rc.Seeds(), 3, append([]string{"--rate-limit", "0"}, tc.extra...)...)
			f := newFixture(t)
			writers := newStatusWriters(f, 16)
			okSince := make([]atomic.Int64, len(writers)) // acknowledged writes, per writer
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var total, unavailable, transport, lost, verified atomic.Int64
			var firstFail, lastFail atomic.Int64 // Unix ns
			for i, w := range writers {
				wg.Go(func() {
					hc := &http.Client{Timeout: 10 * time.Second}
					recheck := false
					for k := int64(1); ; k++ {
						select {
						case <-stop:
							return
						default:
						}
						node := c.nodes[(i+int(k))%3]
						if recheck {
							// The user's slot was unavailable: the first
							// successful read after it, before this writer
							// (the user's only one) writes again, says
							// whether the failover kept the last
							// acknowledged write. A later write would
							// hide a loss.
							status, got, err := w.read(hc, node)
							if err != nil || status != http.StatusOK {
								time.Sleep(20 * time.Millisecond)
								continue
							}
							recheck = false
							verified.Add(1)
							if w.older(got) {
								lost.Add(1)
								if waitReplicas {
									t.Errorf("user %s reads %q after the failover; w%d was acknowledged", short(w.user), got, w.acked.Load())
								} else {
									t.Logf("user %s reads %q after the failover; w%d was acknowledged: lost", short(w.user), got, w.acked.Load())
								}
							}
						}
						status, h, body, err := w.write(hc, node, k)
						switch {
						case err != nil:
							transport.Add(1)
						case status == http.StatusOK:
							total.Add(1)
							okSince[i].Add(1)
						case status == http.StatusServiceUnavailable:
							unavailable.Add(1)
							recheck = true
							now := time.Now().UnixNano()
							firstFail.CompareAndSwap(0, now)
							lastFail.Store(now)
							if !unavailableShaped(t, h, body) {
								return
							}
							time.Sleep(20 * time.Millisecond) // a client honouring Retry-After, shortened
						default:
							t.Errorf("write w%d through %s: %d %s", k, node.base, status, body)
							return
						}
					}
				})
			}
			defer func() {
				select {
				case <-stop:
				default:
					close(stop)
				}
				wg.Wait()
			}()
			eventually(t, 30*time.Second, func() bool { return total.Load() >= 300 }, func() string { return "the writers did not get going" })
			masters := rc.Masters()
			if len(masters) != 3 {
				t.Fatalf("%d masters before the kill, want 3", len(masters))
			}
			victim := masters[0]
			killed := time.Now()
			victim.Kill9()
			before := total.Load()
			eventually(t, 30*time.Second, func() bool { return len(rc.Masters()) == 3 },
				func() string { return "no replica was promoted after the master was killed" })
			promoted := time.Since(killed)
			// The old master comes back as the new one's replica: with
			// --redis-wait-replicas 1 its shard needs one again.
			victim.Restart()
			// Every writer, whichever master its user's slot is on, gets
			// writes acknowledged again, through the same presenced nodes.
			base := make([]int64, len(writers))
			for i := range writers {
				base[i] = okSince[i].Load()
			}
			eventually(t, 60*time.Second, func() bool {
				for i := range writers {
					if okSince[i].Load() < base[i]+5 {
						return false
					}
				}
				return true
			}, func() string {
				var stuck []string
				for i, w := range writers {
					if okSince[i].Load() < base[i]+5 {
						stuck = append(stuck, short(w.user))
					}
				}
				return fmt.Sprintf("writers of %v get no writes acknowledged after the failover (%d answered 503)", stuck, unavailable.Load())
			})
			close(stop)
			wg.Wait()
			if waitReplicas {
				for _, w := range writers {
					for _, n := range c.nodes {
						w.check(t, f, n)
					}
				}
			}
			if unavailable.Load() == 0 {
				t.Errorf("no write answered 503: the failover was not exercised (%d acknowledged)", total.Load())
			}
			window := time.Duration(0)
			if lf := lastFail.Load(); lf > 0 {
				window = time.Unix(0, lf).Sub(time.Unix(0, firstFail.Load()))
			}
			t.Logf("%s: %d writes acknowledged (%d after the kill), %d answered 503 over %v, %d transport errors; replica promoted %v after the kill; acknowledged writes lost in the failover: %d (checked after %d recoveries)",
				tc.name, total.Load(), total.Load()-before, unavailable.Load(), window.Round(time.Millisecond), transport.Load(),
				promoted.Round(time.Millisecond), lost.Load(), verified.Load())
		})
	}
}
