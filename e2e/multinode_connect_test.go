package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Client connections on several nodes sharing one Redis: a connection's
// session is a lease in the store, so when the node holding it dies
// (kill -9) the surviving nodes end the session within the grace window,
// and a subscription sees the user go Offline, once.
func TestNodesConnectKill9EndsSessionsOnSurvivors(t *testing.T) {
	c, f, sk := laptopOnFirstNode(t, 3)
	a, b := c.nodes[0], c.nodes[1]
	// U2, for comparison, connects to node B.
	connectAs(t, b, f.tok("D2rw"), "phone")
	for _, n := range c.nodes {
		f.on(n).wantPresence(f.U1, "Busy", "InACall")
		f.on(n).wantPresence(f.U2, "Available", "Available")
	}
	wantPairs(t, "connect", waitRich(t, sk, 1), f.U1, "Busy/InACall")

	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	// The session's lease was taken or renewed at most a third of the grace
	// window ago; within the window it still shows.
	advanceOn(t, b, "PT5S")
	f.on(b).wantPresence(f.U1, "Busy", "InACall")
	// Past the window it ends on every surviving node, once A's partitions
	// have new owners (their Redis leases run out on the real clock).
	advanceOn(t, b, "PT30S")
	for _, n := range c.nodes[1:] {
		f.on(n).eventuallyPresence(f.U1, "Offline", "Offline")
	}
	wantPairs(t, "kill -9", waitRich(t, sk, 2), f.U1, "Busy/InACall", "Offline/Offline")
	// The connection held by the node that advanced the clock lives on.
	f.on(b).wantPresence(f.U2, "Available", "Available")
	f.on(c.nodes[2]).wantPresence(f.U2, "Available", "Available")
}

// laptopOnFirstNode starts n nodes on one Redis, subscribes a sink to U1
// (rich notifications) through the second node, and connects U1's laptop
// to the first as Busy/InACall.
func laptopOnFirstNode(t *testing.T, n int) (*cluster, *fixture, *sink) {
	t.Helper()
	c := startNodes(t, n)
	f := newFixture(t)
	sk := newSink(t)
	b := c.nodes[1]
	f.on(b).mustSubscribe("D1ra", richBody(subBody(userRes(f.U1), sk.URL, nowOn(t, b).Add(50*time.Minute))))
	connectAs(t, c.nodes[0], f.tok("D1rw"), "laptop", "availability", "Busy", "activity", "InACall")
	return c, f, sk
}

// storedSession returns the stored connection session of user's device,
// read through s's state hook, or nil.
func storedSession(t *testing.T, s *server, tenant, user, device string) map[string]any {
	t.Helper()
	r := s.do(t, "GET", "/_test/tenants/"+tenant+"/state", "", nil)
	wantStatus(t, r, http.StatusOK)
	sessions, _ := r.get("users", user, "stored", "sessions")
	list, _ := sessions.([]any)
	for _, v := range list {
		if se, _ := v.(map[string]any); se["id"] == device {
			return se
		}
	}
	return nil
}

// On Redis a node holds its connections' sessions under one record of its
// own: a session names the node's holder and takes a long lease, and a
// closed connection's session is released with no holder. An advance of
// the test clock through another node extends the node's record too. A
// node whose record ran out while it lived (here stopped while the clock
// moved past it, so another node swept it) holds its sessions again under
// a new name, so that its users show online again.
func TestNodesConnectHeldUnderNodeRecord(t *testing.T) {
	c := startNodes(t, 2)
	f := newFixture(t)
	a, b := c.nodes[0], c.nodes[1]
	ws := connectAs(t, a, f.tok("D1rw"), "laptop", "availability", "Busy", "activity", "InACall")
	connectAs(t, a, f.tok("D2rw"), "phone")
	f.on(b).wantPresence(f.U1, "Busy", "InACall")

	t0 := nowOn(t, b)
	se := storedSession(t, b, f.T, f.U1, "laptop")
	holder, _ := se["holder"].(string)
	if !strings.HasPrefix(holder, "n1.") {
		t.Fatalf("the session held through n1 names holder %q (%v), want n1.…", holder, se)
	}
	if exp, err := time.Parse(time.RFC3339Nano, fmt.Sprint(se["expiresAt"])); err != nil || exp.Before(t0.Add(5*time.Minute)) {
		t.Errorf("a session held under a node's record expires at %v (%v), want a long lease", se["expiresAt"], err)
	}
	// The console's user record names the holder too.
	rec := f.on(b).get("/presenced/users/"+f.U1, "D1ra")
	wantStatus(t, rec, http.StatusOK)
	if got := rec.str("sessions", 0, "holder"); got != holder {
		t.Errorf("the console shows holder %q, want %q: %s", got, holder, rec)
	}

	// The clock moves a minute through B, past A's record and the grace
	// window: B asks A to extend its record before the clock moves, so A's
	// users never go offline and nothing is swept.
	advanceOn(t, b, "PT1M")
	f.on(b).wantPresence(f.U1, "Busy", "InACall")
	f.on(b).wantPresence(f.U2, "Available", "Available")
	if got, _ := storedSession(t, b, f.T, f.U1, "laptop")["holder"].(string); got != holder {
		t.Errorf("after an advance through another node the session names holder %q, want %q still", got, holder)
	}
	if n := metricValue(t, b, "presenced_connection_holder_sessions_swept_total"); n != 0 {
		t.Errorf("B swept %v sessions of a live node on an advance, want 0", n)
	}

	// A node that cannot answer (stopped, as a stalled process would be)
	// is found dead once the clock moves past its record: B ends its
	// sessions; A, running again, finds its record claimed and holds both
	// sessions again under a new name, so that its users show online again.
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	advanceOn(t, b, "PT1M")
	f.on(b).wantPresence(f.U1, "Offline", "Offline")
	resume()
	f.on(b).eventuallyPresence(f.U1, "Busy", "InACall")
	f.on(b).eventuallyPresence(f.U2, "Available", "Available")
	again, _ := storedSession(t, b, f.T, f.U1, "laptop")["holder"].(string)
	if !strings.HasPrefix(again, "n1.") || again == holder {
		t.Errorf("after A was swept its session names holder %q, want a new n1.… (was %q)", again, holder)
	}
	if n := metricValue(t, b, "presenced_connection_holder_sessions_swept_total"); n < 2 {
		t.Errorf("B swept %v sessions, want the 2 A held", n)
	}
	if n := metricValue(t, a, "presenced_connection_holder_renames_total"); n < 1 {
		t.Errorf("A took a new holder name %v times, want 1", n)
	}

	// A closed connection's session is released for the grace window, with
	// no holder: the sweep of A would not end it early.
	ws.bye()
	waitOpen(t, a, 1)
	if se := storedSession(t, b, f.T, f.U1, "laptop"); se == nil || se["holder"] != nil {
		t.Errorf("a released session: %v, want one without a holder", se)
	}
	f.on(b).wantPresence(f.U1, "Busy", "InACall")
	advanceOn(t, b, "PT31S")
	f.on(b).eventuallyPresence(f.U1, "Offline", "Offline")
}

// A device whose node dies (kill -9) and that reconnects to another node
// within the grace window resumes its session there with nothing visible:
// the same pair and sequenceNumber, no notification; and when the dead
// node's record is swept, the session, now held by the new node, lives on.
func TestNodesConnectResumeOnAnotherNodeAfterKill(t *testing.T) {
	c, f, sk := laptopOnFirstNode(t, 2)
	a, b := c.nodes[0], c.nodes[1]
	wantPairs(t, "connect", waitRich(t, sk, 1), f.U1, "Busy/InACall")
	seq := f.on(b).seqOf(f.U1)

	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	advanceOn(t, b, "PT10S")
	ws, res, err := dialWS(t, b, f.tok("D1rw"), "")
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, res)
	}
	ws.send(map[string]any{"type": "hello", "device": "laptop"})
	if r := ws.next("ready"); r["resumed"] != true {
		t.Fatalf("ready %v, want resumed", r)
	}
	// Past the dead node's record (and the grace window): still there.
	advanceOn(t, b, "PT1M")
	f.on(b).wantPresence(f.U1, "Busy", "InACall")
	if got := f.on(b).seqOf(f.U1); got != seq {
		t.Errorf("sequenceNumber moved from %s to %s on a resume through another node", seq, got)
	}
	// Nothing was notified meanwhile: the next notification is the next change.
	ws.send(map[string]any{"type": "state", "availability": "Away", "activity": "Away"})
	ws.sync()
	wantPairs(t, "after the resume", waitRich(t, sk, 2), f.U1, "Busy/InACall", "Away/Away")
}

// One node on Redis killed (kill -9) and started again: the new process is
// a new holder, and once the old one's record runs out it ends the old
// one's sessions, within the grace window.
func TestNodesConnectKill9RestartEndsSessions(t *testing.T) {
	c := startNodes(t, 1)
	f := newFixture(t)
	a := c.nodes[0]
	connectAs(t, a, f.tok("D1rw"), "laptop")
	f.on(a).wantPresence(f.U1, "Available", "Available")
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	again, err := startServerOn(strings.TrimPrefix(a.base, "http://"), c.args[0])
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	stopAtEnd(t, again, "the restarted node")
	waitReady(t, again)
	// The shared test clock did not move: the old record still stands.
	f.on(again).wantPresence(f.U1, "Available", "Available")
	advanceOn(t, again, "PT30S")
	f.on(again).eventuallyPresence(f.U1, "Offline", "Offline")
}
