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
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
			f.wantPresence(u, "Busy", "InACall")
		})
		t.Run("#84 app DoNotDisturb/Presenting + app Busy/InACall", func(t *testing.T) {
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
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			f.mustSet(u, "Away", "Away", "PT1H", "APPrw")
			f.wantPresence(u, "Available", "Available")
		})
		t.Run("app Away + app Busy", func(t *testing.T) {
			u := newGUID()
			f.mustSet(u, "Away", "Away", "PT1H", "APPrw")
			f.mustSet(u, "Busy", "InAConferenceCall", "PT1H", "APPBrw")
			f.wantPresence(u, "Busy", "InAConferenceCall")
		})
		t.Run("client DoNotDisturb/Focusing + app Busy", func(t *testing.T) {
			u := newGUID()
			f.clientSession(u, "desktop", "DoNotDisturb", "Focusing", "")
			f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
			f.wantPresence(u, "DoNotDisturb", "Focusing")
		})
		t.Run("client Busy/Busy + app Available", func(t *testing.T) {
			u := newGUID()
			f.clientSession(u, "mobile", "Busy", "Busy", "")
			f.mustSet(u, "Available", "Available", "PT1H", "APPrw")
			f.wantPresence(u, "Busy", "Busy")
		})
		t.Run("two client sessions", func(t *testing.T) {
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
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			f.outOfOffice(u, true, ptr("On leave"))
			wantOOF(t, f.wantPresence(u, "Available", "OutOfOffice"), true, "On leave")
			f.outOfOffice(u, false, nil)
			wantOOF(t, f.wantPresence(u, "Available", "Available"), false, nil)
		})
		t.Run("A12 no session", func(t *testing.T) {
			u := newGUID()
			f.outOfOffice(u, true, ptr("Sabbatical"))
			wantOOF(t, f.wantPresence(u, "Offline", "OutOfOffice"), true, "Sabbatical")
		})
		t.Run("in a call, out of office", func(t *testing.T) {
			u := newGUID()
			f.outOfOffice(u, true, nil)
			f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
			wantOOF(t, f.wantPresence(u, "Busy", "InACall"), true, nil)
		})
		t.Run("on top of a preferred Available", func(t *testing.T) {
			u := newGUID()
			f.clientSession(u, "desktop", "Busy", "Busy", "")
			wantEmptyOK(t, f.preferred(u, "Available", "Available", "", "APPrw"))
			f.outOfOffice(u, true, ptr("Away"))
			f.wantPresence(u, "Available", "OutOfOffice")
		})
		t.Run("visible to other readers and in bulk", func(t *testing.T) {
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
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			f.calendarBusy(u, true)
			f.wantPresence(u, "Busy", "InAMeeting")
			f.calendarBusy(u, false)
			f.wantPresence(u, "Available", "Available")
		})
		t.Run("not over a higher session", func(t *testing.T) {
			u := newGUID()
			f.calendarBusy(u, true)
			f.mustSet(u, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
			f.wantPresence(u, "DoNotDisturb", "Presenting")
		})
		t.Run("not when Offline", func(t *testing.T) {
			u := newGUID()
			f.calendarBusy(u, true)
			f.wantPresence(u, "Offline", "Offline")
		})
		t.Run("not over a preferred presence", func(t *testing.T) {
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			wantEmptyOK(t, f.preferred(u, "Available", "Available", "", "APPrw"))
			f.calendarBusy(u, true)
			f.wantPresence(u, "Available", "Available")
		})
		t.Run("then out of office", func(t *testing.T) {
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
