package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/presenced/presenced/internal/redistest"
)

// Several nodes on one Redis (conformance C13): three presenced processes
// started with --store redis on a redis-server of the test's own (AOF,
// appendfsync always), each with its own --node-id; a client may send any
// request to any node.

// cluster is three presenced nodes on one redis-server.
type cluster struct {
	redis *redistest.Server
	nodes []*server
	args  [][]string
}

// startNodes starts a redis-server and n presenced nodes on it, with
// --test-hooks and extra flags.
func startNodes(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	return startNodesWith(t, nil, n, extra...)
}

// startNodesWith is startNodes on a redis-server started with redisArgs
// added to redistest's.
func startNodesWith(t *testing.T, redisArgs []string, n int, extra ...string) *cluster {
	t.Helper()
	r := redistest.Start(t, redisArgs...)
	c := &cluster{redis: r}
	for i := range n {
		args := hookedArgs(t, append([]string{"--store", "redis", "--redis-url", r.URL(), "--node-id", fmt.Sprintf("n%d", i+1)}, extra...)...)
		c.args = append(c.args, args)
		c.nodes = append(c.nodes, startRestartableServer(t, args))
	}
	waitReady(t, c.nodes...)
	return c
}

// unavailableShaped reports whether a 503 carries Graph's error envelope
// and Retry-After, and fails the test when it does not.
func unavailableShaped(t *testing.T, h http.Header, body []byte) bool {
	t.Helper()
	var env struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(body, &env) != nil || env.Error.Code == "" || h.Get("Retry-After") == "" {
		t.Errorf("a 503 without Graph's envelope or Retry-After: %v %s", h, body)
		return false
	}
	return true
}

// waitReady waits until every node's /readyz answers 200: it reaches Redis
// and hears the other nodes' changes.
func waitReady(t *testing.T, nodes ...*server) {
	t.Helper()
	for _, n := range nodes {
		var last string
		eventually(t, 30*time.Second, func() bool {
			res, err := http.Get(n.base + "/readyz")
			if err != nil {
				last = err.Error()
				return false
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			last = fmt.Sprintf("%d %s", res.StatusCode, b)
			return res.StatusCode == http.StatusOK
		}, func() string { return n.base + "/readyz: " + last })
	}
}

// startFunc starts n presenced nodes on one Redis with extra flags:
// startNodes on a standalone redis-server, startClusterNodes on a Redis
// Cluster. The multi-node tests take one, so the same body runs on both.
type startFunc func(t *testing.T, n int, extra ...string) *cluster

// on returns a copy of f that sends its requests to node s.
func (f *fixture) on(s *server) *fixture {
	g := *f
	g.s = s
	return &g
}

// ownedPartitions reads presenced_partitions_owned from a node's metrics.
func ownedPartitions(t testing.TB, s *server) int {
	t.Helper()
	res, err := http.Get(s.base + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "presenced_partitions_owned "); ok {
			var n float64
			fmt.Sscan(v, &n)
			return int(n)
		}
	}
	return -1
}

// C13 #130: a write on one node is read on every other at once, with the
// same sequenceNumber.
func TestNodesReadYourWrites(t *testing.T) { nodesReadYourWrites(t, startNodes) }

func nodesReadYourWrites(t *testing.T, start startFunc) {
	c := start(t, 3)
	f := newFixture(t)
	for i, w := range c.nodes {
		pair := [][2]string{{"Busy", "InACall"}, {"DoNotDisturb", "Presenting"}, {"Away", "Away"}}[i]
		f.on(w).mustSet(f.U1, pair[0], pair[1], "PT1H", "APPrw")
		want := f.on(w).getp(f.U1).str("sequenceNumber")
		for _, r := range c.nodes {
			g := f.on(r).getp(f.U1)
			if g.str("availability") != pair[0] || g.str("activity") != pair[1] || g.str("sequenceNumber") != want {
				t.Fatalf("written on %s, read on %s: %s/%s %s, want %s/%s %s", w.base, r.base,
					g.str("availability"), g.str("activity"), g.str("sequenceNumber"), pair[0], pair[1], want)
			}
		}
	}
}

// C13 #131: 16 writers spread over three nodes update one user; every
// answer is 200 and the last sequenceNumber is above every one seen.
// (It once found a node whose pub/sub handler read from Redis on the
// client's own reading goroutine: every request of that node waited 5 s
// and failed with 503.)
func TestNodesConcurrentWritersOneUser(t *testing.T) {
	nodesConcurrentWritersOneUser(t, startNodes)
}

func nodesConcurrentWritersOneUser(t *testing.T, start startFunc) {
	c := start(t, 3, "--rate-limit", "0")
	f := newFixture(t)
	tok := f.tok("APPrw")
	const writers, each = 16, 40
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for w := range writers {
		node := c.nodes[w%len(c.nodes)]
		wg.Go(func() {
			hc := &http.Client{Timeout: 20 * time.Second}
			for k := range each {
				a, b := "Busy", "InACall"
				if (w+k)%2 == 0 {
					a, b = "Available", "Available"
				}
				body, _ := json.Marshal(setBody(f.A, a, b, "PT1H"))
				req, _ := http.NewRequest("POST", node.base+"/v1.0/users/"+f.U1+"/presence/setPresence", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tok)
				res, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				msg, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", res.StatusCode, msg))
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d writes failed; first: %v", n, writers*each, firstErr.Load())
	}
	var seqs []string
	for _, n := range c.nodes {
		seqs = append(seqs, f.on(n).seqOf(f.U1))
	}
	if seqs[0] != seqs[1] || seqs[1] != seqs[2] {
		t.Fatalf("the nodes read different sequenceNumbers: %v", seqs)
	}
	// One more change, read on every node, is above all of them.
	f.on(c.nodes[2]).mustSet(f.U1, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
	for _, n := range c.nodes {
		if got := f.on(n).seqOf(f.U1); got <= seqs[0] {
			t.Fatalf("sequenceNumber %s after a change is not above %s", got, seqs[0])
		}
	}
}

// C13 #132: a fade that falls due is notified once, not once per node,
// whichever node advanced the clock and whichever holds the subscription.
func TestNodesFadeNotifiedOnce(t *testing.T) { nodesFadeNotifiedOnce(t, startNodes) }

func nodesFadeNotifiedOnce(t *testing.T, start startFunc) {
	c := start(t, 3)
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, c.nodes[0])
	f.on(c.nodes[1]).mustSet(f.U2, "Available", "Available", "PT1H", "APPrw")
	f.on(c.nodes[0]).mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
	advanceOn(t, c.nodes[2], "PT5M")
	sk.waitItems(t, 1, 20*time.Second)
	// A later change of the same user arrives after any duplicate of the
	// fade would have (notifications of one user keep their order).
	f.on(c.nodes[2]).mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	items := sk.waitItems(t, 2, 20*time.Second)
	if len(items) != 2 {
		t.Fatalf("the sink accepted %d notifications for one fade and one change, want 2: %s", len(items), sk.dump())
	}
	// Every node reads the faded then busy user the same way.
	for _, n := range c.nodes {
		f.on(n).wantPresence(f.U2, "Busy", "InACall")
	}
}

// C13 #133: a subscription created on one node is read, listed, patched
// and deleted through another.
func TestNodesSubscriptionAcrossNodes(t *testing.T) { nodesSubscriptionAcrossNodes(t, startNodes) }

func nodesSubscriptionAcrossNodes(t *testing.T, start startFunc) {
	c := start(t, 3)
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, c.nodes[0])
	r := f.on(c.nodes[0]).mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
	id := r.str("id")
	f2 := f.on(c.nodes[1])
	wantStatus(t, f2.get(f2.p("/subscriptions/%s", id), "D1ra"), http.StatusOK)
	list := f2.get(f2.p("/subscriptions"), "D1ra")
	wantStatus(t, list, http.StatusOK)
	if !strings.Contains(string(list.Body), id) {
		t.Fatalf("node 2 does not list the subscription %s made on node 1: %s", id, list.Body)
	}
	// The one-per-app rule holds across nodes.
	dup := f.on(c.nodes[2]).subscribe("D1ra", subBody(userRes(f.U3), sk.URL, t0.Add(50*time.Minute)))
	wantStatus(t, dup, http.StatusConflict)
	p := f2.s.do(t, "PATCH", f2.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"expirationDateTime": graphTime(t0.Add(55 * time.Minute))})
	wantStatus(t, p, http.StatusOK)
	g := f.on(c.nodes[2]).get(f.p("/subscriptions/%s", id), "D1ra")
	if exp := g.str("expirationDateTime"); !strings.HasPrefix(exp, t0.Add(55*time.Minute).UTC().Format("2006-01-02T15:04")) {
		t.Fatalf("node 3 reads expiry %s after node 2 patched it", exp)
	}
	d := f2.s.do(t, "DELETE", f2.p("/subscriptions/%s", id), f.tok("D1ra"), nil)
	wantStatus(t, d, http.StatusNoContent)
	wantStatus(t, f.on(c.nodes[0]).get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusNotFound)
	wantStatus(t, f.on(c.nodes[2]).get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusNotFound)
}

// C13 #134: the request budget of an (app, tenant) is one across nodes,
// and the test hook that sets it acts on every node.
func TestNodesThrottleShared(t *testing.T) { nodesThrottleShared(t, startNodes) }

func nodesThrottleShared(t *testing.T, start startFunc) {
	c := start(t, 3)
	r := c.nodes[1].do(t, "PUT", "/_test/limits", "", map[string]int{"presencePer30s": 5})
	wantStatus(t, r, http.StatusNoContent)
	f := newFixture(t)
	get := func(n int) *resp { return f.on(c.nodes[n]).get(f.p("/users/%s/presence", f.U1), "D1ra") }
	for _, n := range []int{0, 0, 1, 1, 1} {
		wantStatus(t, get(n), http.StatusOK)
	}
	wantStatus(t, get(2), http.StatusTooManyRequests)
	advanceOn(t, c.nodes[0], "PT30S")
	wantStatus(t, get(2), http.StatusOK)
}

// Every node serves the same JWKS for validationTokens, so a receiver does
// not care which node sent a notification.
func TestNodesShareSigningKey(t *testing.T) {
	c := startNodes(t, 3)
	var first string
	for _, n := range c.nodes {
		res, err := http.Get(n.base + "/.well-known/jwks.json")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if first == "" {
			first = string(body)
		} else if string(body) != first {
			t.Fatalf("nodes publish different JWKS:\n%s\n%s", first, body)
		}
	}
}

// Each partition is owned by one live node: the owned counts add up to
// 128 soon after start, and again after a node is killed.
func TestNodesPartitionsReowned(t *testing.T) {
	c := startNodes(t, 3)
	sum := func(nodes ...*server) int {
		total := 0
		for _, n := range nodes {
			total += ownedPartitions(t, n)
		}
		return total
	}
	eventually(t, 15*time.Second, func() bool { return sum(c.nodes...) == 128 },
		func() string { return fmt.Sprintf("partitions owned add up to %d, want 128", sum(c.nodes...)) })
	if err := c.nodes[1].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.nodes[1].exited
	eventually(t, 10*time.Second, func() bool { return sum(c.nodes[0], c.nodes[2]) == 128 },
		func() string {
			return fmt.Sprintf("after kill -9 of node 2 the others own %d partitions, want 128", sum(c.nodes[0], c.nodes[2]))
		})
}

// statusWriter is one user whose status message a test rewrites again and
// again, each write with its own content, so that what is read back says
// which write it came from.
type statusWriter struct {
	user, token      string
	acked, attempted atomic.Int64
}

// write sets the status message "w<k>" through node s; it reports whether
// the write was acknowledged (200).
func (w *statusWriter) write(hc *http.Client, s *server, k int64) (int, http.Header, []byte, error) {
	w.attempted.Store(k)
	body, _ := json.Marshal(statusText(fmt.Sprintf("w%d", k), nil))
	req, _ := http.NewRequest("POST", s.base+"/v1.0/me/presence/setStatusMessage", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+w.token)
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		w.acked.Store(k)
	}
	return res.StatusCode, res.Header, b, nil
}

// check reads the user's status message through node s: it must be the
// last acknowledged write or the one attempted after it (whose answer was
// lost), never an older one.
func (w *statusWriter) check(t *testing.T, f *fixture, s *server) {
	t.Helper()
	got := f.on(s).getp(w.user).str("statusMessage", "message", "content")
	acked, attempted := w.acked.Load(), w.attempted.Load()
	if acked == 0 {
		return
	}
	if got != fmt.Sprintf("w%d", acked) && got != fmt.Sprintf("w%d", attempted) {
		t.Errorf("user %s reads %q through %s; the last acknowledged write was w%d (w%d attempted)", short(w.user), got, s.base, acked, attempted)
	}
}

func newStatusWriters(f *fixture, n int) []*statusWriter {
	ws := make([]*statusWriter, n)
	for i := range ws {
		u := newGUID()
		ws[i] = &statusWriter{user: u, token: keys.Mint("RS256", f.delegated(f.T, u, f.A, "Presence.ReadWrite"))}
	}
	return ws
}

// C13 #135: kill -9 of one node while 16 writers load all three: every
// write any node acknowledged reads back through the others, and the dead
// node's partitions are owned again within seconds.
func TestNodesKillOneUnderLoad(t *testing.T) {
	c := startNodes(t, 3, "--rate-limit", "0")
	f := newFixture(t)
	writers := newStatusWriters(f, 16)
	var dead atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var total atomic.Int64
	for i, w := range writers {
		wg.Go(func() {
			hc := &http.Client{Timeout: 10 * time.Second}
			for k := int64(1); ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				node := c.nodes[(i+int(k))%3]
				if node == c.nodes[1] && dead.Load() {
					node = c.nodes[0]
				}
				status, _, body, err := w.write(hc, node, k)
				if err == nil && status != http.StatusOK {
					t.Errorf("write w%d through %s: %d %s", k, node.base, status, body)
					return
				}
				if err == nil {
					total.Add(1)
				}
			}
		})
	}
	eventually(t, 20*time.Second, func() bool { return total.Load() >= 300 }, func() string { return "the writers did not get going" })
	if err := c.nodes[1].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.nodes[1].exited
	dead.Store(true)
	after := total.Load()
	eventually(t, 20*time.Second, func() bool { return total.Load() >= after+300 }, func() string { return "the writers stopped after the kill" })
	close(stop)
	wg.Wait()
	for _, w := range writers {
		w.check(t, f, c.nodes[0])
		w.check(t, f, c.nodes[2])
	}
	eventually(t, 10*time.Second, func() bool { return ownedPartitions(t, c.nodes[0])+ownedPartitions(t, c.nodes[2]) == 128 },
		func() string { return "the surviving nodes do not own every partition" })
	t.Logf("%d writes acknowledged, %d of them after the kill", total.Load(), total.Load()-after)
}

// C13 #136: kill -9 of redis-server under load, three times, restarted on
// the same append-only file: while it is down the nodes answer 503 with
// Retry-After in Graph's envelope and are not ready; they recover by
// themselves, and every acknowledged write reads back.
func TestNodesRedisKilledUnderLoad(t *testing.T) {
	c := startNodes(t, 2, "--rate-limit", "0")
	f := newFixture(t)
	writers := newStatusWriters(f, 8)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var total, unavailable atomic.Int64
	for i, w := range writers {
		wg.Go(func() {
			hc := &http.Client{Timeout: 10 * time.Second}
			for k := int64(1); ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				status, h, body, err := w.write(hc, c.nodes[(i+int(k))%2], k)
				switch {
				case err != nil:
				case status == http.StatusOK:
					total.Add(1)
				case status == http.StatusServiceUnavailable:
					unavailable.Add(1)
					if !unavailableShaped(t, h, body) {
						return
					}
					time.Sleep(20 * time.Millisecond) // a client honouring Retry-After, shortened
				default:
					t.Errorf("write w%d: %d %s", k, status, body)
					return
				}
			}
		})
	}
	for round := range 3 {
		before := total.Load()
		eventually(t, 20*time.Second, func() bool { return total.Load() >= before+200 },
			func() string { return fmt.Sprintf("round %d: the writers are not writing", round) })
		c.redis.Kill9()
		eventually(t, 10*time.Second, func() bool {
			res, err := http.Get(c.nodes[0].base + "/readyz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode != http.StatusOK
		}, func() string { return "/readyz stayed 200 with Redis down" })
		c.redis.Restart()
		eventually(t, 20*time.Second, func() bool {
			res, err := http.Get(c.nodes[0].base + "/readyz")
			if err != nil {
				return false
			}
			res.Body.Close()
			return res.StatusCode == http.StatusOK
		}, func() string { return "the node is not ready again after Redis came back" })
	}
	before := total.Load()
	eventually(t, 20*time.Second, func() bool { return total.Load() >= before+100 }, func() string { return "no writes after the last restart" })
	close(stop)
	wg.Wait()
	for _, w := range writers {
		w.check(t, f, c.nodes[0])
		w.check(t, f, c.nodes[1])
	}
	t.Logf("%d writes acknowledged, %d answered 503 while Redis was down", total.Load(), unavailable.Load())
}

// An event stream on one node carries the changes made through the others,
// with the whole presence (a status message set on another node shows).
func TestNodesStreamSeesOtherNodes(t *testing.T) { nodesStreamSeesOtherNodes(t, startNodes) }

func nodesStreamSeesOtherNodes(t *testing.T, start startFunc) {
	c := start(t, 3)
	f := newFixture(t)
	_, es := openStreamAt(t, c.nodes[0], "/presenced/stream", f.tok("D1ra"), f.U2)
	if es == nil {
		t.Fatal("the stream was refused")
	}
	wantEvent(t, es.next(t), f.U2, "Offline/Offline") // the current presence first
	f.on(c.nodes[1]).mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	wantEvent(t, es.next(t), f.U2, "Busy/InACall")
	f.on(c.nodes[2]).mustSet(f.U2, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
	ev := es.next(t)
	wantEvent(t, ev, f.U2, "DoNotDisturb/Presenting")
	if want := f.on(c.nodes[0]).seqOf(f.U2); ev.ID != want {
		t.Errorf("the event's sequenceNumber %s, the node reads %s", ev.ID, want)
	}
}

// The console's board on one node follows the writes made on another:
// a change of the pair, then of the work location alone, then of the
// status message alone (no Graph event: they travel as quiet events).
func TestNodesConsoleSeesOtherNodes(t *testing.T) {
	c := startNodes(t, 2)
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	next := consoleEvents(t, ctx, c.nodes[1].base, f.tok("APPr"))
	if name, m := next(); name != "ready" || m["tenant"] != f.T {
		t.Fatalf("first event %s %v, want ready for %s", name, m, f.T)
	}
	a := f.on(c.nodes[0])
	a.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
	name, m := next()
	if name != "user" || m["id"] != f.U1 || m["availability"] != "Busy" {
		t.Fatalf("event %s %v, want user %s Busy", name, m, f.U1)
	}
	wantStatus(t, a.post("/beta/users/"+f.U1+"/presence/setManualLocation", "APPrw", map[string]any{"workLocationType": "office"}), http.StatusOK)
	name, m = next()
	if wl, _ := m["workLocation"].(map[string]any); name != "user" || m["id"] != f.U1 || wl["workLocationType"] != "office" {
		t.Fatalf("event %s %v, want user %s at work location office", name, m, f.U1)
	}
	wantStatus(t, a.post("/v1.0/users/"+f.U1+"/presence/setStatusMessage", "APPrw", map[string]any{
		"statusMessage": map[string]any{"message": map[string]any{"content": "across nodes", "contentType": "text"}}}), http.StatusOK)
	name, m = next()
	if name != "user" || m["id"] != f.U1 || !strings.Contains(fmt.Sprint(m["statusMessage"]), "across nodes") {
		t.Fatalf("event %s %v, want user %s with the status message", name, m, f.U1)
	}
}

// The Redis metrics a node exports: round trips, partitions owned, and the
// outbox lag, which grows while a receiver refuses notices and returns to
// zero once they are delivered.
func TestNodesRedisMetrics(t *testing.T) {
	c := startNodes(t, 1)
	n := c.nodes[0]
	f := newFixture(t).on(n)
	sk := newSink(t)
	sk.setAnswer(http.StatusServiceUnavailable)
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, nowOn(t, n).Add(50*time.Minute)))
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	eventually(t, 20*time.Second, func() bool { return metricValue(t, n, "presenced_outbox_pending_users") >= 1 },
		func() string { return "the outbox lag does not show the undelivered notice" })
	sk.setAnswer(http.StatusAccepted)
	advanceOn(t, n, "PT1M") // past the retry's backoff
	sk.waitItems(t, 1, 20*time.Second)
	eventually(t, 20*time.Second, func() bool { return metricValue(t, n, "presenced_outbox_pending_users") == 0 },
		func() string { return "the outbox lag stays above zero after delivery" })
	if v := metricValue(t, n, "presenced_partitions_owned"); v != 128 {
		t.Errorf("presenced_partitions_owned = %v on the only node, want 128", v)
	}
	res, _ := http.Get(n.base + "/metrics")
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "presenced_redis_roundtrip_seconds_count") {
		t.Error("no presenced_redis_roundtrip_seconds histogram")
	}
}
