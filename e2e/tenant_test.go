package e2e

import (
	"testing"
)

// Decision 2: the same user id in two tenants is two users; nothing of one
// tenant is visible from another, for delegated and application callers.
func TestTenantIsolation(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		g := f.inTenant(newGUID()) // same apps and users, another tenant

		f.clientSession(f.U1, "desktop", "Available", "Available", "")
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		wantEmptyOK(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U1), "APPrw", statusText("tenant one", nil)))
		f.outOfOffice(f.U1, true, ptr("T1 leave"))
		wantEmptyOK(t, f.preferred(f.U2, "DoNotDisturb", "DoNotDisturb", "", "APPrw"))
		f.mustSet(f.U2, "Available", "Available", "PT1H", "APPrw")

		f.wantPresence(f.U1, "Busy", "InACall")
		f.wantPresence(f.U2, "DoNotDisturb", "DoNotDisturb")

		offline := func(t *testing.T, r *resp) {
			t.Helper()
			if r.str("availability") != "Offline" || r.str("activity") != "Offline" {
				t.Errorf("%s: want Offline/Offline in the other tenant", r)
			}
			if v, ok := r.get("statusMessage"); !ok || v != nil {
				t.Errorf("%s: statusMessage visible across tenants", r)
			}
			if v, _ := r.get("outOfOfficeSettings", "isOutOfOffice"); v != false {
				t.Errorf("%s: out-of-office visible across tenants", r)
			}
		}
		for _, tok := range []string{"D1ra", "APPr", "APPrw"} {
			offline(t, g.get(g.p("/users/%s/presence", g.U1), tok))
			offline(t, g.get(g.p("/communications/presences/%s", g.U2), tok))
		}
		offline(t, g.get(g.p("/me/presence"), "D1r"))
		r := g.post(g.p("/communications/getPresencesByUserId"), "APPr", map[string]any{"ids": []string{g.U1, g.U2}})
		wantStatus(t, r, 200)
		vs := values(t, r)
		if len(vs) != 2 {
			t.Errorf("%s: %d values, want 2", r, len(vs))
		}
		for _, v := range vs {
			if v["availability"] != "Offline" {
				t.Errorf("bulk across tenants: %v", v)
			}
		}

		// App A's session of U1 in tenant 1 is not a session in tenant 2.
		wantError(t, g.clear(g.U1, "APPrw"), 404, "NotFound", "")

		// Writes in tenant 2 stay in tenant 2.
		g.mustSet(g.U1, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
		g.wantPresence(g.U1, "DoNotDisturb", "Presenting")
		f.wantPresence(f.U1, "Busy", "InACall")
		wantEmptyOK(t, g.clear(g.U1, "APPrw"))
		f.wantPresence(f.U1, "Busy", "InACall")
		g.wantPresence(g.U1, "Offline", "Offline")

		// A delegated user of tenant 2 with the same oid is not U1 of tenant 1.
		if got := g.get(g.p("/me/presence"), "D1rw").str("availability"); got != "Offline" {
			t.Errorf("D1rw of tenant 2 on /me: %s, want Offline", got)
		}
	})
}

// Decision 2: the test hooks are keyed by tenant too.
func TestTenantIsolationOfHooks(t *testing.T) {
	f := newFixture(t)
	g := f.inTenant(newGUID())
	f.clientSession(f.U1, "desktop", "Busy", "Busy", "")
	f.calendarBusy(f.U2, true)
	f.clientSession(f.U2, "desktop", "Available", "Available", "")
	f.presenceEnabled(f.U3, false)
	g.clientSession(g.U2, "desktop", "Available", "Available", "")
	g.wantPresence(g.U1, "Offline", "Offline")
	g.wantPresence(g.U2, "Available", "Available")
	g.wantPresence(g.U3, "Offline", "Offline")
	f.wantPresence(f.U1, "Busy", "Busy")
	f.wantPresence(f.U2, "Busy", "InAMeeting")
	f.wantPresence(f.U3, "PresenceUnknown", "PresenceUnknown")
}
