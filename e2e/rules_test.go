package e2e

import (
	"strings"
	"testing"
)

// seqOf reads the sequenceNumber of user (GETP).
func (f *fixture) seqOf(user string) string {
	f.t.Helper()
	s := f.getp(user).str("sequenceNumber")
	if !seqRE.MatchString(s) {
		f.t.Fatalf("sequenceNumber = %q, want a letter and 10 digits", s)
	}
	return s
}

// 3.7: sequenceNumber changes exactly when the visible presence object does,
// whoever changes it (an action, a hook, the clock), and never goes back.
func TestSequenceNumberRules(t *testing.T) {
	f := newFixture(t)
	u := f.U1
	s0 := f.seqOf(u)

	// Writes that change nothing visible keep it.
	wantEmptyOK(t, f.preferred(u, "DoNotDisturb", "DoNotDisturb", "", "APPrw")) // no session: still Offline
	if s := f.seqOf(u); s != s0 {
		t.Errorf("a preferred presence without a session changed nothing visible, yet sequenceNumber %s -> %s", s0, s)
	}
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/clearUserPreferredPresence", u), "APPrw", nil))
	f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
	s1 := f.seqOf(u)
	if !(s1 > s0) {
		t.Fatalf("after setPresence: %s, want > %s", s1, s0)
	}
	f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw") // a refresh showing the same pair
	if s := f.seqOf(u); s != s1 {
		t.Errorf("a refresh with the same pair: sequenceNumber %s -> %s, want unchanged", s1, s)
	}
	advance(t, "PT10M") // a Busy session does not fade: nothing changes
	if s := f.seqOf(u); s != s1 {
		t.Errorf("time passing without a visible change: sequenceNumber %s -> %s, want unchanged", s1, s)
	}

	// Hooks change it.
	f.outOfOffice(u, true, ptr("gone"))
	s2 := f.seqOf(u)
	if !(s2 > s1) {
		t.Errorf("after the out-of-office hook: %s, want > %s", s2, s1)
	}
	// So does a change of the out-of-office message alone (outOfOfficeSettings
	// is part of the visible object; the pair stays Busy/InACall).
	f.outOfOffice(u, true, ptr("gone fishing"))
	if s := f.seqOf(u); !(s > s2) {
		t.Errorf("after a change of the out-of-office message alone: %s, want > %s", s, s2)
	}
	s2 = f.seqOf(u)

	// A status message expiring changes it.
	t0 := clockNow(t)
	exp := map[string]any{"dateTime": t0.Add(5 * 60e9).UTC().Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"}
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setStatusMessage", u), "APPrw", statusText("brb", exp)))
	s3 := f.seqOf(u)
	if !(s3 > s2) {
		t.Errorf("after setStatusMessage: %s, want > %s", s3, s2)
	}
	advance(t, "PT5M")
	s4 := f.seqOf(u)
	if !(s4 > s3) {
		t.Errorf("after the status message expired: %s, want > %s", s4, s3)
	}

	// Several clock changes in one advance: fade, fade, expiry.
	v := f.U2
	f.mustSet(v, "Available", "Available", "PT1H", "APPrw")
	a := f.seqOf(v)
	advance(t, "PT2H")
	f.wantPresence(v, "Offline", "Offline")
	b := f.seqOf(v)
	if !(b > a) {
		t.Errorf("after fade, fade and expiry in one advance: %s, want > %s", b, a)
	}
	if c := f.seqOf(v); c != b {
		t.Errorf("two GETs: %s then %s", b, c)
	}
}

// 1.0 "User key", 1.5: GUIDs are GUIDs in any case: the user id in a path
// and in an oid, the tenant id in a tid, the app id against a sessionId.
func TestGUIDCaseInsensitivity(t *testing.T) {
	f := newFixture(t)
	// Written through the upper-case path, read through the lower-case one.
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setPresence", strings.ToUpper(f.U1)), "APPrw", setBody(f.A, "Busy", "InACall", "PT1H")))
	f.wantPresence(f.U1, "Busy", "InACall")

	// A delegated token with upper-case oid and tid is the same user of the
	// same tenant; /me answers the canonical id.
	up := f.tokClaims("D1rw")
	up["oid"] = strings.ToUpper(f.U1)
	up["tid"] = strings.ToUpper(f.T)
	up["azp"] = strings.ToUpper(f.A)
	tok := keys.Mint("ES256", up)
	r := srv.do(t, "GET", f.p("/me/presence"), tok, nil)
	wantStatus(t, r, 200)
	if r.str("id") != f.U1 || r.str("activity") != "InACall" {
		t.Errorf("upper-case oid/tid: %s, want id %s Busy/InACall", r, f.U1)
	}
	if !strings.Contains(r.str("@odata.context"), "users('"+f.U1+"')") {
		t.Errorf("@odata.context = %q, want the canonical id", r.str("@odata.context"))
	}
	// The upper-case azp owns the same session as the lower-case sessionId.
	r = srv.do(t, "POST", f.p("/me/presence/clearPresence"), tok, map[string]any{"sessionId": f.A})
	wantEmptyOK(t, r)
	f.wantPresence(f.U1, "Offline", "Offline")
	// The owner of a session may name it in upper case.
	f.mustSet(f.U1, "Away", "Away", "PT1H", "APPrw")
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/clearPresence", f.U1), "APPrw", map[string]any{"sessionId": strings.ToUpper(f.A)}))
	f.wantPresence(f.U1, "Offline", "Offline")
	// A delegated writer's own id in upper case is still "self".
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setPresence", strings.ToUpper(f.U1)), "D1rw", setBody(f.A, "Busy", "InACall", "PT1H")))
}

// Decision 4: without --public-url, @odata.context is derived from the
// request's own host.
func TestODataContextFromRequestHost(t *testing.T) {
	f := newFixture(t)
	r := f.get(f.p("/me/presence"), "D1r", withHost("presence.internal.example:8443"))
	wantStatus(t, r, 200)
	want := "http://presence.internal.example:8443/v1.0/$metadata#users('" + f.U1 + "')/presence/$entity"
	if got := r.str("@odata.context"); got != want {
		t.Errorf("@odata.context = %q, want %q", got, want)
	}
}

// Conformance --rate-limit: 0 turns throttling off; a budget change applies
// at once.
func TestThrottlingOff(t *testing.T) {
	f := newFixture(t)
	limitFor(t, 2)
	path := f.p("/users/%s/presence", f.U1)
	wantStatus(t, f.get(path, "APPr"), 200)
	wantStatus(t, f.get(path, "APPr"), 200)
	want429(t, f.get(path, "APPr"))
	setLimit(t, 0)
	for range 10 {
		wantStatus(t, f.get(path, "APPr"), 200)
	}
	setLimit(t, 2)
	want429(t, f.get(path, "APPr"))
}

// More validation at the edges of the rules.
func TestValidationEdges(t *testing.T) {
	f := newFixture(t)
	set := f.p("/users/%s/presence/setPresence", f.U1)
	t.Run("durations", func(t *testing.T) {
		f := f.in(t)
		for d, ok := range map[string]bool{
			"PT0S": false, "PT4M59.9S": false, "PT4H0.1S": false,
			"P0DT1H": true, "PT1H30M": true, "PT5M0.5S": true,
		} {
			r := f.post(set, "APPrw", setBody(f.A, "Busy", "InACall", d))
			if ok {
				wantEmptyOK(t, r)
			} else {
				wantError(t, r, 400, "InvalidArgument", msgDurationRange)
			}
		}
		for _, d := range []string{"", "P", "PT", "5M", "PT5", "P1M", "P1Y", "P1W"} {
			wantError(t, f.post(set, "APPrw", map[string]any{"sessionId": f.A, "availability": "Busy", "activity": "InACall", "expirationDuration": d}), 400, "", "")
		}
	})
	t.Run("wrong JSON types", func(t *testing.T) {
		f := f.in(t)
		for _, b := range []string{
			`{"sessionId":1,"availability":"Busy","activity":"InACall"}`,
			`{"sessionId":"` + f.A + `","availability":["Busy"],"activity":"InACall"}`,
			`{"sessionId":"` + f.A + `","availability":"Busy","activity":"InACall","expirationDuration":300}`,
			`[]`, `"x"`, `null`,
		} {
			wantError(t, f.post(set, "APPrw", b), 400, "", "")
		}
	})
	t.Run("status message", func(t *testing.T) {
		f := f.in(t)
		p := f.p("/me/presence/setStatusMessage")
		long := strings.Repeat("lorem ipsum ", 100) // > 280 characters: not enforced
		wantEmptyOK(t, f.post(p, "D1rw", statusText(long, nil)))
		if got := f.getp(f.U1).str("statusMessage", "message", "content"); len(got) < 1000 {
			t.Errorf("long content came back with %d characters", len(got))
		}
		wantError(t, f.post(p, "D1rw", statusText("x", map[string]any{"dateTime": "2030-01-01T00:00:00"})), 400, "InvalidArgument", "")
		wantError(t, f.post(p, "D1rw", statusText("x", map[string]any{"timeZone": "UTC"})), 400, "InvalidArgument", "")
	})
	t.Run("delegated sessionId of another app", func(t *testing.T) {
		f := f.in(t)
		wantError(t, f.post(f.p("/me/presence/setPresence"), "D1rw", setBody(f.B, "Busy", "InACall", "PT1H")), 400, "InvalidArgument", msgSessionInvalid)
	})
}
