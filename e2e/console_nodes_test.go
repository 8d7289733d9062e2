package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The delivery log is shared through Redis: whichever node delivers a
// user's notification (the owner of the user's partition), the console's
// deliveries endpoint of every node shows the attempt.
func TestConsoleDeliveriesAcrossNodes(t *testing.T) {
	c := startNodes(t, 2)
	f := newFixture(t)
	sk := newSink(t)
	sub := f.on(c.nodes[0]).mustSubscribe("D1ra", subBody(bulkRes(f.U2), sk.URL, nowOn(t, c.nodes[0]).Add(50*time.Minute)))
	id := sub.str("id")

	f.on(c.nodes[1]).mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	sk.waitPosts(t, 1, 10*time.Second)
	tok := f.tok("D1ra")
	for i, node := range c.nodes {
		fn := f.on(node)
		var ds []map[string]any
		eventually(t, 10*time.Second, func() bool {
			ds = consoleDeliveries(t, fn, tok, id)
			return len(ds) >= 1
		}, func() string { return fmt.Sprintf("node %d logs no delivery", i+1) })
		d := ds[0]
		if d["statusCode"] == nil || d["outcome"] != "delivered" || d["attempt"] != float64(1) {
			t.Fatalf("node %d: the attempt: %v", i+1, d)
		}
		items, _ := d["notifications"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["user"] != f.U2 {
			t.Fatalf("node %d: the attempt's notifications: %v", i+1, d["notifications"])
		}
	}
	// Another tenant sees no log on either node.
	for _, node := range c.nodes {
		g := f.on(node).inTenant(newGUID())
		wantError(t, g.get("/presenced/subscriptions/"+id+"/deliveries", "D1ra"), http.StatusNotFound, "NotFound", "")
	}
}
