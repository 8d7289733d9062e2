package e2e

// The rules of change notifications beyond the C11 sample
// (graph-presence.md 3.7, 3.8, 4.4, 4.8, 4.9; decision 2): a notification
// for every change of the visible pair, whoever made it, and none
// otherwise; order; recovery after failures; lifecycle; listing; tenants;
// --allow-app-subscriptions and --max-subscription-lifetime.

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// wantPairs checks the decrypted items' pairs and users.
func wantPairs(t testing.TB, what string, got []richItem, user string, want ...string) {
	t.Helper()
	if !slices.Equal(pairsOf(got), want) {
		t.Errorf("%s: notified pairs %v, want exactly %v", what, pairsOf(got), want)
	}
	for _, it := range got {
		if it.User != user || it.Resource != userRes(user) {
			t.Errorf("%s: item of user %s (resource %s), want %s", what, it.User, it.Resource, user)
		}
	}
}

// wantSeqsIncreasing checks the sequence numbers of items strictly grow.
func wantSeqsIncreasing(t testing.TB, what string, items []richItem) {
	t.Helper()
	for i, it := range items {
		if !seqRE.MatchString(it.Seq) {
			t.Errorf("%s: item %d sequenceNumber %q, want a letter and 10 digits", what, i, it.Seq)
		}
		if i > 0 && it.Seq <= items[i-1].Seq {
			t.Errorf("%s: sequenceNumbers out of order: %q after %q", what, it.Seq, items[i-1].Seq)
		}
	}
}

// 3.8, A15: changes the clock makes (fade, expiry) are notified, with the
// values of the moment.
func TestNotifyClockChanges(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))))

	f.mustSet(f.U2, "Available", "Available", "PT30M", "APPrw")
	seqs := []string{f.seqOf(f.U2)}
	wantPairs(t, "set", waitRich(t, sk, 1), f.U2, "Available/Available")

	advance(t, "PT4M59S")
	f.wantPresence(f.U2, "Available", "Available")
	advance(t, "PT1S") // t0+5m: fade
	seqs = append(seqs, f.seqOf(f.U2))
	wantPairs(t, "t0+5m", waitRich(t, sk, 2), f.U2, "Available/Available", "Available/AvailableInactive")

	advance(t, "PT5M") // t0+10m: away
	seqs = append(seqs, f.seqOf(f.U2))
	wantPairs(t, "t0+10m", waitRich(t, sk, 3), f.U2, "Available/Available", "Available/AvailableInactive", "Away/Away")

	advance(t, "PT20M") // t0+30m: expiry
	seqs = append(seqs, f.seqOf(f.U2))
	items := waitRich(t, sk, 4)
	wantPairs(t, "t0+30m", items, f.U2, "Available/Available", "Available/AvailableInactive", "Away/Away", "Offline/Offline")
	wantSeqsIncreasing(t, "clock changes", items)
	for i := range min(len(items), len(seqs)) {
		if items[i].Seq != seqs[i] {
			t.Errorf("item %d (%s) sequenceNumber %q, want GET's %q", i, items[i].pair(), items[i].Seq, seqs[i])
		}
	}

	// Several boundaries crossed by one advance: each is notified, in order
	// (3.10), with its own sequence number.
	f.mustSet(f.U2, "Available", "Available", "PT10M", "APPrw")
	waitRich(t, sk, 5)
	advance(t, "PT15M") // fade at +5m, expiry at +10m
	items = waitRich(t, sk, 7)
	wantPairs(t, "one advance over two boundaries", items[4:], f.U2, "Available/Available", "Available/AvailableInactive", "Offline/Offline")
	wantSeqsIncreasing(t, "one advance over two boundaries", items)
	if got, want := items[len(items)-1].Seq, f.seqOf(f.U2); got != want {
		t.Errorf("last notified sequenceNumber %q, GET says %q", got, want)
	}
}

// 3.8: the expiry of a preferred presence is a clock change like any
// other; the expiry of a status message changes no pair and is not
// notified (it still bumps sequenceNumber, 3.7).
func TestNotifyPreferredAndStatusExpiry(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))))
	f.clientSession(f.U2, "desktop", "Available", "Available", "")
	wantEmptyOK(t, f.preferred(f.U2, "DoNotDisturb", "DoNotDisturb", "PT20M", "APPrw"))
	expiry := map[string]any{"dateTime": t0.Add(10 * time.Minute).UTC().Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"}
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U2), "APPrw", statusText("Back soon", expiry)))
	waitRich(t, sk, 2)
	seq := f.seqOf(f.U2)
	advance(t, "PT10M") // the status message expires
	if got := f.seqOf(f.U2); got <= seq {
		t.Errorf("status message expiry: sequenceNumber %q, want greater than %q (3.7)", got, seq)
	}
	advance(t, "PT10M") // the preferred presence expires
	items := waitRich(t, sk, 3)
	wantPairs(t, "preferred then its expiry", items, f.U2, "Available/Available", "DoNotDisturb/DoNotDisturb", "Available/Available")
	wantSeqsIncreasing(t, "preferred then its expiry", items)
	if len(items) == 3 && items[2].Seq != f.seqOf(f.U2) {
		t.Errorf("preferred expiry notified sequenceNumber %q, GET says %q", items[2].Seq, f.seqOf(f.U2))
	}
}

// 3.10: boundaries that fall at one instant are applied together: a
// session and the preferred presence hiding it expire at the same moment,
// so the session's pair is never visible and one notification is sent.
func TestNotifyBoundariesAtOneInstant(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))))
	f.clientSession(f.U2, "desktop", "Available", "Available", "")
	f.mustSet(f.U2, "Busy", "InACall", "PT30M", "APPrw")
	wantEmptyOK(t, f.preferred(f.U2, "DoNotDisturb", "DoNotDisturb", "PT30M", "APPrw"))
	waitRich(t, sk, 3)
	advance(t, "PT30M") // the session and the preferred presence expire
	f.wantPresence(f.U2, "Available", "Available")
	f.calendarBusy(f.U2, true) // the marker
	items := waitRich(t, sk, 5)
	wantPairs(t, "two expiries at one instant, then a marker", items, f.U2,
		"Available/Available", "Busy/InACall", "DoNotDisturb/DoNotDisturb", "Available/Available", "Busy/InAMeeting")
	wantSeqsIncreasing(t, "two expiries at one instant", items)
}

// 3.8: changes made through the test hooks are notified like any other;
// a hook call that changes nothing visible is not.
func TestNotifyHookChanges(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))))

	f.clientSession(f.U2, "desktop", "Available", "Available", "")
	waitRich(t, sk, 1)
	f.clientSession(f.U2, "desktop", "Available", "Available", "") // refresh: nothing visible changes
	f.outOfOffice(f.U2, true, ptr("Away for a while"))             // Available/OutOfOffice
	f.outOfOffice(f.U2, true, ptr("Another message"))              // message only: no notification
	f.outOfOffice(f.U2, false, nil)                                // Available/Available
	f.calendarBusy(f.U2, true)                                     // Busy/InAMeeting
	f.calendarBusy(f.U2, false)                                    // Available/Available
	f.clientSession(f.U2, "desktop", "Busy", "InACall", "")        // Busy/InACall
	f.outOfOffice(f.U2, true, ptr("In a call, out of office"))     // the pair stays Busy/InACall (3.4)
	f.wantPresence(f.U2, "Busy", "InACall")
	f.outOfOffice(f.U2, false, nil)
	f.presenceEnabled(f.U2, false) // PresenceUnknown
	f.presenceEnabled(f.U2, true)  // Busy/InACall
	r := f.s.do(t, "DELETE", f.hookPath(f.U2, "clientSessions/desktop"), "", nil)
	wantStatus(t, r, http.StatusNoContent) // Offline/Offline

	want := []string{"Available/Available", "Available/OutOfOffice", "Available/Available", "Busy/InAMeeting",
		"Available/Available", "Busy/InACall", "PresenceUnknown/PresenceUnknown", "Busy/InACall", "Offline/Offline"}
	items := waitRich(t, sk, len(want))
	wantPairs(t, "hook changes", items, f.U2, want...)
	wantSeqsIncreasing(t, "hook changes", items)
	if last, seq := items[len(items)-1].Seq, f.seqOf(f.U2); last != seq {
		t.Errorf("last notified sequenceNumber %q, GET says %q", last, seq)
	}
}

// 3.8: no notification for a write that changes nothing visible (a
// refresh, another app's lower-ranked session) nor for a status-message-only
// change (which still bumps sequenceNumber, 3.7).
func TestNotifyNoneWithoutVisibleChange(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))))

	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	busySeq := f.seqOf(f.U2)
	waitRich(t, sk, 1)
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")         // refresh
	f.mustSet(f.U2, "Busy", "InACall", "PT2H", "APPrw")         // refresh, new expiry
	f.mustSet(f.U2, "Available", "Available", "PT1H", "APPBrw") // ranked below Busy
	f.mustSet(f.U2, "Away", "Away", "PT1H", "APPBrw")           // still below Busy
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U2), "APPrw", statusText("Deep work", nil)))
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U2), "D2rw", statusText("Deeper work", nil)))
	afterStatus := f.seqOf(f.U2)
	if afterStatus <= busySeq {
		t.Errorf("status message change: sequenceNumber %q, want greater than %q (3.7)", afterStatus, busySeq)
	}
	advance(t, "PT1M")                                             // whatever is due is delivered before the answer
	f.mustSet(f.U2, "DoNotDisturb", "Presenting", "PT1H", "APPrw") // the marker
	items := waitRich(t, sk, 2)
	wantPairs(t, "refreshes and a status message, then a change", items, f.U2, "Busy/InACall", "DoNotDisturb/Presenting")
	if len(items) == 2 && items[1].Seq != f.seqOf(f.U2) {
		t.Errorf("marker notified sequenceNumber %q, GET says %q", items[1].Seq, f.seqOf(f.U2))
	}
}

// Several changes of one user reach the receiver in sequence order, each
// once, with the values each change set (writes in a burst, so that the
// server batches them).
func TestNotifyOrder(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	// One change each first: a user's first version is floored by the
	// clock's instant; on the frozen test clock every later change adds one.
	f.mustSet(f.U2, "Available", "Available", "PT4H", "APPrw")
	f.mustSet(f.U3, "Available", "Available", "PT4H", "APPrw")
	f.mustSubscribe("D1ra", richBody(subBody(bulkRes(f.U2, f.U3), sk.URL, t0.Add(50*time.Minute))))
	base2, base3 := seqNum(t, f.seqOf(f.U2)), seqNum(t, f.seqOf(f.U3))
	pairs := []string{"Busy/InACall", "Away/Away", "DoNotDisturb/Presenting", "Available/Available"}
	const n = 60
	for i := range n / 2 {
		f.setFlip(f.U2, i)   // pairs[i%4]
		f.setFlip(f.U3, i+1) // pairs[(i+1)%4]
	}
	// The second half waits behind a failed delivery, then goes out in
	// large batches.
	waitRich(t, sk, n)
	sk.setAnswer(http.StatusInternalServerError)
	for i := n / 2; i < n; i++ {
		f.setFlip(f.U2, i)
		f.setFlip(f.U3, i+1)
	}
	sk.setAnswer(http.StatusAccepted)
	advance(t, "PT10S")
	if got := seqNum(t, f.seqOf(f.U2)); got != base2+n {
		t.Fatalf("U2 at sequence %d after %d changes from %d", got, n, base2)
	}
	items := waitRich(t, sk, 2*n)
	var got2, got3 []int
	for _, it := range items {
		k := seqNum(t, it.Seq)
		switch it.User {
		case f.U2:
			got2 = append(got2, k)
			if want := pairs[(k-base2-1)%4]; it.pair() != want {
				t.Errorf("U2 change %d notified as %s, was set to %s", k-base2, it.pair(), want)
			}
		case f.U3:
			got3 = append(got3, k)
			if want := pairs[(k-base3)%4]; it.pair() != want {
				t.Errorf("U3 change %d notified as %s, was set to %s", k-base3, it.pair(), want)
			}
		}
	}
	var want2, want3 []int
	for i := 1; i <= n; i++ {
		want2 = append(want2, base2+i)
		want3 = append(want3, base3+i)
	}
	if !slices.Equal(got2, want2) {
		t.Errorf("U2's notifications in order %v, want %v", got2, want2)
	}
	if !slices.Equal(got3, want3) {
		t.Errorf("U3's notifications in order %v, want %v", got3, want3)
	}
	batched := false
	for _, d := range sk.deliveries() {
		batched = batched || len(d.items()) > 1
	}
	t.Logf("%d POSTs for %d notifications (batched: %v)", len(sk.deliveries()), len(items), batched)
}

// 4.9: a receiver that fails, then recovers, gets everything, in order,
// and afterwards new changes flow at once.
func TestNotifyFailThenRecover(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	sk.setAnswer(http.StatusInternalServerError)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))))
	var want []string
	set := func(a, b string) {
		f.mustSet(f.U2, a, b, "PT1H", "APPrw")
		want = append(want, f.seqOf(f.U2))
	}
	set("Busy", "InACall")
	sk.waitPosts(t, 1, deliveryWithin)
	set("Away", "Away")
	set("DoNotDisturb", "Presenting")
	// Failures back off 10 s, 20 s, 40 s…: two more failed attempts.
	advance(t, "PT10S")
	sk.waitPosts(t, 2, deliveryWithin)
	set("Busy", "InAConferenceCall")
	advance(t, "PT20S")
	sk.waitPosts(t, 3, deliveryWithin)
	if n := len(sk.accepted()); n != 0 {
		t.Fatalf("accepted %d items while failing", n)
	}
	advance(t, "PT39S")
	if n := len(sk.deliveries()); n != 3 {
		t.Errorf("%d attempts 39 s after the third failure, want 3 (backoff 40 s, 4.9)", n)
	}
	sk.setAnswer(http.StatusOK)
	advance(t, "PT1S")
	items := waitRich(t, sk, len(want))
	var got []string
	for _, it := range items {
		got = append(got, it.Seq)
	}
	if !slices.Equal(got, want) {
		t.Errorf("after recovery: delivered %v, want %v (all, in order, once)", got, want)
	}
	// Recovered: the next change is delivered without advancing the clock.
	set("Available", "Available")
	items = waitRich(t, sk, len(want))
	if items[len(items)-1].Seq != want[len(want)-1] {
		t.Errorf("after recovery a new change was not delivered at once: %v", pairsOf(items))
	}
}

// 4.8: reauthorizationRequired, once, when at most 15 minutes remain; again
// after a renewal; then expiry deletes the subscription and frees the slot.
func TestNotifyLifecycle(t *testing.T) {
	f := newFixture(t)
	sk, life := newSink(t), newSink(t)
	t0 := nowOn(t, f.s)
	exp := t0.Add(50 * time.Minute)
	body := subBody(userRes(f.U2), sk.URL, exp)
	body["lifecycleNotificationUrl"] = life.URL
	body["clientState"] = "life-cs"
	id := f.mustSubscribe("D1ra", body).str("id")
	if n := len(life.handshakeList()); n != 1 {
		t.Errorf("lifecycleNotificationUrl validated %d times, want 1", n)
	}

	advance(t, "PT34M") // 16 minutes remain
	if n := len(life.deliveries()); n != 0 {
		t.Errorf("%d lifecycle notifications with 16 minutes left, want none: %s", n, life.dump())
	}
	advance(t, "PT1M") // 15 minutes remain
	items := life.waitItems(t, 1, deliveryWithin)
	it := items[0]
	wantKeys := []string{"clientState", "lifecycleEvent", "subscriptionExpirationDateTime", "subscriptionId", "tenantId"}
	if got := keysOf(it); !slices.Equal(got, wantKeys) {
		t.Errorf("lifecycle item members %v, want %v", got, wantKeys)
	}
	for k, v := range map[string]string{"lifecycleEvent": "reauthorizationRequired", "subscriptionId": id, "tenantId": f.T, "clientState": "life-cs"} {
		if got, _ := it[k].(string); got != v {
			t.Errorf("lifecycle item %s = %q, want %q", k, got, v)
		}
	}
	if e, _ := it["subscriptionExpirationDateTime"].(string); !sameInstant(parseGraphTime(t, "subscriptionExpirationDateTime", e), exp) {
		t.Errorf("lifecycle subscriptionExpirationDateTime %q, want %v", e, exp)
	}
	advance(t, "PT5M")
	advance(t, "PT5M") // 5 minutes remain
	if n := len(life.accepted()); n != 1 {
		t.Errorf("%d reauthorizationRequired notifications, want exactly one: %s", n, life.dump())
	}
	if n := len(sk.deliveries()); n != 0 {
		t.Errorf("lifecycle events went to notificationUrl: %s", sk.dump())
	}

	// Renewal: a new window, a new notice when it nears its end.
	now := nowOn(t, f.s)
	r := f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"expirationDateTime": graphTime(now.Add(50 * time.Minute))})
	wantStatus(t, r, http.StatusOK)
	advance(t, "PT30M") // 20 minutes remain
	if n := len(life.accepted()); n != 1 {
		t.Errorf("%d lifecycle notifications 20 minutes before the renewed expiry, want 1 in all", n)
	}
	advance(t, "PT10M") // 10 minutes remain
	life.waitItems(t, 2, deliveryWithin)
	advance(t, "PT5M")
	if n := len(life.accepted()); n != 2 {
		t.Errorf("%d lifecycle notifications after the renewal window, want 2 in all: %s", n, life.dump())
	}

	// Expiry: the subscription is gone, its user's changes are not
	// delivered, no subscriptionRemoved is sent (4.4), and the slot is free.
	advance(t, "PT5M") // exactly the renewed expiry
	wantError(t, f.get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusNotFound, "", "")
	r = f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"expirationDateTime": graphTime(nowOn(t, f.s).Add(50 * time.Minute))})
	wantError(t, r, http.StatusNotFound, "", "")
	wantError(t, f.post(f.p("/subscriptions/%s/reauthorize", id), "D1ra", nil), http.StatusNotFound, "", "")
	l := f.get(f.p("/subscriptions"), "D1ra")
	if len(values(t, l)) != 0 {
		t.Errorf("%s: an expired subscription is listed", l)
	}
	marker := newSink(t)
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), marker.URL, nowOn(t, f.s).Add(50*time.Minute)))
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	marker.waitItems(t, 1, deliveryWithin)
	if n := len(sk.deliveries()); n != 0 {
		t.Errorf("the expired subscription's sink got %d notifications", n)
	}
	if n := len(life.deliveries()); n != 2 {
		t.Errorf("%d lifecycle notifications in all, want 2 (no subscriptionRemoved for presence): %s", n, life.dump())
	}
}

// A subscription without lifecycleNotificationUrl expires at its
// expirationDateTime: 404 afterwards, slot free, nothing delivered.
func TestNotifyExpiryFreesSlot(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	id := f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(45*time.Minute))).str("id")
	advance(t, "PT44M59S")
	wantStatus(t, f.get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusOK)
	advance(t, "PT1S")
	wantError(t, f.get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusNotFound, "", "")
	second := newSink(t)
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), second.URL, nowOn(t, f.s).Add(45*time.Minute)))
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	second.waitItems(t, 1, deliveryWithin)
	if n := len(sk.deliveries()); n != 0 {
		t.Errorf("the expired subscription's sink got %d notifications", n)
	}
}

// 4.4: GET /subscriptions lists the caller's own subscriptions (this user,
// this app, this tenant), without clientState.
func TestNotifyList(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		sk := newSink(t)
		t0 := nowOn(t, f.s)
		body := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
		body["clientState"] = "secret-cs"
		id := f.mustSubscribe("D1ra", body).str("id")
		f.mustSubscribeAs(f.d1raB(), with(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)), "clientState", "b-cs"))
		f.mustSubscribe("D2ra", subBody(userRes(f.U1), sk.URL, t0.Add(50*time.Minute)))

		l := f.get(f.p("/subscriptions"), "D1ra")
		wantStatus(t, l, http.StatusOK)
		if ctx := l.str("@odata.context"); !strings.HasSuffix(ctx, "/"+f.v+"/$metadata#subscriptions") {
			t.Errorf("%s: @odata.context %q, want …/%s/$metadata#subscriptions", l, ctx, f.v)
		}
		vs := values(t, l)
		if len(vs) != 1 {
			t.Fatalf("%s: %d subscriptions listed, want exactly U1+A's one", l, len(vs))
		}
		s := vs[0]
		if s["id"] != id || s["applicationId"] != f.A || s["creatorId"] != f.U1 || s["resource"] != userRes(f.U2) {
			t.Errorf("listed %v, want subscription %s", s, id)
		}
		if cs, ok := s["clientState"]; ok && cs != nil {
			t.Errorf("list shows clientState %v; it must not (4.4)", cs)
		}
		if strings.Contains(string(l.Body), "secret-cs") || strings.Contains(string(l.Body), "b-cs") {
			t.Errorf("%s: a clientState leaks through the list", l)
		}
		// Other users and apps see only their own.
		lb := f.s.do(t, "GET", f.p("/subscriptions"), f.d1raB(), nil)
		wantStatus(t, lb, http.StatusOK)
		if len(values(t, lb)) != 1 || lb.str("value", 0, "applicationId") != f.B {
			t.Errorf("%s: app B's list", lb)
		}
		// Another user of the same app and tenant cannot see or touch U1's.
		wantError(t, f.get(f.p("/subscriptions/%s", id), "D2ra"), http.StatusNotFound, "", "")
		wantError(t, f.s.do(t, "DELETE", f.p("/subscriptions/%s", id), f.tok("D2ra"), nil), http.StatusNotFound, "", "")
		// Nor can app B for the same user.
		wantError(t, f.s.do(t, "GET", f.p("/subscriptions/%s", id), f.d1raB(), nil), http.StatusNotFound, "", "")
		wantStatus(t, f.get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusOK)
		// An unknown id is 404.
		wantError(t, f.get(f.p("/subscriptions/%s", newGUID()), "D1ra"), http.StatusNotFound, "", "")
	})
}

// Decision 2: a subscription is invisible from another tenant, and the same
// user id in another tenant is another user.
func TestNotifyTenantIsolation(t *testing.T) {
	f := newFixture(t)
	g := f.inTenant(newGUID())
	sk, other := newSink(t), newSink(t)
	t0 := nowOn(t, f.s)
	body := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
	id := f.mustSubscribe("D1ra", body).str("id")

	path := f.p("/subscriptions/%s", id)
	wantError(t, g.get(path, "D1ra"), http.StatusNotFound, "", "")
	wantError(t, g.s.do(t, "PATCH", path, g.tok("D1ra"), map[string]any{"expirationDateTime": graphTime(t0.Add(55 * time.Minute))}), http.StatusNotFound, "", "")
	wantError(t, g.post(path+"/reauthorize", "D1ra", nil), http.StatusNotFound, "", "")
	wantError(t, g.s.do(t, "DELETE", path, g.tok("D1ra"), nil), http.StatusNotFound, "", "")
	l := g.get(g.p("/subscriptions"), "D1ra")
	wantStatus(t, l, http.StatusOK)
	if len(values(t, l)) != 0 {
		t.Errorf("%s: another tenant's subscription is listed", l)
	}
	// The same (user, app) in the other tenant has its own slot.
	g.mustSubscribe("D1ra", subBody(userRes(g.U2), other.URL, t0.Add(50*time.Minute)))
	// A change of U2 in the other tenant reaches only the other tenant's
	// subscription; then a change in tenant one reaches only tenant one's.
	g.mustSet(g.U2, "Busy", "InACall", "PT1H", "APPrw")
	it := other.waitItems(t, 1, deliveryWithin)[0]
	if it["tenantId"] != g.T {
		t.Errorf("other tenant's notification tenantId %v", it["tenantId"])
	}
	f.mustSet(f.U2, "Away", "Away", "PT1H", "APPrw")
	it = sk.waitItems(t, 1, deliveryWithin)[0]
	if it["tenantId"] != f.T || it["organizationId"] != f.T {
		t.Errorf("tenant one's notification tenantId %v", it["tenantId"])
	}
	advance(t, "PT1S")
	if n, m := len(sk.deliveries()), len(other.deliveries()); n != 1 || m != 1 {
		t.Errorf("deliveries: tenant one %d, other tenant %d; want one each:%s%s", n, m, sk.dump(), other.dump())
	}
	// The subscription still works for its owner.
	wantStatus(t, f.get(path, "D1ra"), http.StatusOK)
}

// --allow-app-subscriptions lets application tokens with Presence.Read.All
// subscribe; --max-subscription-lifetime moves the 60-minute cap;
// --public-url is the validationTokens' iss (decision 5).
func TestNotifyOperatorFlags(t *testing.T) {
	s := startTestServer(t, hookedArgs(t,
		"--allow-app-subscriptions",
		"--max-subscription-lifetime", "24h",
		"--public-url", "https://presenced.e2e.test/",
	), nil)
	f := newFixture(t)
	f.s = s
	sk := newSink(t)
	t0 := nowOn(t, s)

	r := f.mustSubscribe("APPr", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(2*time.Hour))))
	if r.str("applicationId") != f.A {
		t.Errorf("%s: applicationId, want %s", r, f.A)
	}
	if exp := parseGraphTime(t, "expirationDateTime", r.str("expirationDateTime")); !sameInstant(exp, t0.Add(2*time.Hour)) {
		t.Errorf("%s: expirationDateTime %v, want t0+2h (--max-subscription-lifetime 24h)", r, exp)
	}
	// One per app for application callers too.
	wantError(t, f.subscribe("APPrw", subBody(userRes(f.U3), sk.URL, t0.Add(2*time.Hour))), http.StatusConflict, "ExtensionError", msgSubExists)
	// Without Presence.Read.All (or ReadWrite.All) still 403; MSA still 403.
	wantError(t, f.subscribe("APPx", subBody(userRes(f.U2), sk.URL, t0.Add(2*time.Hour))), http.StatusForbidden, "ExtensionError", "")
	wantError(t, f.subscribe("MSA", subBody(userRes(f.U2), sk.URL, t0.Add(2*time.Hour))), http.StatusForbidden, "ExtensionError", "")
	// Delegated callers: 24 h is the cap now.
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(24*time.Hour)))
	wantError(t, f.subscribe("D2ra", subBody(userRes(f.U1), sk.URL, t0.Add(24*time.Hour+time.Minute))), http.StatusBadRequest, "ExtensionError", "")

	// The application subscription is delivered, validated for app A.
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	var d *delivery
	eventually(t, deliveryWithin, func() bool {
		for _, x := range sk.deliveries() {
			if items := x.items(); len(items) > 0 && items[0]["subscriptionId"] == r.str("id") {
				d = x
				return true
			}
		}
		return false
	}, func() string { return "the application subscription got no notification: " + sk.dump() })
	data := decryptItem(t, d.items()[0])
	if data["availability"] != "Busy" || data["activity"] != "InACall" {
		t.Errorf("decrypted %v, want Busy/InACall", data)
	}
	toks, _ := d.JSON["validationTokens"].([]any)
	if len(toks) != 1 {
		t.Fatalf("validationTokens %v", d.JSON["validationTokens"])
	}
	claims := verifyValidationToken(t, s, toks[0].(string))
	if !audIs(claims["aud"], f.A) || claims["tid"] != f.T || claims["appid"] != publisherAppID {
		t.Errorf("validationToken claims %v", claims)
	}
	if claims["iss"] != "https://presenced.e2e.test" {
		t.Errorf("validationToken iss %v, want the --public-url https://presenced.e2e.test (decision 5)", claims["iss"])
	}
	// It lives past 60 minutes.
	advanceOn(t, s, "PT90M")
	wantStatus(t, f.get(f.p("/subscriptions/%s", r.str("id")), "APPr"), http.StatusOK)
}

// Without --allow-app-subscriptions (the main server) application tokens
// cannot subscribe, and 60 minutes is the cap: see C11 #94 and #97.
