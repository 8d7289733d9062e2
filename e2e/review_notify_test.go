package e2e

// Review of change notifications (graph-presence.md section 4 and the
// rules of section 5 as they apply to /subscriptions): cases that held a
// discrepancy between the spec and the server.

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// 4.2: checks the validation table does not list (Web Push members and
// other members presence does not take, latestSupportedTlsVersion) come
// after those it does, so a request failing a listed check gets that
// check's answer: 403 for the permission (#5), ExtensionError for the
// expiry (#9), Graph's words for the certificate (#11).
func TestReviewNotifyUnlistedChecksComeLast(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	exp := t0.Add(50 * time.Minute)
	unlisted := map[string][2]any{
		"web push":                  {"vapidPublicKey", "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"},
		"unknown member":            {"colour", "blue"},
		"bad latestSupportedTlsVer": {"latestSupportedTlsVersion", "v9_9"},
	}
	for name, kv := range unlisted {
		t.Run(name, func(t *testing.T) {
			f := f.in(t)
			k, v := kv[0].(string), kv[1]
			// Alone, it is refused with 400.
			wantError(t, f.subscribe("D1ra", with(subBody(userRes(f.U2), sk.URL, exp), k, v)), http.StatusBadRequest, "InvalidRequest", "")
			// #5: a token that may not subscribe is refused first.
			for _, tok := range []string{"APPr", "D1r"} {
				r := f.subscribe(tok, with(subBody(userRes(f.U2), sk.URL, exp), k, v))
				wantError(t, r, http.StatusForbidden, "ExtensionError", msgSubForbiddenFull)
			}
			// #9: the expiry's answer, not this member's.
			r := f.subscribe("D1ra", with(subBody(userRes(f.U2), sk.URL, t0.Add(61*time.Minute)), k, v))
			wantError(t, r, http.StatusBadRequest, "ExtensionError", msgSubExpiration60)
			// #11: the certificate's answer.
			b := richBody(subBody(userRes(f.U2), sk.URL, exp))
			b["encryptionCertificate"] = "bm90IGEgY2VydGlmaWNhdGU="
			b[k] = v
			wantError(t, f.subscribe("D1ra", b), http.StatusBadRequest, "", "Certificate validation error: Cannot find the requested object.")
		})
	}
	if n := len(sk.handshakeList()); n != 0 {
		t.Errorf("%d handshakes for refused requests, want none", n)
	}
	// Annotations are not members: accepted.
	b := subBody(userRes(f.U2), sk.URL, exp)
	b["@odata.type"] = "#microsoft.graph.subscription"
	b["clientState@odata.type"] = "#Edm.String"
	f.mustSubscribe("D1ra", b)
}

// 5.2: a member with an empty name is a bad request (400), not a server
// fault (500).
func TestReviewNotifyEmptyMemberName(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	r := f.subscribe("D1ra", with(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)), "", 1))
	wantError(t, r, http.StatusBadRequest, "", "")
	id := f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))).str("id")
	r = f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"": "x"})
	wantError(t, r, http.StatusBadRequest, "", "")
}

// 1.12: reading subscriptions (get, list) takes Presence.Read.All (or
// Subscription.Read.All); a token without either is refused, as are
// application tokens and personal accounts.
func TestReviewNotifyGetListNeedPermission(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		sk := newSink(t)
		t0 := nowOn(t, f.s)
		id := f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))).str("id")
		for _, tok := range []string{"D1r", "D1rw", "D1x", "APPr", "APPrw", "MSA"} {
			wantError(t, f.get(f.p("/subscriptions"), tok), http.StatusForbidden, "ExtensionError", msgSubForbiddenFull)
		}
		for _, tok := range []string{"D1r", "D1rw", "D1x"} {
			wantError(t, f.get(f.p("/subscriptions/%s", id), tok), http.StatusForbidden, "ExtensionError", msgSubForbiddenFull)
		}
		wantStatus(t, f.get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusOK)
		wantStatus(t, f.get(f.p("/subscriptions"), "D1ra"), http.StatusOK)
		// Subscription.Read.All alone reads too.
		sra := f.mint(f.delegated(f.T, f.U1, f.A, "Subscription.Read.All"))
		wantStatus(t, f.s.do(t, "GET", f.p("/subscriptions/%s", id), sra, nil), http.StatusOK)
	})
}

// 4.4: with Subscription.Read.All a delegated caller lists the
// subscriptions every application made for the signed-in user (and only
// that user's); without it, only its own application's.
func TestReviewNotifyListSubscriptionReadAll(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	a := f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))).str("id")
	b := f.mustSubscribeAs(f.d1raB(), subBody(userRes(f.U3), sk.URL, t0.Add(50*time.Minute))).str("id")
	f.mustSubscribe("D2ra", subBody(userRes(f.U1), sk.URL, t0.Add(50*time.Minute)))

	ids := func(r *resp) map[string]bool {
		t.Helper()
		wantStatus(t, r, http.StatusOK)
		out := map[string]bool{}
		v, _ := r.get("value")
		arr, _ := v.([]any)
		for _, x := range arr {
			m, _ := x.(map[string]any)
			s, _ := m["id"].(string)
			out[s] = true
		}
		return out
	}
	all := f.mint(f.delegated(f.T, f.U1, f.A, "Presence.Read.All", "Subscription.Read.All"))
	got := ids(f.s.do(t, "GET", f.p("/subscriptions"), all, nil))
	if len(got) != 2 || !got[a] || !got[b] {
		t.Errorf("list with Subscription.Read.All: %v, want U1's subscriptions of apps A and B (%s, %s)", got, a, b)
	}
	got = ids(f.get(f.p("/subscriptions"), "D1ra"))
	if len(got) != 1 || !got[a] {
		t.Errorf("list without Subscription.Read.All: %v, want app A's only (%s)", got, a)
	}
}

// 4.3 #1, 4.5: the notification URL's own query string is preserved as it
// is (order and encoding) in the handshake, which appends validationToken;
// and in deliveries.
func TestReviewNotifyHandshakeKeepsQuery(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	const query = "z=1&a=b%20c&flag"
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL+"/hook?"+query, t0.Add(50*time.Minute)))
	hs := sk.handshakeList()
	if len(hs) != 1 || !strings.HasPrefix(hs[0].RawQuery, query+"&validationToken=") {
		var qs []string
		for _, h := range hs {
			qs = append(qs, h.RawQuery)
		}
		t.Fatalf("handshake queries %q, want one starting %q", qs, query+"&validationToken=")
	}
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	if q := sk.waitPosts(t, 1, deliveryWithin)[0].RawQuery; q != query {
		t.Errorf("notification query %q, want %q", q, query)
	}
}

// 4.4: a subscription that reached its expirationDateTime sends nothing
// more, even for a change the same clock advance made after the expiry
// (here the expiry of the session, 15 minutes after the subscription's).
func TestReviewNotifyNothingAfterExpiry(t *testing.T) {
	f := newFixture(t)
	sk, marker := newSink(t), newSink(t)
	t0 := nowOn(t, f.s)
	id := f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(45*time.Minute))).str("id")
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	sk.waitItems(t, 1, deliveryWithin)

	advance(t, "PT20M")
	// App B's subscription outlives the session: it is the marker that the
	// session's expiry was notified.
	f.mustSubscribeAs(f.d1raB(), subBody(userRes(f.U2), marker.URL, nowOn(t, f.s).Add(50*time.Minute)))
	advance(t, "PT40M") // t0+60m: the subscription expired at t0+45m, the session now
	items := marker.waitItems(t, 1, deliveryWithin)
	if rd, _ := items[0]["resourceData"].(map[string]any); rd["id"] != f.U2 {
		t.Fatalf("marker item %v, want U2's", items[0])
	}
	advance(t, "PT1S")
	if n := len(sk.deliveries()); n != 1 {
		t.Errorf("the expired subscription's sink got %d POSTs, want 1 (none after its expiry): %s", n, sk.dump())
	}
	wantError(t, f.get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusNotFound, "", "")
}
