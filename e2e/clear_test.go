package e2e

import (
	"strings"
	"testing"
)

const msgSessionInvalid = "The provided [SessionId] is invalid."

// C6 #49, #50: clearPresence removes the app's session, then 404.
func TestC6_ClearPresence(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw") // #23
		f.wantPresence(f.U1, "Available", "Available")
		wantEmptyOK(t, f.clear(f.U1, "APPrw")) // #49
		f.wantPresence(f.U1, "Offline", "Offline")
		wantError(t, f.clear(f.U1, "APPrw"), 404, "NotFound", "") // #50
		// Never set at all.
		wantError(t, f.clear(f.U2, "APPrw"), 404, "NotFound", "")
	})
}

// clearPresence on every address and name.
func TestC6_ClearPresenceAddresses(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		for _, c := range []struct{ name, path, tok string }{
			{"A2 qualified", "/users/%s/presence/microsoft.graph.clearPresence", "APPrw"},
			{"A3", "/communications/presences/%s/clearPresence", "APPrw"},
			{"A1 delegated self", "/me/presence/clearPresence", "D1rw"},
			{"case-insensitive", "/users/%s/PRESENCE/ClearPresence", "APPrw"},
		} {
			t.Run(c.name, func(t *testing.T) {
				g := f.in(t)
				g.U1 = newGUID()
				g.mustSet(g.U1, "Busy", "InACall", "PT1H", c.tok)
				path := "/" + g.v + strings.ReplaceAll(c.path, "%s", g.U1)
				wantEmptyOK(t, g.post(path, c.tok, map[string]any{"sessionId": g.appOf(c.tok)}))
				g.wantPresence(g.U1, "Offline", "Offline")
			})
		}
	})
}

// C6 #52: clearing one app's session leaves the other's.
func TestC6_52_ClearOneOfTwoSessions(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		f.mustSet(f.U1, "Available", "Available", "PT1H", "APPBrw")
		f.wantPresence(f.U1, "Busy", "InACall")
		wantEmptyOK(t, f.clear(f.U1, "APPrw"))
		f.wantPresence(f.U1, "Available", "Available")
		// A's session is gone, B's is not.
		wantError(t, f.clear(f.U1, "APPrw"), 404, "NotFound", "")
		wantEmptyOK(t, f.clear(f.U1, "APPBrw"))
		f.wantPresence(f.U1, "Offline", "Offline")
	})
}

// C6 #53 and the other clearPresence failures.
func TestC6_ClearPresenceFailures(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U2, "Busy", "InACall", "PT1H", "D2rw")
		f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPBrw")
		t.Run("#53 delegated clears another user's session", func(t *testing.T) {
			f := f.in(t)
			r := f.post(f.p("/users/%s/presence/clearPresence", f.U2), "D1rw", map[string]any{"sessionId": f.A})
			wantError(t, r, 403, "Forbidden", msgOtherUser)
		})
		t.Run("read-only tokens", func(t *testing.T) {
			f := f.in(t)
			for _, tok := range []string{"APPr", "APPx", "D1ra"} {
				r := f.post(f.p("/users/%s/presence/clearPresence", f.U2), tok, map[string]any{"sessionId": f.A})
				wantError(t, r, 403, "", "")
			}
		})
		t.Run("sessionId of another app", func(t *testing.T) {
			f := f.in(t)
			r := f.post(f.p("/users/%s/presence/clearPresence", f.U2), "APPrw", map[string]any{"sessionId": f.B})
			wantError(t, r, 400, "InvalidArgument", msgSessionInvalid)
		})
		t.Run("no sessionId", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/users/%s/presence/clearPresence", f.U2), "APPrw", map[string]any{}), 400, "InvalidArgument", "")
		})
		t.Run("no Content-Type", func(t *testing.T) {
			f := f.in(t)
			r := f.post(f.p("/users/%s/presence/clearPresence", f.U2), "APPrw", map[string]any{"sessionId": f.A}, noContentType())
			wantError(t, r, 400, "BadRequest", msgBadPayload)
		})
		t.Run("unknown parameter", func(t *testing.T) {
			f := f.in(t)
			r := f.post(f.p("/users/%s/presence/clearPresence", f.U2), "APPrw", map[string]any{"sessionId": f.A, "x": true})
			wantError(t, r, 400, "BadRequest", "The parameter 'x' in the request payload is not a valid parameter for the operation 'clearPresence'.")
		})
		// Both sessions of U2 are untouched.
		f.wantPresence(f.U2, "Busy", "InACall")
		wantEmptyOK(t, f.clear(f.U2, "D2rw"))
		wantEmptyOK(t, f.clear(f.U2, "APPBrw"))
	})
}

// 3.6: clearPresence does not clear the user-preferred presence.
func TestC6_ClearPresenceKeepsPreferred(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		wantEmptyOK(t, f.preferred(f.U1, "DoNotDisturb", "DoNotDisturb", "", "APPrw"))
		f.wantPresence(f.U1, "DoNotDisturb", "DoNotDisturb")
		wantEmptyOK(t, f.clear(f.U1, "APPrw"))
		f.wantPresence(f.U1, "Offline", "Offline")
		f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
		f.wantPresence(f.U1, "DoNotDisturb", "DoNotDisturb")
	})
}

// 3.6: each clear action removes only its own part: clearUserPreferredPresence
// leaves the sessions, the status message and the out-of-office overlay;
// clearPresence leaves the other sessions, the status message and the
// overlay.
func TestC6_ClearActionsLeaveTheRest(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		f.mustSet(f.U1, "Away", "Away", "PT1H", "APPBrw")
		wantEmptyOK(t, f.preferred(f.U1, "DoNotDisturb", "DoNotDisturb", "", "APPrw"))
		wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("Still here", nil)))
		f.outOfOffice(f.U1, true, ptr("On leave"))
		rest := func(what string, r *resp) {
			t.Helper()
			if got := r.str("statusMessage", "message", "content"); got != "Still here" {
				t.Errorf("after %s: status message %q, want Still here", what, got)
			}
			if v, _ := r.get("outOfOfficeSettings", "isOutOfOffice"); v != true {
				t.Errorf("after %s: isOutOfOffice = %v, want true", what, v)
			}
			if v, _ := r.get("outOfOfficeSettings", "message"); v != "On leave" {
				t.Errorf("after %s: outOfOfficeSettings.message = %v, want On leave", what, v)
			}
		}
		f.wantPresence(f.U1, "DoNotDisturb", "DoNotDisturb")

		wantEmptyOK(t, f.post(f.p("/users/%s/presence/clearUserPreferredPresence", f.U1), "APPrw", nil))
		rest("clearUserPreferredPresence", f.wantPresence(f.U1, "Busy", "InACall"))

		wantEmptyOK(t, f.clear(f.U1, "APPrw"))
		rest("clearPresence", f.wantPresence(f.U1, "Away", "Away"))
	})
}
