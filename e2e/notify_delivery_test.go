package e2e

// Delivery, retries and endpoint throttling (graph-presence.md 4.9): the
// retry schedule (10 s doubling, capped at 10 minutes, for 4 hours), the
// independence of subscriptions, and slow-endpoint throttling. All timing
// is service-clock time, driven by POST /_test/clock/advance.

import (
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"
)

// setFlip sets user to the kth pair of a cycle in which each pair differs
// from the one before, so every call is a visible change.
func (f *fixture) setFlip(user string, k int) {
	f.t.Helper()
	pairs := [][2]string{{"Busy", "InACall"}, {"Away", "Away"}, {"DoNotDisturb", "Presenting"}, {"Available", "Available"}}
	p := pairs[k%len(pairs)]
	f.mustSet(user, p[0], p[1], "PT4H", "APPrw")
}

// renew PATCHes a subscription's expiry to now + 60 minutes.
func (f *fixture) renew(tok, id string) {
	f.t.Helper()
	r := f.s.do(f.t, "PATCH", f.p("/subscriptions/%s", id), tok, map[string]any{"expirationDateTime": graphTime(nowOn(f.t, f.s).Add(60 * time.Minute))})
	wantStatus(f.t, r, http.StatusOK)
}

// 4.9: retries back off exponentially from 10 s, capped at 10 minutes, and
// stop after 4 hours; the dropped notification is not delivered later.
func TestNotifyRetrySchedule(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	sk.setAnswer(http.StatusServiceUnavailable)
	t0 := nowOn(t, f.s)
	tok := f.tok("D1ra")
	id := f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(60*time.Minute)))).str("id")
	f.mustSet(f.U2, "Busy", "InACall", "PT4H", "APPrw")
	sk.waitPosts(t, 1, deliveryWithin)
	first := nowOn(t, f.s)

	attempts := 1
	// 10, 20, 40, 80, 160, 320 s, then the cap: 600 s.
	for _, backoff := range []time.Duration{10, 20, 40, 80, 160, 320, 600, 600} {
		backoff *= time.Second
		advance(t, isoSeconds(backoff-time.Second))
		if n := len(sk.deliveries()); n != attempts {
			t.Fatalf("%d attempts 1 s before the %v backoff ended, want %d: %s", n, backoff, attempts, sk.dump())
		}
		advance(t, "PT1S")
		attempts++
		sk.waitPosts(t, attempts, deliveryWithin)
	}
	// At the cap, one attempt per 10 minutes until 4 hours have passed since
	// the first failure; the subscription (60 minutes at most) is renewed
	// on the way.
	renewed := t0
	for {
		now := advance(t, "PT10M")
		if now.Sub(renewed) >= 40*time.Minute {
			f.renew(tok, id)
			// Keep U2's session (PT4H at most) from expiring: its expiry
			// would be a new change, with attempts of its own.
			f.mustSet(f.U2, "Busy", "InACall", "PT4H", "APPrw")
			renewed = now
		}
		n := len(sk.deliveries())
		if now.Sub(first) >= 4*time.Hour {
			break
		}
		if n != attempts+1 {
			t.Fatalf("%v after the first failure: %d attempts, want %d (one per 10 minutes)", now.Sub(first), n, attempts+1)
		}
		attempts = n
	}
	// Past 4 hours: at most the attempt that was already due, then none.
	for range 3 {
		now := advance(t, "PT10M")
		if now.Sub(renewed) >= 40*time.Minute {
			f.renew(tok, id)
			f.mustSet(f.U2, "Busy", "InACall", "PT4H", "APPrw")
			renewed = now
		}
	}
	if n := len(sk.deliveries()); n > attempts+1 {
		t.Errorf("%d attempts more than 4 hours after the first failure, want the notification dropped (4.9): %s", n-attempts, sk.dump())
	}
	// The receiver recovers: the next change is delivered, the dropped one
	// is not.
	sk.setAnswer(http.StatusAccepted)
	f.mustSet(f.U2, "Away", "Away", "PT4H", "APPrw")
	items := waitRich(t, sk, 1)
	wantPairs(t, "after the drop", items, f.U2, "Away/Away")
}

func isoSeconds(d time.Duration) string { return fmt.Sprintf("PT%dS", d/time.Second) }

// A failing receiver delays only its own subscription: another
// subscription on the same user gets every change at once; a subscription
// deleted while its retry is pending gets nothing more.
func TestNotifyFailingSubscriptionIsolated(t *testing.T) {
	f := newFixture(t)
	bad, good := newSink(t), newSink(t)
	bad.setAnswer(http.StatusInternalServerError)
	t0 := nowOn(t, f.s)
	badID := f.mustSubscribe("D1ra", subBody(userRes(f.U2), bad.URL, t0.Add(50*time.Minute))).str("id")
	f.mustSubscribeAs(f.d1raB(), richBody(subBody(userRes(f.U2), good.URL, t0.Add(50*time.Minute))))
	for k := range 5 {
		f.setFlip(f.U2, k)
		waitRich(t, good, k+1)
	}
	bad.waitPosts(t, 1, deliveryWithin)
	if n := len(bad.deliveries()); n != 1 {
		t.Errorf("the failing receiver got %d attempts without the clock moving, want 1", n)
	}
	// Deleted while a retry is pending: nothing more, even once the
	// receiver recovers and the backoff has passed.
	wantStatus(t, f.s.do(t, "DELETE", f.p("/subscriptions/%s", badID), f.tok("D1ra"), nil), http.StatusNoContent)
	bad.setAnswer(http.StatusAccepted)
	advance(t, "PT10M")
	f.setFlip(f.U2, 5)
	waitRich(t, good, 6)
	advance(t, "PT10M")
	if n := len(bad.deliveries()); n != 1 {
		t.Errorf("the deleted subscription's receiver got %d POSTs, want the 1 before the delete: %s", n, bad.dump())
	}
}

// 4.9 slow-endpoint throttling: a delivery taking more than 2900 ms is
// slow; once an endpoint has received 100 notifications, a slow share of
// 10 % or more delays all its notifications by 10 minutes (failed ones are
// retried after 10 minutes), 15 % or more drops them; the counters are
// flushed every 10 minutes. Two endpoints are driven at once so that the
// one unanswered (3 s) delivery of each overlaps.
func TestNotifySlowEndpoints(t *testing.T) {
	f := newFixture(t)
	delayed, dropping := newSink(t), newSink(t)
	uA, uB, uC := newGUID(), newGUID(), newGUID()
	t0 := nowOn(t, f.s)
	exp := t0.Add(60 * time.Minute)
	// delayed: two subscriptions to one URL (U1+A on uA, U1+B on uB);
	// dropping: one (U2+A on uC).
	f.mustSubscribe("D1ra", richBody(subBody(userRes(uA), delayed.URL, exp)))
	f.mustSubscribeAs(f.d1raB(), richBody(subBody(userRes(uB), delayed.URL, exp)))
	f.mustSubscribe("D2ra", richBody(subBody(userRes(uC), dropping.URL, exp)))

	// 100 fast notifications each.
	for k := range 100 {
		f.setFlip(uA, k)
		f.setFlip(uC, k)
	}
	delayed.waitItems(t, 100, deliveryWithin)
	dropping.waitItems(t, 100, deliveryWithin)

	// One fast failure each, then more changes wait behind it.
	delayed.setAnswer(http.StatusInternalServerError)
	dropping.setAnswer(http.StatusInternalServerError)
	f.setFlip(uA, 100)
	f.setFlip(uC, 100)
	eventually(t, deliveryWithin, func() bool {
		return lastStatus(delayed) == http.StatusInternalServerError && lastStatus(dropping) == http.StatusInternalServerError
	}, func() string { return "the failing deliveries did not happen" })
	for k := 101; k < 112; k++ { // 11 more: 12 waiting
		f.setFlip(uA, k)
	}
	for k := 101; k < 120; k++ { // 19 more: 20 waiting
		f.setFlip(uC, k)
	}
	// The retry (10 s) is not answered: 12 of 113 (10.6 %) and 20 of 121
	// (16.5 %) notifications were slow.
	delayed.setAnswer(hang)
	dropping.setAnswer(hang)
	nd, nx := len(delayed.deliveries()), len(dropping.deliveries())
	start := time.Now()
	advance(t, "PT10S")
	if took := time.Since(start); took < 2900*time.Millisecond {
		t.Fatalf("the unanswered deliveries ended after %v, before the 3 s delivery timeout", took)
	}
	if len(delayed.deliveries()) != nd+1 || len(dropping.deliveries()) != nx+1 {
		t.Fatalf("want one unanswered retry each: delayed%s\ndropping%s", delayed.dump(), dropping.dump())
	}
	if n := len(delayed.deliveries()[nd].items()); n != 12 {
		t.Fatalf("the delayed endpoint's retry held %d notifications, want 12", n)
	}
	if n := len(dropping.deliveries()[nx].items()); n != 20 {
		t.Fatalf("the dropping endpoint's retry held %d notifications, want 20", n)
	}
	delayed.setAnswer(http.StatusAccepted)
	dropping.setAnswer(http.StatusAccepted)
	nd, nx = len(delayed.deliveries()), len(dropping.deliveries())

	// Flagged: a new notification to the delayed endpoint waits 10 minutes;
	// the dropping endpoint drops everything.
	f.setFlip(uB, 0)
	f.setFlip(uC, 120)
	advance(t, "PT20S")
	if n := len(delayed.deliveries()); n != nd {
		t.Errorf("the delayed endpoint (10.6%% slow) got %d POSTs 20 s after its failure; want none: failed ones are retried after 10 minutes (4.9)",
			n-nd)
	}
	if n := len(dropping.deliveries()); n != nx {
		t.Errorf("the dropping endpoint (16.5%% slow) got %d POSTs, want none (dropped)", n-nx)
	}
	advance(t, "PT9M39S") // 9 min 59 s after the new notification
	got := map[string]bool{}
	for _, it := range richItems(t, delayed.accepted()[100:]) {
		got[it.User] = true
	}
	if got[uB] {
		t.Errorf("the delayed endpoint got the new notification before 10 minutes")
	}
	advance(t, "PT1S") // 10 minutes: delivered; the counters are flushed
	eventually(t, deliveryWithin, func() bool {
		n := 0
		for _, it := range richItems(t, delayed.accepted()[100:]) {
			if it.User == uB || it.User == uA {
				n++
			}
		}
		return n >= 13
	}, func() string {
		return "10 minutes on, the delayed endpoint has not got its 12 failed and 1 delayed notifications: " + delayed.dump()
	})
	if n := len(dropping.deliveries()); n != nx {
		t.Errorf("the dropping endpoint got %d POSTs for dropped notifications", n-nx)
	}
	// Flushed: both endpoints get new notifications at once.
	f.setFlip(uC, 121)
	f.setFlip(uB, 1)
	items := waitRich(t, dropping, 101)
	if it := items[100]; it.User != uC || it.Seq != f.seqOf(uC) {
		t.Errorf("after the flush the dropping endpoint got %s %s, want uC's latest %s", it.User, it.Seq, f.seqOf(uC))
	}
	delayed.waitItems(t, 100+12+1+1, deliveryWithin)
}

// lastStatus is what a sink answered last.
func lastStatus(s *sink) int {
	ds := s.deliveries()
	if len(ds) == 0 {
		return -1
	}
	return ds[len(ds)-1].Status
}

// The conformance hook answers an advance after what fell due happened:
// a change the clock made is delivered before POST /_test/clock/advance
// answers. A race here showed up about once in 150 advances under the race
// detector, so the test repeats it; PRESENCED_E2E_STRESS=1 repeats it more.
func TestNotifyAdvanceDeliversBeforeAnswer(t *testing.T) {
	misses := 0
	rounds := 60
	if os.Getenv("PRESENCED_E2E_STRESS") != "" {
		rounds = 600
	}
	for range rounds {
		f := newFixture(t)
		sk := newSink(t)
		t0 := nowOn(t, f.s)
		f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
		f.mustSet(f.U2, "Available", "Available", "PT1H", "APPrw")
		sk.waitItems(t, 1, deliveryWithin)
		advance(t, "PT5M") // the fade falls due
		if len(sk.accepted()) != 2 {
			misses++
			sk.waitItems(t, 2, deliveryWithin)
		}
	}
	if misses > 0 {
		t.Errorf("%d of %d advances answered before the fade they caused was delivered", misses, rounds)
	}
}
