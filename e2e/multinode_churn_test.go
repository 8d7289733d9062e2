package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Notifications while presenced nodes on one Redis come and go (issue #8):
// a node stopped gracefully, a node started, a node killed with kill -9,
// while writers change users through whichever nodes are up; and a fade of
// many users with three nodes up.

// liveNodes is the set of nodes the writers of a test send to; a test
// takes a node out before stopping it and puts a new one in once started.
type liveNodes struct {
	mu    sync.Mutex
	nodes []*server
}

// pick returns the live node for the nth request (round robin).
func (l *liveNodes) pick(n int) *server {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[n%len(l.nodes)]
}

func (l *liveNodes) remove(s *server) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = slices.DeleteFunc(l.nodes, func(n *server) bool { return n == s })
}

func (l *liveNodes) add(s *server) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = append(l.nodes, s)
}

// change names one change of a user: its sequenceNumber.
type change struct{ user, seq string }

// presenceOf is the part of a presence that the churn tests read.
type presenceOf struct {
	Availability, Activity, SequenceNumber string
}

// setVia sends setPresence(user, pair, session, PT1H) to node s with an
// application token; it returns the status, or an error when no answer
// came (the node went away).
func setVia(hc *http.Client, s *server, token, user, session, availability, activity string) (int, []byte, error) {
	body, _ := json.Marshal(setBody(session, availability, activity, "PT1H"))
	req, _ := http.NewRequest("POST", s.base+"/v1.0/users/"+user+"/presence/setPresence", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b, nil
}

// readVia reads a user's presence through node s.
func readVia(hc *http.Client, s *server, token, user string) (presenceOf, int, error) {
	var p presenceOf
	req, _ := http.NewRequest("GET", s.base+"/v1.0/users/"+user+"/presence", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return p, 0, err
	}
	defer res.Body.Close()
	if res.StatusCode == http.StatusOK {
		err = json.NewDecoder(res.Body).Decode(&p)
	}
	return p, res.StatusCode, err
}

// notified is what a sink of rich notifications received, decrypted once
// each: every (user, sequenceNumber) with the content of each copy, in
// the order received.
type notified struct {
	sk    *sink
	items []richItem // decrypted, in the order the sink accepted them
	raw   []string   // each item's decrypted content, as canonical JSON
}

// update decrypts the items the sink accepted since the last call.
func (n *notified) update(t testing.TB) {
	t.Helper()
	acc := n.sk.accepted()
	if len(acc) <= len(n.items) {
		return
	}
	for _, it := range richItems(t, acc[len(n.items):]) {
		b, _ := json.Marshal(it.Data) // map keys sorted: canonical
		n.items = append(n.items, it)
		n.raw = append(n.raw, string(b))
	}
}

// waitAll waits until every change in want has been notified at least
// once.
func (n *notified) waitAll(t testing.TB, want []change, within time.Duration) {
	t.Helper()
	var missing []change
	eventually(t, within, func() bool {
		n.update(t)
		seen := map[change]bool{}
		for _, it := range n.items {
			seen[change{it.User, it.Seq}] = true
		}
		missing = missing[:0]
		for _, c := range want {
			if !seen[c] {
				missing = append(missing, c)
			}
		}
		return len(missing) == 0
	}, func() string {
		var b strings.Builder
		for i, c := range missing {
			if i == 10 {
				fmt.Fprintf(&b, " …")
				break
			}
			fmt.Fprintf(&b, " %s@%s", short(c.user), c.seq)
		}
		return fmt.Sprintf("%d of %d acknowledged changes were never notified (%d items received):%s", len(missing), len(want), len(n.items), b.String())
	})
}

// duplicates returns, for the items received from index from on, those
// whose (user, sequenceNumber) was received before (at any index), and
// fails the test for any whose content differs from the first copy's.
func (n *notified) duplicates(t testing.TB, from int) []change {
	t.Helper()
	first := map[change]int{}
	var dups []change
	for i, it := range n.items {
		c := change{it.User, it.Seq}
		j, ok := first[c]
		if !ok {
			first[c] = i
			continue
		}
		if i < from {
			continue
		}
		dups = append(dups, c)
		if n.raw[i] != n.raw[j] {
			t.Errorf("the change %s@%s was notified twice with different content:\n%s\n%s", short(c.user), c.seq, n.raw[j], n.raw[i])
		}
	}
	return dups
}

// outOfOrder counts, among items [from, to), those whose sequenceNumber
// is not above the previous one received for the same user (copies of a
// change counted once).
func (n *notified) outOfOrder(from, to int) int {
	last := map[string]string{}
	seen := map[change]bool{}
	bad := 0
	for i := from; i < to; i++ {
		it := n.items[i]
		c := change{it.User, it.Seq}
		if seen[c] {
			continue
		}
		seen[c] = true
		if l, ok := last[it.User]; ok && seqLess(it.Seq, l) {
			bad++
		}
		last[it.User] = it.Seq
	}
	return bad
}

// seqLess orders sequenceNumbers: a letter then ten or more digits, so a
// longer one is the later one.
func seqLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// churnWriters is one writer per user, each alternating the user between
// two pairs through whichever nodes are live, so that every acknowledged
// write is one change of the user's visible pair; after each it reads the
// change's sequenceNumber back through a live node.
type churnWriters struct {
	t          *testing.T
	live       *liveNodes
	users      []string
	session    string
	wtok, rtok string
	mu         sync.Mutex
	acked      []change // every acknowledged change, in no order
	total      atomic.Int64
	retried    atomic.Int64 // writes sent again after no answer or a 503
	stop       chan struct{}
	wg         sync.WaitGroup
	next       []int // per user: the next write's number
	perUser    []atomic.Int64
}

// start sets the writers going until halt.
func (w *churnWriters) start() {
	w.stop = make(chan struct{})
	if w.next == nil {
		w.next = make([]int, len(w.users))
		w.perUser = make([]atomic.Int64, len(w.users))
	}
	for i, u := range w.users {
		w.wg.Go(func() { w.run(i, u) })
	}
}

// halt stops the writers and waits for them.
func (w *churnWriters) halt() {
	close(w.stop)
	w.wg.Wait()
}

// changes returns the acknowledged changes so far.
func (w *churnWriters) changes() []change {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acked)
}

// waitEach waits until every user has a change acknowledged after now.
func (w *churnWriters) waitEach(what string) {
	w.t.Helper()
	base := make([]int64, len(w.users))
	for i := range base {
		base[i] = w.perUser[i].Load()
	}
	eventually(w.t, 60*time.Second, func() bool {
		for i := range base {
			if w.perUser[i].Load() == base[i] {
				return false
			}
		}
		return true
	}, func() string { return what + ": some users get no write acknowledged" })
}

// waitMore waits until n more writes than now were acknowledged.
func (w *churnWriters) waitMore(n int64, what string) {
	w.t.Helper()
	target := w.total.Load() + n
	eventually(w.t, 60*time.Second, func() bool { return w.total.Load() >= target },
		func() string { return fmt.Sprintf("%s: %d writes acknowledged, want %d", what, w.total.Load(), target) })
}

func (w *churnWriters) run(i int, user string) {
	hc := &http.Client{Timeout: 10 * time.Second}
	pairs := [2][2]string{{"Available", "Available"}, {"Busy", "InACall"}}
	for n := i; ; n++ {
		select {
		case <-w.stop:
			return
		default:
		}
		k := w.next[i]
		pair := pairs[(k+1)%2] // Busy/InACall first: the user starts Offline
		// A write without an answer, or refused, is sent again with the
		// same pair: if the first attempt was applied, the second changes
		// nothing (the same pair is no visible change).
		status, body, err := setVia(hc, w.live.pick(n), w.wtok, user, w.session, pair[0], pair[1])
		if err != nil || status == http.StatusServiceUnavailable {
			w.retried.Add(1)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if status != http.StatusOK {
			w.t.Errorf("setPresence(%s, %s/%s): %d %s", short(user), pair[0], pair[1], status, body)
			return
		}
		// The change's sequenceNumber: this writer is the user's only one
		// and the clock stands still, so what any node reads now is it.
		var p presenceOf
		for m := n + 1; ; m++ {
			var st int
			p, st, err = readVia(hc, w.live.pick(m), w.rtok, user)
			if err == nil && st == http.StatusOK {
				break
			}
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
		if p.Availability != pair[0] || p.Activity != pair[1] {
			w.t.Errorf("user %s reads %s/%s after setPresence %s/%s was acknowledged", short(user), p.Availability, p.Activity, pair[0], pair[1])
			return
		}
		w.mu.Lock()
		w.acked = append(w.acked, change{user, p.SequenceNumber})
		w.mu.Unlock()
		w.next[i]++
		w.perUser[i].Add(1)
		w.total.Add(1)
	}
}

// "A subscription's notifications arrive exactly once per change while
// nodes come and go": a rich subscription on 24 users written through
// three nodes; one node is stopped gracefully (SIGTERM) and a new one
// started, then another is killed with kill -9. Every acknowledged change
// is notified at least once. Across the graceful stop and start each is
// notified exactly once, in order per user: a node gives a partition up
// only once its deliveries of it in flight have ended and been trimmed,
// and hands its queued notices to the new owner. After the kill a change
// may be notified again (the dead node may have delivered it without
// recording so; its partitions' new owner delivers what the outbox still
// holds), but only with the same content; the test counts and logs those
// copies.
func TestNodesNotifyOnceWhileNodesComeAndGo(t *testing.T) {
	extra := []string{"--rate-limit", "0"}
	c := startNodes(t, 3, extra...)
	waitSpread(t, c.nodes...)
	f := newFixture(t)
	users := make([]string, 24)
	for i := range users {
		users[i] = newGUID()
	}
	sk := newSink(t)
	// A slow receiver: each node's queue holds notices while a POST is in
	// flight, so a hand-over always finds deliveries in flight and
	// notices queued for the users it moves.
	sk.delay = 250 * time.Millisecond
	t0 := nowOn(t, c.nodes[0])
	f.on(c.nodes[0]).mustSubscribe("D1ra", richBody(subBody(bulkRes(users...), sk.URL, t0.Add(50*time.Minute))))
	live := &liveNodes{nodes: slices.Clone(c.nodes)}
	w := &churnWriters{t: t, live: live, users: users, session: f.A, wtok: f.tok("APPrw"), rtok: f.tok("APPr")}
	got := &notified{sk: sk}

	// Phase 1: a graceful stop of node 2 and a new node 4, under load.
	w.start()
	w.waitMore(150, "before the graceful stop")
	live.remove(c.nodes[1])
	if err := c.nodes[1].stop(); err != nil {
		t.Errorf("node 2 did not stop cleanly on SIGTERM: %v", err)
	}
	w.waitMore(100, "after the graceful stop")
	n4 := c.add(t, c.redis.URL(), "n4", extra...)
	waitReady(t, n4)
	live.add(n4)
	// Node 4 takes its share of the partitions from the others while the
	// writers go on.
	waitSpread(t, c.nodes[0], c.nodes[2], n4)
	w.waitMore(150, "after node 4 took its partitions")
	w.halt()
	phase1 := w.changes()
	got.waitAll(t, phase1, 30*time.Second)
	mark := len(got.items)
	if dups := got.duplicates(t, 0); len(dups) > 0 {
		t.Errorf("%d changes were notified twice across a graceful stop and start, first %s@%s", len(dups), short(dups[0].user), dups[0].seq)
	}
	if bad := got.outOfOrder(0, mark); bad > 0 {
		t.Errorf("%d notifications arrived after a later change of the same user (graceful stop and start)", bad)
	}

	// Phase 2: kill -9 of node 3, under load.
	w.start()
	w.waitMore(150, "before the kill")
	if err := c.nodes[2].cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-c.nodes[2].exited
	live.remove(c.nodes[2])
	w.waitMore(150, "after the kill")
	w.halt()
	all := w.changes()
	got.waitAll(t, all, 60*time.Second)
	// Copies that would come from the dead node's partitions are
	// delivered by now: wait until the owned partitions add up again and
	// a sweep of the outboxes has passed, then count.
	eventually(t, 20*time.Second, func() bool {
		return ownedPartitions(t, c.nodes[0])+ownedPartitions(t, n4) == 128
	}, func() string { return "the live nodes do not own every partition after the kill" })
	// One more change of every user, notified after whatever the new
	// owners still had to deliver of that user (one user's notifications
	// keep their order), so that every copy has arrived when it has.
	w.start()
	w.waitEach("after the partitions were owned again")
	w.halt()
	all = w.changes()
	got.waitAll(t, all, 30*time.Second)
	dups := got.duplicates(t, mark)
	late := 0
	for _, d := range dups {
		if !slices.Contains(all[len(phase1):], d) {
			late++
		}
	}
	t.Logf("%d changes acknowledged (%d in phase 1), %d writes sent again; %d notifications received, %d of them copies after the kill (%d of changes made before phase 2), %d out of order after the kill",
		len(all), len(phase1), w.retried.Load(), len(got.items), len(dups), late, got.outOfOrder(mark, len(got.items)))
}

// A fade fires once with three nodes up and many users: 2,000 users set
// Available through random nodes, watched by four bulk subscriptions of
// 500; the clock advanced PT5M on one node fades each to
// Available/AvailableInactive, and each user's subscription receives one
// notification for it, with the sequenceNumber every node reads; another
// PT5M fades each to Away, one more notification each, which arrives after
// any copy of the first one would have (one user's notifications keep
// their order). sequenceNumbers are floored by time, so "fired once" is
// counted in notifications, not read off the sequenceNumber's rise.
func TestNodesFadeOnceManyUsers(t *testing.T) {
	c := startNodes(t, 3, "--rate-limit", "0")
	// Steady state: each node owns its share of the partitions before the
	// fade (a hand-over of partitions is TestNodesNotifyOnceWhileNodesComeAndGo's).
	waitSpread(t, c.nodes...)
	f := newFixture(t)
	const nUsers, perSub = 2000, 500
	users := make([]string, nUsers)
	for i := range users {
		users[i] = newGUID()
	}
	wtok := f.tok("APPrw")
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 16 {
		wg.Go(func() {
			hc := &http.Client{Timeout: 20 * time.Second}
			for {
				i := int(next.Add(1)) - 1
				if i >= nUsers {
					return
				}
				node := c.nodes[rand.IntN(len(c.nodes))]
				status, body, err := setVia(hc, node, wtok, users[i], f.A, "Available", "Available")
				if err != nil || status != http.StatusOK {
					t.Errorf("setPresence through %s: %d %s %v", node.base, status, body, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	sk := newSink(t)
	t0 := nowOn(t, c.nodes[0])
	for s := 0; s < nUsers; s += perSub {
		// One subscription per (signed-in user, app): each by another user.
		tok := f.mint(f.delegated(f.T, newGUID(), f.A, "Presence.Read.All"))
		f.on(c.nodes[(s/perSub)%3]).mustSubscribeAs(tok, richBody(subBody(bulkRes(users[s:s+perSub]...), sk.URL, t0.Add(50*time.Minute))))
	}

	advanceOn(t, c.nodes[1], "PT5M")
	// Every node reads every user faded, with one sequenceNumber.
	seqs := map[string]string{}
	for ni, n := range c.nodes {
		for s := 0; s < nUsers; s += 500 {
			r := f.on(n).post(f.p("/communications/getPresencesByUserId"), "APPr", map[string]any{"ids": users[s : s+500]})
			wantStatus(t, r, http.StatusOK)
			var body struct {
				Value []struct{ ID, Availability, Activity, SequenceNumber string }
			}
			if err := json.Unmarshal(r.Body, &body); err != nil || len(body.Value) != 500 {
				t.Fatalf("getPresencesByUserId through node %d: %v, %d values", ni+1, err, len(body.Value))
			}
			for _, p := range body.Value {
				if p.Availability != "Available" || p.Activity != "AvailableInactive" {
					t.Fatalf("node %d reads %s as %s/%s after PT5M, want Available/AvailableInactive", ni+1, short(p.ID), p.Availability, p.Activity)
				}
				if prev, ok := seqs[p.ID]; ok && prev != p.SequenceNumber {
					t.Fatalf("nodes read %s with sequenceNumbers %s and %s", short(p.ID), prev, p.SequenceNumber)
				}
				seqs[p.ID] = p.SequenceNumber
			}
		}
	}
	got := &notified{sk: sk}
	var count map[string]map[string]int // user → pair → notifications
	// waitPair waits until every user was notified of pair at least once.
	waitPair := func(pair string) {
		t.Helper()
		var missing []string
		eventually(t, 60*time.Second, func() bool {
			got.update(t)
			count = map[string]map[string]int{}
			for _, it := range got.items {
				if count[it.User] == nil {
					count[it.User] = map[string]int{}
				}
				count[it.User][it.pair()]++
			}
			missing = missing[:0]
			for _, u := range users {
				if count[u][pair] == 0 {
					missing = append(missing, u)
				}
			}
			return len(missing) == 0
		}, func() string {
			pairs := map[string]int{}
			for _, it := range got.items {
				pairs[it.pair()]++
			}
			var first map[string]int
			if len(missing) > 0 {
				first = count[missing[0]]
			}
			return fmt.Sprintf("%d notifications %v; %d users were not notified of %s, first %v (received %v)", len(got.items), pairs, len(missing), pair, missing[:min(len(missing), 5)], first)
		})
	}
	waitPair("Available/AvailableInactive")
	advanceOn(t, c.nodes[2], "PT5M")
	waitPair("Away/Away")
	var twice []string
	for _, u := range users {
		if n := count[u]["Available/AvailableInactive"]; n != 1 {
			twice = append(twice, fmt.Sprintf("%s×%d", short(u), n))
		}
		if len(count[u]) != 2 || count[u]["Away/Away"] != 1 {
			t.Errorf("user %s received %v, want one Available/AvailableInactive and one Away/Away", short(u), count[u])
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Errorf("%d users' first fade was not notified exactly once: %v", len(twice), twice[:min(len(twice), 10)])
	}
	for _, it := range got.items {
		if it.pair() == "Available/AvailableInactive" && it.Seq != seqs[it.User] {
			t.Errorf("user %s: the fade was notified as %s, the nodes read %s", short(it.User), it.Seq, seqs[it.User])
		}
	}
	t.Logf("%d users, %d notifications for two fades", nUsers, len(got.items))
}

// waitSpread waits until every node owns partitions and together they own
// all 128: the first node started owns them all until the others have
// been live for a while.
func waitSpread(t *testing.T, nodes ...*server) {
	t.Helper()
	var owned []int
	eventually(t, 30*time.Second, func() bool {
		owned = owned[:0]
		sum := 0
		for _, n := range nodes {
			o := ownedPartitions(t, n)
			owned = append(owned, o)
			if o <= 0 {
				return false
			}
			sum += o
		}
		return sum == 128
	}, func() string { return fmt.Sprintf("the nodes own %v partitions, want all 128 shared by all", owned) })
}

// A subscription created on one node is honoured by every node that
// delivers: its users' partitions are owned by all three nodes, and the
// changes are made through the node that created it, so the other owners
// learn of both only through Redis.
func TestNodesSubscriptionSeenByEveryOwner(t *testing.T) {
	c := startNodes(t, 3)
	waitSpread(t, c.nodes...)
	f := newFixture(t)
	users := make([]string, 30)
	for i := range users {
		users[i] = newGUID()
	}
	sk := newSink(t)
	t0 := nowOn(t, c.nodes[0])
	f.on(c.nodes[0]).mustSubscribe("D1ra", richBody(subBody(bulkRes(users...), sk.URL, t0.Add(50*time.Minute))))
	for _, u := range users {
		f.on(c.nodes[0]).mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
	}
	got := &notified{sk: sk}
	var missing []string
	eventually(t, 20*time.Second, func() bool {
		got.update(t)
		seen := map[string]bool{}
		for _, it := range got.items {
			seen[it.User] = true
		}
		missing = missing[:0]
		for _, u := range users {
			if !seen[u] {
				missing = append(missing, short(u))
			}
		}
		return len(missing) == 0
	}, func() string {
		return fmt.Sprintf("%d of %d users' changes were never notified: %v", len(missing), len(users), missing)
	})
	if len(got.items) != len(users) {
		t.Errorf("%d notifications for %d changes", len(got.items), len(users))
	}
}
