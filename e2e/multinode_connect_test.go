package e2e

import (
	"testing"
	"time"
)

// Client connections on several nodes sharing one Redis: a connection's
// session is a lease in the store, so when the node holding it dies
// (kill -9) the surviving nodes end the session within the grace window,
// and a subscription sees the user go Offline, once.
func TestNodesConnectKill9EndsSessionsOnSurvivors(t *testing.T) {
	c := startNodes(t, 3)
	f := newFixture(t)
	a, b := c.nodes[0], c.nodes[1]
	sk := newSink(t)
	t0 := nowOn(t, b)
	f.on(b).mustSubscribe("D1ra", richBody(subBody(userRes(f.U1), sk.URL, t0.Add(50*time.Minute))))

	// U1 connects to node A; U2, for comparison, to node B.
	connectAs(t, a, f.tok("D1rw"), "laptop", "availability", "Busy", "activity", "InACall")
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
