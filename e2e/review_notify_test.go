package e2e

// Review of change notifications (graph-presence.md section 4 and the
// rules of section 5 as they apply to /subscriptions): cases that held a
// discrepancy between the spec and the server.

import (
	"net/http"
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
