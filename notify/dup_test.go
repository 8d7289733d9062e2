package notify

import (
	"context"
	"testing"
	"time"
)

// TestTrimDuringDrainQueuesNothingTwice has a trim of a delivered notice
// end between a drain's read of the outbox (which still holds that notice)
// and its queueing of what it read: only the new notice may be queued, and
// it is delivered exactly once. (The drain once made a new box after the
// trim dropped the old one, and queued the delivered notice again.)
func TestTrimDuringDrainQueuesNothingTwice(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.subscribe(tUser1)
	d := h.n.d

	h.set(tUser1, "Busy", "InACall") // notice 1
	d.drain(ctx)
	for _, q := range d.due(true) {
		d.deliver(ctx, q) // delivered: notice 1 now waits for its trim
	}
	if got := h.sink.items(); got != 1 {
		t.Fatalf("%d notifications after the first change, want 1", got)
	}

	h.set(tUser1, "Available", "Available") // notice 2
	d.afterOutboxRead = func() {
		d.afterOutboxRead = nil
		d.trimAll(ctx) // notice 1 leaves the outbox after the drain read it
	}
	d.drain(ctx)
	queued := 0
	d.mu.Lock()
	for _, q := range d.queues {
		queued += len(q.items)
	}
	d.mu.Unlock()
	if queued != 1 {
		t.Fatalf("%d notices queued after the second change, want 1 (the first was queued again)", queued)
	}
	if err := h.n.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.sink.items(); got != 2 {
		t.Fatalf("%d notifications for 2 changes", got)
	}
	if box := h.outbox(tUser1); len(box) != 0 {
		t.Errorf("outbox after every delivery: %+v, want empty", box)
	}
}

// items counts the notifications received, over all POSTs.
func (s *sink) items() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.bodies {
		if v, ok := b["value"].([]any); ok {
			n += len(v)
		}
	}
	return n
}

// TestEndpointsForgotten checks that the slow-delivery counters of a
// notification URL no longer used are dropped after a counting period,
// while those of a URL in use stay.
func TestEndpointsForgotten(t *testing.T) {
	h := newHarness(t)
	sub := h.subscribe(tUser1)
	h.set(tUser1, "Busy", "InACall")
	h.advance(0)
	d := h.n.d
	d.mu.Lock()
	d.endpoints["https://gone.example/hook"] = &endpoint{since: h.clock.Now(), count: 5}
	d.mu.Unlock()
	h.clock.Advance(11 * time.Minute)
	h.set(tUser1, "Available", "Available") // a delivery to the subscription's URL sweeps
	h.advance(0)
	d.mu.Lock()
	_, gone := d.endpoints["https://gone.example/hook"]
	_, live := d.endpoints[sub.NotificationURL]
	d.mu.Unlock()
	if gone || !live {
		t.Fatalf("after a period: unused URL kept %v, URL in use kept %v; want false, true", gone, live)
	}
}

// TestValidationTokenReused checks that rich notifications reuse the
// validationToken of their (application, tenant) for tokenReuse, then sign
// another, and that tokens no longer reused are forgotten.
func TestValidationTokenReused(t *testing.T) {
	h := newHarness(t)
	h.n.cfg.Signer = testSigner(t)
	d := h.n.d
	if _, err := d.validationToken(tApp, tTenant); err != nil {
		t.Fatal(err)
	}
	mine, other := tokenKey{tApp, tTenant}, tokenKey{"another app", tTenant}
	d.mu.Lock()
	d.tokens[mine] = signedToken{token: "kept", at: time.Now().Add(-tokenReuse + time.Minute)}
	d.mu.Unlock()
	if tok, err := d.validationToken(tApp, tTenant); err != nil || tok != "kept" {
		t.Fatalf("a token signed within tokenReuse was not reused: %q, %v", tok, err)
	}
	aged := time.Now().Add(-tokenReuse)
	d.mu.Lock()
	d.tokens[mine] = signedToken{token: "aged", at: aged}
	d.tokens[other] = signedToken{token: "stale", at: aged}
	d.tokensSwept = aged
	d.mu.Unlock()
	if tok, err := d.validationToken(tApp, tTenant); err != nil || tok == "aged" {
		t.Fatalf("a token signed tokenReuse ago was reused: %q, %v", tok, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.tokens[other]; ok || !d.tokens[mine].at.After(aged) || len(d.tokens) != 1 {
		t.Errorf("tokens after a sweep: %v, want only a fresh one of %v", d.tokens, mine)
	}
}
