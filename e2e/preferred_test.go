package e2e

import (
	"testing"
)

// C7 #54, #55: preferred presence is invisible without a session, and wins
// once there is one.
func TestC7_54_55_PreferredNeedsSession(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		wantEmptyOK(t, f.preferred(f.U1, "DoNotDisturb", "DoNotDisturb", "", "APPrw"))
		f.wantPresence(f.U1, "Offline", "Offline")
		f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
		f.wantPresence(f.U1, "DoNotDisturb", "DoNotDisturb")
	})
}

// C7 #56, #58 and the other pairs: preferred beats every session.
func TestC7_PreferredBeatsSessions(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		for _, c := range []struct {
			name          string
			session, pref [2]string
			want          [2]string
		}{
			{"#56 Busy/InACall session, preferred Available", [2]string{"Busy", "InACall"}, [2]string{"Available", "Available"}, [2]string{"Available", "Available"}},
			{"#58 preferred BeRightBack", [2]string{"Available", "Available"}, [2]string{"BeRightBack", "BeRightBack"}, [2]string{"BeRightBack", "BeRightBack"}},
			{"preferred Busy/Busy", [2]string{"Available", "Available"}, [2]string{"Busy", "Busy"}, [2]string{"Busy", "Busy"}},
			{"preferred Away over Presenting", [2]string{"DoNotDisturb", "Presenting"}, [2]string{"Away", "Away"}, [2]string{"Away", "Away"}},
			{"preferred appear offline", [2]string{"Busy", "InACall"}, [2]string{"Offline", "OffWork"}, [2]string{"Offline", "OffWork"}},
		} {
			t.Run(c.name, func(t *testing.T) {
				f := f.in(t)
				u := newGUID()
				f.mustSet(u, c.session[0], c.session[1], "PT1H", "APPrw")
				wantEmptyOK(t, f.preferred(u, c.pref[0], c.pref[1], "", "APPrw"))
				f.wantPresence(u, c.want[0], c.want[1])
			})
		}
	})
}

// C7 #59 and the validation of setUserPreferredPresence.
func TestC7_59_PreferredValidation(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		path := f.p("/users/%s/presence/setUserPreferredPresence", f.U1)
		for _, c := range []struct {
			name      string
			body      any
			code, msg string
			opts      []reqOpt
		}{
			{name: "#59 Busy/InACall", body: map[string]any{"availability": "Busy", "activity": "InACall"}, code: "InvalidArgument"},
			{name: "DoNotDisturb/Presenting", body: map[string]any{"availability": "DoNotDisturb", "activity": "Presenting"}, code: "InvalidArgument"},
			{name: "Available/OutOfOffice", body: map[string]any{"availability": "Available", "activity": "OutOfOffice"}, code: "InvalidArgument"},
			{name: "unknown value", body: map[string]any{"availability": "Sleeping", "activity": "Sleeping"}, code: "InvalidArgument"},
			{name: "missing activity", body: map[string]any{"availability": "Busy"}, code: "InvalidArgument"},
			{name: "zero duration", body: map[string]any{"availability": "Busy", "activity": "Busy", "expirationDuration": "PT0S"}, code: "InvalidArgument"},
			{name: "banana duration", body: map[string]any{"availability": "Busy", "activity": "Busy", "expirationDuration": "banana"}, code: "BadRequest",
				msg: "Cannot convert the literal 'banana' to the expected type 'Edm.Duration'."},
			{name: "sessionId is not a parameter", body: map[string]any{"sessionId": f.A, "availability": "Busy", "activity": "Busy"}, code: "BadRequest",
				msg: "The parameter 'sessionId' in the request payload is not a valid parameter for the operation 'setUserPreferredPresence'."},
			{name: "no Content-Type", body: map[string]any{"availability": "Busy", "activity": "Busy"}, code: "BadRequest", msg: msgBadPayload, opts: []reqOpt{noContentType()}},
		} {
			t.Run(c.name, func(t *testing.T) {
				f := f.in(t)
				wantError(t, f.post(path, "APPrw", c.body, c.opts...), 400, c.code, c.msg)
			})
		}
		t.Run("#59 Away/Away", func(t *testing.T) {
			f := f.in(t)
			wantEmptyOK(t, f.post(path, "APPrw", map[string]any{"availability": "Away", "activity": "Away"}))
		})
		t.Run("values matched case-insensitively", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			f.clientSession(u, "desktop", "Available", "Available", "")
			wantEmptyOK(t, f.preferred(u, "donotdisturb", "DONOTDISTURB", "", "APPrw"))
			f.wantPresence(u, "DoNotDisturb", "DoNotDisturb")
		})
		t.Run("no upper bound on the duration", func(t *testing.T) {
			f := f.in(t)
			wantEmptyOK(t, f.post(path, "APPrw", map[string]any{"availability": "Away", "activity": "Away", "expirationDuration": "P30D"}))
		})
	})
}

// C7 #61: clearUserPreferredPresence in all its forms, idempotent.
func TestC7_61_ClearPreferred(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		path := f.p("/users/%s/presence/clearUserPreferredPresence", f.U1)
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		wantEmptyOK(t, f.preferred(f.U1, "Available", "Available", "", "APPrw"))
		f.wantPresence(f.U1, "Available", "Available")

		// No body, no Content-Type.
		wantEmptyOK(t, f.post(path, "APPrw", nil))
		f.wantPresence(f.U1, "Busy", "InACall")

		wantEmptyOK(t, f.preferred(f.U1, "Away", "Away", "", "APPrw"))
		f.wantPresence(f.U1, "Away", "Away")
		// {} with a JSON content type.
		wantEmptyOK(t, f.post(path, "APPrw", map[string]any{}))
		f.wantPresence(f.U1, "Busy", "InACall")
		// Again, with nothing set.
		wantEmptyOK(t, f.post(path, "APPrw", map[string]any{}))
		wantEmptyOK(t, f.post(path, "APPrw", nil))
		// An empty body labelled JSON.
		wantEmptyOK(t, f.post(path, "APPrw", ""))
		// A body that is not empty needs the JSON content type (1.0 "Bodies").
		wantError(t, f.post(path, "APPrw", "{}", noContentType()), 400, "BadRequest", msgBadPayload)
		f.wantPresence(f.U1, "Busy", "InACall")

		t.Run("other addresses and names", func(t *testing.T) {
			f := f.in(t)
			for _, p := range []string{
				f.p("/users/%s/presence/microsoft.graph.clearUserPreferredPresence", f.U1),
				f.p("/communications/presences/%s/clearUserPreferredPresence", f.U1),
			} {
				wantEmptyOK(t, f.post(p, "APPrw", nil))
			}
			wantEmptyOK(t, f.post(f.p("/me/presence/clearUserPreferredPresence"), "D1rw", nil))
		})
		t.Run("unknown parameter", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(path, "APPrw", map[string]any{"x": 1}), 400, "BadRequest",
				"The parameter 'x' in the request payload is not a valid parameter for the operation 'clearUserPreferredPresence'.")
		})
		t.Run("permissions", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/users/%s/presence/clearUserPreferredPresence", f.U2), "D1rw", nil), 403, "Forbidden", msgOtherUser)
			wantError(t, f.post(path, "APPr", nil), 403, "Forbidden", "")
		})
	})
}

// C7 #62: the default expiry of a Busy preferred presence is one day.
func TestC7_62_DefaultExpiryBusy(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.clientSession(f.U1, "desktop", "Available", "Available", "P8D")
		wantEmptyOK(t, f.preferred(f.U1, "Busy", "Busy", "", "APPrw"))
		f.wantPresence(f.U1, "Busy", "Busy")
		advance(t, "PT23H59M59S")
		f.wantPresence(f.U1, "Busy", "Busy")
		advance(t, "PT1S")
		f.wantPresence(f.U1, "Available", "Available")
	})
}

// 1.7: DoNotDisturb also defaults to a day; every other pair to seven days.
// (Available and appear-offline sit on a Busy client session, so that
// their expiry shows.)
func TestC7_DefaultExpiries(t *testing.T) {
	f := newFixture(t)
	dnd, away, brb, avail, off := newGUID(), newGUID(), newGUID(), newGUID(), newGUID()
	for _, u := range []string{dnd, away, brb} {
		f.clientSession(u, "desktop", "Available", "Available", "P8D")
	}
	for _, u := range []string{avail, off} {
		f.clientSession(u, "desktop", "Busy", "InACall", "P8D")
	}
	wantEmptyOK(t, f.preferred(dnd, "DoNotDisturb", "DoNotDisturb", "", "APPrw"))
	wantEmptyOK(t, f.preferred(away, "Away", "Away", "", "APPrw"))
	wantEmptyOK(t, f.preferred(brb, "BeRightBack", "BeRightBack", "", "APPrw"))
	wantEmptyOK(t, f.preferred(avail, "Available", "Available", "", "APPrw"))
	wantEmptyOK(t, f.preferred(off, "Offline", "OffWork", "", "APPrw"))
	advance(t, "PT23H59M59S")
	f.wantPresence(dnd, "DoNotDisturb", "DoNotDisturb")
	advance(t, "PT1S")
	f.wantPresence(dnd, "Available", "Available")
	f.wantPresence(away, "Away", "Away")
	advance(t, "P5DT23H59M59S") // t0 + 7d - 1s
	f.wantPresence(away, "Away", "Away")
	f.wantPresence(brb, "BeRightBack", "BeRightBack")
	f.wantPresence(avail, "Available", "Available")
	f.wantPresence(off, "Offline", "OffWork")
	advance(t, "PT1S")
	f.wantPresence(away, "Available", "Available")
	f.wantPresence(brb, "Available", "Available")
	f.wantPresence(avail, "Busy", "InACall")
	f.wantPresence(off, "Busy", "InACall")
}

// C7 #64: an explicit duration.
func TestC7_64_ExplicitDuration(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.clientSession(f.U1, "desktop", "Available", "Available", "P8D")
		wantEmptyOK(t, f.preferred(f.U1, "DoNotDisturb", "DoNotDisturb", "PT8H", "APPrw"))
		f.wantPresence(f.U1, "DoNotDisturb", "DoNotDisturb")
		advance(t, "PT7H59M59S")
		f.wantPresence(f.U1, "DoNotDisturb", "DoNotDisturb")
		advance(t, "PT1S")
		f.wantPresence(f.U1, "Available", "Available")
	})
}

// 3.3: a later setUserPreferredPresence replaces the pair and its expiry.
func TestC7_PreferredReplaced(t *testing.T) {
	f := newFixture(t)
	f.clientSession(f.U1, "desktop", "Available", "Available", "P8D")
	wantEmptyOK(t, f.preferred(f.U1, "DoNotDisturb", "DoNotDisturb", "PT1H", "APPrw"))
	wantEmptyOK(t, f.preferred(f.U1, "BeRightBack", "BeRightBack", "PT2H", "APPrw"))
	f.wantPresence(f.U1, "BeRightBack", "BeRightBack")
	advance(t, "PT1H")
	f.wantPresence(f.U1, "BeRightBack", "BeRightBack")
	advance(t, "PT1H")
	f.wantPresence(f.U1, "Available", "Available")
}

// C7 #67: a delegated caller sets the preferred presence of another user.
func TestC7_67_PreferredOtherUser(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.clientSession(f.U2, "desktop", "Available", "Available", "")
		r := f.preferred(f.U2, "DoNotDisturb", "DoNotDisturb", "", "D1rw")
		wantError(t, r, 403, "Forbidden", msgOtherUser)
		f.wantPresence(f.U2, "Available", "Available")
		// Self, through /me, works.
		f.clientSession(f.U1, "desktop", "Available", "Available", "")
		wantEmptyOK(t, f.post(f.p("/me/presence/setUserPreferredPresence"), "D1rw", map[string]any{"availability": "DoNotDisturb", "activity": "DoNotDisturb"}))
		f.wantPresence(f.U1, "DoNotDisturb", "DoNotDisturb")
		// Other failures.
		wantError(t, f.preferred(f.U2, "Busy", "Busy", "", "APPr"), 403, "Forbidden", "")
		wantError(t, f.preferred(f.U2, "Busy", "Busy", "", "APPx"), 403, "", "")
		wantError(t, f.post(f.p("/me/presence/setUserPreferredPresence"), "MSA", map[string]any{"availability": "Busy", "activity": "Busy"}), 403, "", "")
	})
}
