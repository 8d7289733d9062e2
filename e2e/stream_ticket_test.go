package e2e

import (
	"context"
	"net/http"
	"net/url"
	"testing"
)

// getStreamWithTicket opens the event stream of users with ?ticket= and no
// Authorization header, as a browser's EventSource does, and returns the
// status (and the stream when it is 200).
func getStreamWithTicket(t *testing.T, s *server, ticket string, users ...string) (int, *eventStream) {
	t.Helper()
	filter := "id in ('" + users[0] + "')"
	for _, u := range users[1:] {
		filter = filter[:len(filter)-1] + ",'" + u + "')"
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+"/presenced/stream?$filter="+url.QueryEscape(filter)+"&ticket="+url.QueryEscape(ticket), nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := streamClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET stream: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		cancel()
		return res.StatusCode, nil
	}
	t.Cleanup(func() { cancel(); res.Body.Close() })
	es := newEventStream(res, cancel)
	return res.StatusCode, es
}

// The event stream takes a ticket bought with the bearer token, once; the
// token itself never goes into the URL.
func TestStreamWithTicket(t *testing.T) {
	f := newFixture(t)
	tk := f.s.do(t, "POST", "/presenced/tickets", f.tok("D1ra"), nil).str("ticket")
	if tk == "" {
		t.Fatal("no ticket")
	}
	status, es := getStreamWithTicket(t, f.s, tk, f.U2)
	if status != http.StatusOK {
		t.Fatalf("stream with a ticket: %d", status)
	}
	wantEvent(t, es.next(t), f.U2, "Offline/Offline")
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	wantEvent(t, es.next(t), f.U2, "Busy/InACall")
	if status, _ := getStreamWithTicket(t, f.s, tk, f.U2); status != http.StatusUnauthorized {
		t.Fatalf("a ticket used twice: %d, want 401", status)
	}
	// A ticket carries the token's rights, no more: D1r may not read U2.
	tk = f.s.do(t, "POST", "/presenced/tickets", f.tok("D1r"), nil).str("ticket")
	if status, _ := getStreamWithTicket(t, f.s, tk, f.U2); status != http.StatusForbidden {
		t.Fatalf("a ticket of a token that may not read the user: %d, want 403", status)
	}
}

// A ticket bought through one node opens a stream on another.
func TestNodesTicketAcrossNodes(t *testing.T) {
	c := startNodes(t, 2)
	f := newFixture(t)
	tk := f.on(c.nodes[0]).s.do(t, "POST", "/presenced/tickets", f.tok("D1ra"), nil).str("ticket")
	status, es := getStreamWithTicket(t, c.nodes[1], tk, f.U2)
	if status != http.StatusOK {
		t.Fatalf("a ticket of node 1 on node 2: %d", status)
	}
	wantEvent(t, es.next(t), f.U2, "Offline/Offline")
}
