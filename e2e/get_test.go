package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// C1 #1: GET /me/presence of a user with no sessions.
func TestC1_01_MePresenceDefaults(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		r := f.get(f.p("/me/presence"), "D1r")
		wantStatus(t, r, http.StatusOK)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type = %q, want application/json…", ct)
		}
		if v := r.Header.Get("OData-Version"); v != "4.0" {
			t.Errorf("OData-Version = %q, want 4.0 (1.0 common response headers)", v)
		}
		if got := r.str("id"); got != f.U1 {
			t.Errorf("id = %q, want %q", got, f.U1)
		}
		if a, b := r.str("availability"), r.str("activity"); a != "Offline" || b != "Offline" {
			t.Errorf("presence = %s/%s, want Offline/Offline", a, b)
		}
		if v, ok := r.get("statusMessage"); !ok || v != nil {
			t.Errorf("statusMessage = %v (present %v), want null", v, ok)
		}
		wantDefaultOOF(t, r)
		ctx := r.str("@odata.context")
		wantSuffix := "$metadata#users('" + f.U1 + "')/presence/$entity"
		if !strings.HasSuffix(ctx, wantSuffix) {
			t.Errorf("@odata.context = %q, want suffix %q", ctx, wantSuffix)
		}
		// Decision 4: without --public-url the base is derived from the request.
		if want := srv.base + "/" + f.v + "/"; !strings.HasPrefix(ctx, want) {
			t.Errorf("@odata.context = %q, want prefix %q", ctx, want)
		}
		if seq := r.str("sequenceNumber"); !seqRE.MatchString(seq) {
			t.Errorf("sequenceNumber = %q, want a letter and 10 digits (3.7)", seq)
		}
	})
}

func wantDefaultOOF(t *testing.T, r *resp) {
	t.Helper()
	oof, ok := r.get("outOfOfficeSettings")
	m, _ := oof.(map[string]any)
	if !ok || m == nil {
		t.Errorf("outOfOfficeSettings = %v, want an object", oof)
		return
	}
	if v, ok := m["message"]; !ok || v != nil {
		t.Errorf("outOfOfficeSettings.message = %v (present %v), want null", v, ok)
	}
	if v, ok := m["isOutOfOffice"]; !ok || v != false {
		t.Errorf("outOfOfficeSettings.isOutOfOffice = %v (present %v), want false", v, ok)
	}
}

// C1 #2, #4, #5, #7: who may read whom.
func TestC1_ReadPermissions(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		own := f.p("/users/%s/presence", f.U1)
		other := f.p("/users/%s/presence", f.U2)
		for _, c := range []struct {
			name, path, tok string
			status          int
			id              string
		}{
			{"#2 own id with Presence.Read", own, "D1r", 200, f.U1},
			{"#4 other user with Presence.Read", other, "D1r", 403, ""},
			{"#5 other user with Presence.Read.All", other, "D1ra", 200, f.U2},
			{"#7 APPr reads another user", other, "APPr", 200, f.U2},
			{"#7 APPrw reads another user", other, "APPrw", 200, f.U2},
			{"#7 APPx (no roles)", other, "APPx", 403, ""},
			{"User.Read only, own presence", own, "D1x", 403, ""},
			{"Presence.ReadWrite reads own presence (strict)", own, "D1rw", 200, f.U1},
			{"Presence.ReadWrite does not read others", other, "D1rw", 403, ""},
			{"MSA reads by id", own, "MSA", 403, ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				f := f.in(t)
				r := f.get(c.path, c.tok)
				if c.status != 200 {
					wantError(t, r, c.status, "Forbidden", "")
					return
				}
				wantStatus(t, r, 200)
				if got := r.str("id"); got != c.id {
					t.Errorf("id = %q, want %q", got, c.id)
				}
			})
		}
	})
}

// C1 #6: an application token on /me.
func TestC1_06_MeWithAppToken(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		for _, tok := range []string{"APPr", "APPrw"} {
			r := f.get(f.p("/me/presence"), tok)
			wantError(t, r, 400, "BadRequest", "/me request is only valid with delegated authentication flow.")
		}
	})
}

// C1 #8: personal Microsoft accounts are not supported.
func TestC1_08_MeWithMSA(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		r := f.get(f.p("/me/presence"), "MSA")
		wantError(t, r, 403, "", "")
	})
}

// wwwAuthenticate is the challenge of every 401 (graph-presence.md 5.3).
const wwwAuthenticate = `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000"`

// C1 #9: no Authorization header.
func TestC1_09_NoToken(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		r := f.get(f.p("/me/presence"), "")
		wantError(t, r, 401, "InvalidAuthenticationToken", "Access token is empty.")
		if got := r.Header.Get("WWW-Authenticate"); got != wwwAuthenticate {
			t.Errorf("WWW-Authenticate = %q, want %q (5.3)", got, wwwAuthenticate)
		}
		for _, k := range []string{"date", "request-id", "client-request-id"} {
			if r.str("error", "innerError", k) == "" {
				t.Errorf("error.innerError.%s missing", k)
			}
		}
	})
}

// C1 #12: client-request-id is echoed, request-id is a fresh GUID, and both
// reappear in innerError on an error.
func TestC1_12_RequestIDs(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		const crid = "0f9d1b7e-5d0c-4f4a-9b8e-2f1c3d4e5f60"
		r := f.get(f.p("/me/presence"), "D1r", withHeader("client-request-id", crid))
		wantStatus(t, r, 200)
		if got := r.Header.Get("client-request-id"); got != crid {
			t.Errorf("client-request-id = %q, want %q", got, crid)
		}
		rid := r.Header.Get("request-id")
		if !guidRE.MatchString(rid) {
			t.Errorf("request-id = %q, want a GUID", rid)
		}
		r2 := f.get(f.p("/me/presence"), "D1r", withHeader("client-request-id", crid))
		if r2.Header.Get("request-id") == rid {
			t.Errorf("two requests got the same request-id %q", rid)
		}

		// On an error, the same two values appear in innerError.
		e := f.get(f.p("/users/%s/presence", f.U2), "D1r", withHeader("client-request-id", crid))
		wantError(t, e, 403, "Forbidden", "")
		if got := e.str("error", "innerError", "client-request-id"); got != crid {
			t.Errorf("innerError.client-request-id = %q, want %q", got, crid)
		}
		if got := e.str("error", "innerError", "request-id"); got != e.Header.Get("request-id") || !guidRE.MatchString(got) {
			t.Errorf("innerError.request-id = %q, header %q", got, e.Header.Get("request-id"))
		}

		// Without client-request-id, it equals request-id (5.1).
		n := f.get(f.p("/users/%s/presence", f.U2), "D1r")
		if n.str("error", "innerError", "client-request-id") != n.Header.Get("request-id") {
			t.Errorf("without a client-request-id, innerError.client-request-id = %q, want request-id %q",
				n.str("error", "innerError", "client-request-id"), n.Header.Get("request-id"))
		}
	})
}

// C1 #13: sequenceNumber is stable without change and grows with every
// visible change, including the clock's (3.7).
func TestC1_13_SequenceNumber(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		seq := func() string {
			t.Helper()
			s := f.getp(f.U1).str("sequenceNumber")
			if !seqRE.MatchString(s) {
				t.Fatalf("sequenceNumber = %q, want a letter and 10 digits", s)
			}
			return s
		}
		s1, s2 := seq(), seq()
		if s1 != s2 {
			t.Errorf("two GETs without change: %q then %q, want identical", s1, s2)
		}
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		s3 := seq()
		if !(s3 > s2) {
			t.Errorf("after setPresence: %q, want > %q", s3, s2)
		}
		if s4 := seq(); s4 != s3 {
			t.Errorf("two GETs without change: %q then %q", s3, s4)
		}
		// A status message is part of the visible object.
		wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("seq", nil)))
		s5 := seq()
		if !(s5 > s3) {
			t.Errorf("after setStatusMessage: %q, want > %q", s5, s3)
		}
		// A time-driven change (the fade of an Available session) too.
		f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
		s6 := seq()
		if !(s6 > s5) {
			t.Errorf("after setPresence Available: %q, want > %q", s6, s5)
		}
		advance(t, "PT5M")
		f.wantPresence(f.U1, "Available", "AvailableInactive")
		s7 := seq()
		if !(s7 > s6) {
			t.Errorf("after the fade to AvailableInactive: %q, want > %q", s7, s6)
		}
		if s8 := seq(); s8 != s7 {
			t.Errorf("two GETs without change after the fade: %q then %q", s7, s8)
		}
	})
}

// 1.1: the three addresses of a presence, and case-insensitive segments.
func TestGetPresenceAliases(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U1, "Busy", "InAConferenceCall", "PT1H", "APPrw")
		for _, c := range []struct {
			name, path, tok, ctx string
		}{
			{"A1 /me", f.p("/me/presence"), "D1r", "$metadata#users('" + f.U1 + "')/presence/$entity"},
			{"A2 /users", f.p("/users/%s/presence", f.U1), "D1ra", "$metadata#users('" + f.U1 + "')/presence/$entity"},
			{"A3 /communications/presences", f.p("/communications/presences/%s", f.U1), "D1ra", "$metadata#communications/presences/$entity"},
			{"A3 with an app token", f.p("/communications/presences/%s", f.U1), "APPr", "$metadata#communications/presences/$entity"},
			{"A2 mixed case segments", f.p("/Users/%s/Presence", f.U1), "D1ra", ""},
			{"A3 upper case segments", f.p("/COMMUNICATIONS/PRESENCES/%s", f.U1), "D1ra", ""},
			{"A1 mixed case", f.p("/ME/presence"), "D1r", ""},
			{"upper-case GUID", f.p("/users/%s/presence", strings.ToUpper(f.U1)), "D1ra", ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				f := f.in(t)
				r := f.get(c.path, c.tok)
				wantStatus(t, r, 200)
				if got := r.str("id"); got != f.U1 {
					t.Errorf("id = %q, want lower-case canonical %q", got, f.U1)
				}
				if a, b := r.str("availability"), r.str("activity"); a != "Busy" || b != "InAConferenceCall" {
					t.Errorf("presence = %s/%s, want Busy/InAConferenceCall", a, b)
				}
				if c.ctx != "" && !strings.HasSuffix(r.str("@odata.context"), c.ctx) {
					t.Errorf("@odata.context = %q, want suffix %q", r.str("@odata.context"), c.ctx)
				}
				if _, ok := r.get("value"); ok {
					t.Errorf("a single presence must not be wrapped in value (1.2)")
				}
			})
		}
	})
}

// Decision 1 and 1.0 "User key": an unknown GUID is an Offline user, a key
// that is not a GUID (a UPN) is 400.
func TestGetPresenceUserKeys(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		unknown := newGUID()
		r := f.get(f.p("/users/%s/presence", unknown), "D1ra")
		wantStatus(t, r, 200)
		if r.str("id") != unknown || r.str("availability") != "Offline" || r.str("activity") != "Offline" {
			t.Errorf("unknown GUID: %s, want 200 Offline/Offline with id", r)
		}
		if v, ok := r.get("statusMessage"); !ok || v != nil {
			t.Errorf("unknown GUID: statusMessage = %v, want null", v)
		}
		wantDefaultOOF(t, r)
		for _, key := range []string{"adele@contoso.com", "not-a-guid", "12345"} {
			for _, path := range []string{f.p("/users/%s/presence", url.PathEscape(key)), f.p("/communications/presences/%s", url.PathEscape(key))} {
				r := f.get(path, "D1ra")
				wantError(t, r, 400, "", "")
			}
		}
	})
}

// 1.2: $select over top-level properties; $expand is refused.
func TestGetPresenceSelect(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U1, "Away", "Away", "PT1H", "APPrw")
		q := "?" + url.Values{"$select": {"availability,activity"}}.Encode()
		for _, path := range []string{f.p("/users/%s/presence", f.U1), f.p("/communications/presences/%s", f.U1)} {
			r := f.get(path+q, "D1ra")
			wantStatus(t, r, 200)
			if r.str("availability") != "Away" || r.str("activity") != "Away" {
				t.Errorf("%s: selected properties missing", r)
			}
			for _, p := range []string{"statusMessage", "outOfOfficeSettings", "sequenceNumber"} {
				if r.has(p) {
					t.Errorf("%s: %s present although not selected", r, p)
				}
			}
		}
		// $select is written as sent by SDKs too: %24select, and a single property.
		r := f.get(f.p("/me/presence?$select=activity"), "D1r")
		wantStatus(t, r, 200)
		if r.str("activity") != "Away" || r.has("availability") {
			t.Errorf("%s: want only activity", r)
		}
		e := f.get(f.p("/users/%s/presence?%s", f.U1, url.Values{"$expand": {"statusMessage"}}.Encode()), "D1ra")
		wantError(t, e, 400, "", "")
		// "*" is every property, with the context of a read without $select.
		all := f.get(f.p("/users/%s/presence?%s", f.U1, url.Values{"$select": {"*"}}.Encode()), "D1ra")
		wantStatus(t, all, 200)
		for _, p := range []string{"availability", "activity", "statusMessage", "outOfOfficeSettings", "sequenceNumber", "workLocation"} {
			if !all.has(p) {
				t.Errorf("$select=*: %s missing from %s", p, all)
			}
		}
		if ctx := all.str("@odata.context"); !strings.HasSuffix(ctx, "$metadata#users('"+f.U1+"')/presence/$entity") {
			t.Errorf("$select=*: @odata.context = %q", ctx)
		}
	})
}
