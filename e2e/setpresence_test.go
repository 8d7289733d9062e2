package e2e

import (
	"strings"
	"testing"
)

// C3 #23-#27: the five setPresence pairs.
func TestC3_SetPresencePairs(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		for _, pair := range [][2]string{
			{"Available", "Available"},     // #23
			{"Busy", "InACall"},            // #24
			{"Busy", "InAConferenceCall"},  // #25
			{"Away", "Away"},               // #26 (only session)
			{"DoNotDisturb", "Presenting"}, // #27
		} {
			t.Run(pair[0]+"/"+pair[1], func(t *testing.T) {
				f := f.in(t)
				u := newGUID()
				f.mustSet(u, pair[0], pair[1], "PT1H", "APPrw")
				f.wantPresence(u, pair[0], pair[1])
			})
		}
	})
}

// 1.1 and 1.0: setPresence on every address, by its short and qualified
// name, with case-insensitive segments; 2.6: values are matched
// case-insensitively and stored canonically.
func TestC3_SetPresenceAddresses(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		for _, c := range []struct {
			name, path, tok string
		}{
			{"A2 short", "/users/%s/presence/setPresence", "APPrw"},
			{"A2 qualified", "/users/%s/presence/microsoft.graph.setPresence", "APPrw"},
			{"A3 short", "/communications/presences/%s/setPresence", "APPrw"},
			{"A3 qualified", "/communications/presences/%s/microsoft.graph.setPresence", "APPrw"},
			{"A2 case-insensitive", "/USERS/%s/Presence/SETPRESENCE", "APPrw"},
			{"qualified, case-insensitive", "/users/%s/presence/Microsoft.Graph.SetPresence", "APPrw"},
			{"A1 delegated self", "/me/presence/setPresence", "D1rw"},
			{"A1 qualified", "/me/presence/microsoft.graph.setPresence", "D1rw"},
			{"A2 delegated self", "/users/%s/presence/setPresence", "D1rw"},
		} {
			t.Run(c.name, func(t *testing.T) {
				g := f.in(t)
				g.U1 = newGUID() // a fresh user per address
				path := "/" + g.v + strings.ReplaceAll(c.path, "%s", g.U1)
				wantEmptyOK(t, g.post(path, c.tok, setBody(g.appOf(c.tok), "Busy", "InACall", "PT1H")))
				g.wantPresence(g.U1, "Busy", "InACall")
			})
		}
		t.Run("case-insensitive values", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			wantEmptyOK(t, f.post(f.p("/users/%s/presence/setPresence", u), "APPrw", setBody(strings.ToUpper(f.A), "busy", "INACALL", "PT1H")))
			f.wantPresence(u, "Busy", "InACall")
		})
		t.Run("media type matched case-insensitively", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			wantEmptyOK(t, f.post(f.p("/users/%s/presence/setPresence", u), "APPrw", setBody(f.A, "Away", "Away", "PT1H"),
				contentType("Application/JSON; charset=UTF-8")))
			f.wantPresence(u, "Away", "Away")
		})
		t.Run("write via beta, read via v1.0", func(t *testing.T) {
			u := newGUID()
			g := f.in(t)
			g.v = "beta"
			g.mustSet(u, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
			g.v = "v1.0"
			g.wantPresence(u, "DoNotDisturb", "Presenting")
		})
	})
}

const (
	msgDurationRange = "The provided [ExpirationDuration] is out of range."
	msgOtherUser     = "Cannot set the presence of another user."
)

// C4 #30-#43: validation failures.
func TestC4_SetPresenceValidation(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		path := f.p("/users/%s/presence/setPresence", f.U1)
		for _, c := range []struct {
			name      string
			body      any
			code, msg string
			opts      []reqOpt
		}{
			{name: "#30 Busy/Busy", body: setBody(f.A, "Busy", "Busy", "PT1H"), code: "InvalidArgument"},
			{name: "#31 DoNotDisturb/DoNotDisturb", body: setBody(f.A, "DoNotDisturb", "DoNotDisturb", "PT1H"), code: "InvalidArgument"},
			{name: "#32 Offline/OffWork", body: setBody(f.A, "Offline", "OffWork", "PT1H"), code: "InvalidArgument"},
			{name: "#32 BeRightBack/BeRightBack", body: setBody(f.A, "BeRightBack", "BeRightBack", "PT1H"), code: "InvalidArgument"},
			{name: "Available/OutOfOffice (never settable)", body: setBody(f.A, "Available", "OutOfOffice", "PT1H"), code: "InvalidArgument"},
			{name: "Busy/InAMeeting (never settable)", body: setBody(f.A, "Busy", "InAMeeting", "PT1H"), code: "InvalidArgument"},
			{name: "#34 availability Sleeping", body: setBody(f.A, "Sleeping", "Available", "PT1H"), code: "InvalidArgument"},
			{name: "#35 PT4M", body: setBody(f.A, "Available", "Available", "PT4M"), code: "InvalidArgument", msg: msgDurationRange},
			{name: "PT4M59S", body: setBody(f.A, "Available", "Available", "PT4M59S"), code: "InvalidArgument", msg: msgDurationRange},
			{name: "PT4H1M", body: setBody(f.A, "Available", "Available", "PT4H1M"), code: "InvalidArgument", msg: msgDurationRange},
			{name: "P1D", body: setBody(f.A, "Available", "Available", "P1D"), code: "InvalidArgument", msg: msgDurationRange},
			{name: "#38 banana", body: setBody(f.A, "Available", "Available", "banana"), code: "BadRequest",
				msg: "Cannot convert the literal 'banana' to the expected type 'Edm.Duration'."},
			{name: "negative duration", body: setBody(f.A, "Available", "Available", "-PT1H")},
			{name: "#39 no sessionId", body: map[string]any{"availability": "Available", "activity": "Available", "expirationDuration": "PT1H"}, code: "InvalidArgument", msg: msgSessionInvalid},
			{name: "sessionId of another app (strict)", body: setBody(f.B, "Available", "Available", "PT1H"), code: "InvalidArgument", msg: "The provided [SessionId] is invalid."},
			{name: "sessionId not a GUID", body: setBody("my-session", "Available", "Available", "PT1H"), code: "InvalidArgument"},
			{name: "#41 no activity", body: map[string]any{"sessionId": f.A, "availability": "Available"}, code: "InvalidArgument"},
			{name: "no availability", body: map[string]any{"sessionId": f.A, "activity": "Available"}, code: "InvalidArgument"},
			{name: "#43 no Content-Type", body: setBody(f.A, "Available", "Available", "PT1H"), code: "BadRequest", msg: msgBadPayload, opts: []reqOpt{noContentType()}},
			{name: "text/plain", body: setBody(f.A, "Available", "Available", "PT1H"), code: "BadRequest", msg: msgBadPayload, opts: []reqOpt{contentType("text/plain")}},
			{name: "not JSON", body: `{"sessionId":`, code: "BadRequest", msg: msgBadPayload},
			{name: "empty body", body: ``, code: "BadRequest"},
			{name: "unknown parameter", body: map[string]any{"sessionId": f.A, "availability": "Available", "activity": "Available", "x": 1},
				code: "BadRequest", msg: "The parameter 'x' in the request payload is not a valid parameter for the operation 'setPresence'."},
		} {
			t.Run(c.name, func(t *testing.T) {
				f := f.in(t)
				r := f.post(path, "APPrw", c.body, c.opts...)
				wantError(t, r, 400, c.code, c.msg)
			})
		}
		// Nothing of the above was stored.
		f.wantPresence(f.U1, "Offline", "Offline")

		// #36: the bounds are inclusive.
		for _, d := range []string{"PT5M", "PT4H", "PT240M", "PT300S", "PT3H59M59S"} {
			t.Run("#36 "+d, func(t *testing.T) {
				f := f.in(t)
				u := newGUID()
				f.mustSet(u, "Busy", "InACall", d, "APPrw")
				f.wantPresence(u, "Busy", "InACall")
			})
		}
		t.Run("unknown parameter on the qualified name", func(t *testing.T) {
			f := f.in(t)
			r := f.post(f.p("/users/%s/presence/microsoft.graph.setPresence", f.U1), "APPrw",
				map[string]any{"sessionId": f.A, "availability": "Available", "activity": "Available", "mood": "good"})
			wantError(t, r, 400, "BadRequest", "The parameter 'mood' in the request payload is not a valid parameter for the operation 'setPresence'.")
		})
		t.Run("OData annotations are not parameters", func(t *testing.T) {
			f := f.in(t)
			u := newGUID()
			b := setBody(f.A, "Available", "Available", "PT1H")
			b["@odata.type"] = "#microsoft.graph.setPresence"
			wantEmptyOK(t, f.post(f.p("/users/%s/presence/setPresence", u), "APPrw", b))
		})
	})
}

// C5 #44-#48: permission failures.
func TestC5_SetPresencePermissions(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
		body := setBody(f.A, "Available", "Available", "PT1H")

		t.Run("#44 delegated write to another user", func(t *testing.T) {
			f := f.in(t)
			r := f.post(f.p("/users/%s/presence/setPresence", f.U2), "D1rw", body)
			wantError(t, r, 403, "Forbidden", msgOtherUser)
			r = f.post(f.p("/communications/presences/%s/setPresence", f.U2), "D1rw", body)
			wantError(t, r, 403, "Forbidden", msgOtherUser)
			f.wantPresence(f.U2, "Busy", "InACall")
		})
		t.Run("#45 read-only delegated on /me", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/me/presence/setPresence"), "D1ra", body), 403, "Forbidden", "")
			wantError(t, f.post(f.p("/me/presence/setPresence"), "D1r", body), 403, "Forbidden", "")
			wantError(t, f.post(f.p("/me/presence/setPresence"), "D1x", body), 403, "Forbidden", "")
		})
		t.Run("#46 read-only app", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/users/%s/presence/setPresence", f.U2), "APPr", body), 403, "Forbidden", "")
		})
		t.Run("#47 MSA on /me", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/me/presence/setPresence"), "MSA", body), 403, "", "")
		})
		t.Run("#48 APPx", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/users/%s/presence/setPresence", f.U2), "APPx", body), 403, "", "")
		})
		t.Run("app token on /me", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/me/presence/setPresence"), "APPrw", body), 400, "BadRequest",
				"/me request is only valid with delegated authentication flow.")
		})
		t.Run("no token", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/users/%s/presence/setPresence", f.U2), "", body), 401, "InvalidAuthenticationToken", "")
		})
		f.wantPresence(f.U2, "Busy", "InACall")
		f.wantPresence(f.U1, "Offline", "Offline")
	})
}
