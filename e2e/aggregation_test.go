package e2e

import (
	"net/http"
	"testing"
)

// C10 #83, #84, #85 and the precedence DoNotDisturb > Busy > Available > Away
// (3.4).
func TestC10_Aggregation(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t.Run("#83 client Available + app Busy/InACall", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
			f.wantPresence(u, "Busy", "InACall")
		})
		t.Run("#84 app DoNotDisturb/Presenting + app Busy/InACall", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.mustSet(u, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
			f.mustSet(u, "Busy", "InACall", "PT1H", "APPBrw")
			f.wantPresence(u, "DoNotDisturb", "Presenting")
			// Order of arrival does not matter.
			v := newGUID()
			f.mustSet(v, "Busy", "InACall", "PT1H", "APPBrw")
			f.mustSet(v, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
			f.wantPresence(v, "DoNotDisturb", "Presenting")
		})
		t.Run("#85 client Available + app Away", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			f.mustSet(u, "Away", "Away", "PT1H", "APPrw")
			f.wantPresence(u, "Available", "Available")
		})
		t.Run("app Away + app Busy", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.mustSet(u, "Away", "Away", "PT1H", "APPrw")
			f.mustSet(u, "Busy", "InAConferenceCall", "PT1H", "APPBrw")
			f.wantPresence(u, "Busy", "InAConferenceCall")
		})
		t.Run("client DoNotDisturb/Focusing + app Busy", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "DoNotDisturb", "Focusing", "")
			f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
			f.wantPresence(u, "DoNotDisturb", "Focusing")
		})
		t.Run("client Busy/Busy + app Available", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "mobile", "Busy", "Busy", "")
			f.mustSet(u, "Available", "Available", "PT1H", "APPrw")
			f.wantPresence(u, "Busy", "Busy")
		})
		t.Run("two client sessions", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "Away", "Away", "")
			f.clientSession(u, "mobile", "Available", "Available", "")
			f.wantPresence(u, "Available", "Available")
		})
	})
}

// The clientSessions hook: sessions do not fade, expire after their
// duration, can be refreshed and ended (204, then 404).
func TestC10_ClientSessionHook(t *testing.T) {
	f := newFixture(t)
	f.clientSession(f.U1, "desktop", "Available", "Available", "PT1H")
	f.wantPresence(f.U1, "Available", "Available")
	advance(t, "PT30M")
	f.wantPresence(f.U1, "Available", "Available") // no fade
	advance(t, "PT30M")
	f.wantPresence(f.U1, "Offline", "Offline") // expired
	f.clientSession(f.U1, "desktop", "Available", "Available", "")
	f.clientSession(f.U1, "desktop", "Busy", "InAMeeting", "") // refresh replaces the pair
	f.wantPresence(f.U1, "Busy", "InAMeeting")
	path := f.hookPath(f.U1, "clientSessions/desktop")
	wantStatus(t, srv.do(t, "DELETE", path, "", nil), http.StatusNoContent)
	f.wantPresence(f.U1, "Offline", "Offline")
	wantError(t, srv.do(t, "DELETE", path, "", nil), 404, "", "")
	// The default lifetime is P8D.
	f.clientSession(f.U2, "web", "Available", "Available", "")
	advance(t, "P7DT23H59M59S")
	f.wantPresence(f.U2, "Available", "Available")
	advance(t, "PT1S")
	f.wantPresence(f.U2, "Offline", "Offline")
}

// C10 #87 and A12: the out-of-office overlay.
func TestC10_87_OutOfOffice(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		wantOOF := func(t *testing.T, r *resp, on bool, msg any) {
			t.Helper()
			if v, _ := r.get("outOfOfficeSettings", "isOutOfOffice"); v != on {
				t.Errorf("isOutOfOffice = %v, want %v", v, on)
			}
			if v, ok := r.get("outOfOfficeSettings", "message"); !ok || v != msg {
				t.Errorf("outOfOfficeSettings.message = %v (present %v), want %v", v, ok, msg)
			}
		}
		t.Run("#87 client Available", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			f.outOfOffice(u, true, ptr("On leave"))
			wantOOF(t, f.wantPresence(u, "Available", "OutOfOffice"), true, "On leave")
			f.outOfOffice(u, false, nil)
			wantOOF(t, f.wantPresence(u, "Available", "Available"), false, nil)
		})
		t.Run("A12 no session", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.outOfOffice(u, true, ptr("Sabbatical"))
			wantOOF(t, f.wantPresence(u, "Offline", "OutOfOffice"), true, "Sabbatical")
		})
		t.Run("in a call, out of office", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.outOfOffice(u, true, nil)
			f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
			wantOOF(t, f.wantPresence(u, "Busy", "InACall"), true, nil)
		})
		t.Run("on top of a preferred Available", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "Busy", "Busy", "")
			wantEmptyOK(t, f.preferred(u, "Available", "Available", "", "APPrw"))
			f.outOfOffice(u, true, ptr("Away"))
			f.wantPresence(u, "Available", "OutOfOffice")
		})
		t.Run("visible to other readers and in bulk", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.outOfOffice(u, true, ptr("Back Monday"))
			r := f.post(f.p("/communications/getPresencesByUserId"), "APPr", map[string]any{"ids": []string{u}})
			wantStatus(t, r, 200)
			if v, _ := r.get("value", 0, "outOfOfficeSettings", "message"); v != "Back Monday" {
				t.Errorf("bulk outOfOfficeSettings.message = %v", v)
			}
		})
	})
}

// C10 #90 and 3.4 overlay 1: the calendar overlay.
func TestC10_90_CalendarBusy(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t.Run("#90 client Available", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			f.calendarBusy(u, true)
			f.wantPresence(u, "Busy", "InAMeeting")
			f.calendarBusy(u, false)
			f.wantPresence(u, "Available", "Available")
		})
		t.Run("not over a higher session", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.calendarBusy(u, true)
			f.mustSet(u, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
			f.wantPresence(u, "DoNotDisturb", "Presenting")
		})
		t.Run("not when Offline", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.calendarBusy(u, true)
			f.wantPresence(u, "Offline", "Offline")
		})
		t.Run("not over a preferred presence", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			wantEmptyOK(t, f.preferred(u, "Available", "Available", "", "APPrw"))
			f.calendarBusy(u, true)
			f.wantPresence(u, "Available", "Available")
		})
		t.Run("then out of office", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			f.calendarBusy(u, true)
			f.outOfOffice(u, true, nil)
			r := f.wantPresence(u, "Busy", "InAMeeting")
			if v, _ := r.get("outOfOfficeSettings", "isOutOfOffice"); v != true {
				t.Errorf("isOutOfOffice = %v, want true", v)
			}
		})
	})
}

// 2.5 and A11: a user not enabled for presence reads PresenceUnknown.
func TestC10_PresenceEnabled(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.clientSession(f.U1, "desktop", "Available", "Available", "")
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		f.presenceEnabled(f.U1, false)
		f.wantPresence(f.U1, "PresenceUnknown", "PresenceUnknown")
		r := f.post(f.p("/communications/getPresencesByUserId"), "D1ra", map[string]any{"ids": []string{f.U1}})
		wantStatus(t, r, 200)
		if v, _ := r.get("value", 0, "availability"); v != "PresenceUnknown" {
			t.Errorf("bulk availability = %v, want PresenceUnknown", v)
		}
		f.presenceEnabled(f.U1, true)
		f.wantPresence(f.U1, "Busy", "InACall")
		// Without sessions, too.
		f.presenceEnabled(f.U2, false)
		f.wantPresence(f.U2, "PresenceUnknown", "PresenceUnknown")
	})
}

// Conformance "Test hooks": malformed hook requests are answered in the
// Graph envelope, unknown hooks are 404.
func TestHooksErrors(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		method, path string
		body         any
		status       int
	}{
		{"PUT", f.hookPath("not-a-guid", "calendarBusy"), map[string]any{"active": true}, 400},
		{"PUT", "/_test/tenants/nope/users/" + f.U1 + "/calendarBusy", map[string]any{"active": true}, 400},
		{"PUT", f.hookPath(f.U1, "clientSessions/desktop"), map[string]any{"availability": "Sleeping", "activity": "Sleeping"}, 400},
		{"PUT", f.hookPath(f.U1, "clientSessions/desktop"), `{`, 400},
		{"POST", "/_test/clock/advance", map[string]any{"by": "banana"}, 400},
		{"PUT", "/_test/limits", map[string]any{"presencePer30s": -1}, 400},
		{"GET", "/_test/nothing-here", nil, 404},
	} {
		r := srv.do(t, c.method, c.path, "", c.body)
		wantError(t, r, c.status, "", "")
	}
}

// 3.4: among sessions of the same rank the most recently refreshed one gives
// the pair; its activity is never mixed with another session's.
func TestC10_TieBreaks(t *testing.T) {
	f := newFixture(t)
	u := f.U1
	f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
	advance(t, "PT1M")
	f.mustSet(u, "Busy", "InAConferenceCall", "PT1H", "APPBrw")
	f.wantPresence(u, "Busy", "InAConferenceCall")
	advance(t, "PT1M")
	f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw") // refresh: now the most recent
	f.wantPresence(u, "Busy", "InACall")
	advance(t, "PT1M")
	f.clientSession(u, "desktop", "Busy", "InAMeeting", "")
	f.wantPresence(u, "Busy", "InAMeeting")
	wantStatus(t, srv.do(t, "DELETE", f.hookPath(u, "clientSessions/desktop"), "", nil), http.StatusNoContent)
	f.wantPresence(u, "Busy", "InACall")

	// DoNotDisturb: Presenting (app) against Focusing (client), newest wins.
	v := f.U2
	f.clientSession(v, "desktop", "DoNotDisturb", "Focusing", "")
	advance(t, "PT1M")
	f.mustSet(v, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
	f.wantPresence(v, "DoNotDisturb", "Presenting")
	advance(t, "PT1M")
	f.clientSession(v, "desktop", "DoNotDisturb", "Focusing", "")
	f.wantPresence(v, "DoNotDisturb", "Focusing")
}

// 3.4: a user not enabled for presence reads PresenceUnknown "+ overlays
// skipped": neither the calendar nor the out-of-office overlay applies.
func TestC10_PresenceUnknownSkipsOverlays(t *testing.T) {
	f := newFixture(t)
	f.clientSession(f.U1, "desktop", "Available", "Available", "")
	f.calendarBusy(f.U1, true)
	f.outOfOffice(f.U1, true, ptr("On leave"))
	f.presenceEnabled(f.U1, false)
	r := f.wantPresence(f.U1, "PresenceUnknown", "PresenceUnknown")
	wantDefaultOOF(t, r)
	f.presenceEnabled(f.U1, true)
	r = f.wantPresence(f.U1, "Busy", "InAMeeting")
	if v, _ := r.get("outOfOfficeSettings", "isOutOfOffice"); v != true {
		t.Errorf("enabled again: isOutOfOffice = %v, want true", v)
	}
}

// Conformance "Test hooks": a client session takes any pair of the
// permutation table (2.5) and shows it as it is.
func TestC10_ClientSessionPairs(t *testing.T) {
	f := newFixture(t)
	for _, p := range [][2]string{
		{"Available", "Available"}, {"Available", "OutOfOffice"}, {"Busy", "Busy"}, {"Busy", "InACall"},
		{"Busy", "InAMeeting"}, {"DoNotDisturb", "DoNotDisturb"}, {"DoNotDisturb", "Presenting"},
		{"DoNotDisturb", "Focusing"}, {"Away", "Away"}, {"BeRightBack", "BeRightBack"}, {"Offline", "OffWork"},
		{"PresenceUnknown", "PresenceUnknown"},
	} {
		u := newGUID()
		f.clientSession(u, "desktop", p[0], p[1], "")
		f.wantPresence(u, p[0], p[1])
	}
}
