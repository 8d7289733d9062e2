package e2e

import (
	"testing"
	"time"
)

// localDateTime formats at in zone as a dateTimeTimeZone dateTime (no
// offset).
func localDateTime(t *testing.T, at time.Time, zone string) string {
	t.Helper()
	return at.In(loadZone(t, zone)).Format("2006-01-02T15:04:05.0000000")
}

// loadZone resolves the zone names the suite uses (Windows or IANA).
func loadZone(t *testing.T, zone string) *time.Location {
	t.Helper()
	name := map[string]string{
		"Pacific Standard Time": "America/Los_Angeles",
		"India Standard Time":   "Asia/Kolkata",
		"UTC":                   "UTC",
	}[zone]
	if name == "" {
		name = zone
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("loading zone %q: %v", zone, err)
	}
	return loc
}

// C8 #68: set and read one's own status message.
func TestC8_68_SetStatusMessage(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t0 := clockNow(t)
		wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("In the lab", nil)))
		r := f.get(f.p("/me/presence"), "D1rw")
		wantStatus(t, r, 200)
		if got := r.str("statusMessage", "message", "content"); got != "In the lab" {
			t.Errorf("content = %q, want %q", got, "In the lab")
		}
		if got := r.str("statusMessage", "message", "contentType"); got != "text" {
			t.Errorf("contentType = %q, want text", got)
		}
		pub := r.str("statusMessage", "publishedDateTime")
		at, err := time.Parse(time.RFC3339Nano, pub)
		if err != nil {
			t.Errorf("publishedDateTime = %q, want an RFC 3339 UTC instant: %v", pub, err)
		} else if d := at.Sub(t0); d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("publishedDateTime = %s, want the service clock at the time of setting, %s", at, t0)
		}
		if len(pub) > 0 && pub[len(pub)-1] != 'Z' {
			t.Errorf("publishedDateTime = %q, want UTC with Z (2.2)", pub)
		}
		if r.has("statusMessage", "expiryDateTime") {
			t.Errorf("expiryDateTime present, want none: %s", r)
		}
		// Independent of sessions: the user is Offline and still shows it.
		if r.str("availability") != "Offline" {
			t.Errorf("availability = %q, want Offline", r.str("availability"))
		}
		// Other addresses and names.
		wantEmptyOK(t, f.post(f.p("/me/presence/microsoft.graph.setStatusMessage"), "D1rw", statusText("Two", nil)))
		wantEmptyOK(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U1), "D1rw", statusText("Three", nil)))
		wantEmptyOK(t, f.post(f.p("/communications/presences/%s/setStatusMessage", f.U1), "APPrw", statusText("Four", nil)))
		if got := f.getp(f.U1).str("statusMessage", "message", "content"); got != "Four" {
			t.Errorf("content = %q, want Four", got)
		}
		// contentType is matched case-insensitively and emitted lower case (2.6).
		wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw",
			map[string]any{"statusMessage": map[string]any{"message": map[string]any{"content": "Five", "contentType": "TEXT"}}}))
		if got := f.getp(f.U1).str("statusMessage", "message", "contentType"); got != "text" {
			t.Errorf("contentType = %q, want text", got)
		}
		// Empty content clears the message (1.9).
		wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("", nil)))
		if v, ok := f.getp(f.U1).get("statusMessage"); !ok || v != nil {
			t.Errorf("after empty content: statusMessage = %v, want null", v)
		}
	})
}

// C8 #69: an expiry in UTC.
func TestC8_69_ExpiryUTC(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t0 := clockNow(t)
		at := t0.Add(time.Hour)
		exp := map[string]any{"dateTime": at.UTC().Format("2006-01-02T15:04:05.0000000"), "timeZone": "UTC"}
		wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("Back at noon", exp)))
		r := f.get(f.p("/me/presence"), "D1r")
		wantStatus(t, r, 200)
		wantExpiry(t, r, at)
		advance(t, "PT59M59S")
		if got := f.get(f.p("/me/presence"), "D1r").str("statusMessage", "message", "content"); got != "Back at noon" {
			t.Errorf("1 s before the expiry: content = %q", got)
		}
		advance(t, "PT1S")
		if v, ok := f.get(f.p("/me/presence"), "D1r").get("statusMessage"); !ok || v != nil {
			t.Errorf("at the expiry: statusMessage = %v, want null", v)
		}
	})
}

// wantExpiry checks statusMessage.expiryDateTime names the instant at
// (within 1 s), comparing instants rather than strings (A21).
func wantExpiry(t *testing.T, r *resp, at time.Time) {
	t.Helper()
	dt, zone := r.str("statusMessage", "expiryDateTime", "dateTime"), r.str("statusMessage", "expiryDateTime", "timeZone")
	if dt == "" || zone == "" {
		t.Errorf("expiryDateTime missing or incomplete: %s", r)
		return
	}
	var got time.Time
	var err error
	for _, layout := range []string{"2006-01-02T15:04:05.9999999", "2006-01-02T15:04:05"} {
		if got, err = time.ParseInLocation(layout, dt, loadZone(t, zone)); err == nil {
			break
		}
	}
	if err != nil {
		t.Errorf("expiryDateTime.dateTime = %q: %v", dt, err)
		return
	}
	if d := got.Sub(at); d < -time.Second || d > time.Second {
		t.Errorf("expiryDateTime = %s %s = %s, want %s", dt, zone, got.UTC(), at.UTC())
	}
}

// 1.9 and 3.5: an expiry in a Windows zone name and in an IANA zone name is
// the instant of that local time in that zone.
func TestC8_ExpiryInNamedZones(t *testing.T) {
	for _, zone := range []string{"Pacific Standard Time", "Asia/Kolkata", "Europe/Berlin"} {
		t.Run(zone, func(t *testing.T) {
			f := newFixture(t)
			t0 := clockNow(t)
			at := t0.Truncate(time.Second).Add(2 * time.Hour) // in (t0+2h-1s, t0+2h]
			exp := map[string]any{"dateTime": at.In(loadZone(t, zone)).Format("2006-01-02T15:04:05"), "timeZone": zone}
			wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("zoned", exp)))
			r := f.get(f.p("/me/presence"), "D1rw")
			wantExpiry(t, r, at)
			advance(t, "PT1H59M58S")
			if got := f.getp(f.U1).str("statusMessage", "message", "content"); got != "zoned" {
				t.Errorf("2 s before the expiry in %s: content = %q, want zoned (was the zone applied?)", zone, got)
			}
			advance(t, "PT2S")
			if v, ok := f.getp(f.U1).get("statusMessage"); !ok || v != nil {
				t.Errorf("at the expiry in %s: statusMessage = %v, want null", zone, v)
			}
		})
	}
}

// An expiry already past is accepted, as Graph accepts it, and the message
// is hidden at once (graph-presence.md A17).
func TestC8_ExpiryInThePast(t *testing.T) {
	f := newFixture(t)
	t0 := clockNow(t)
	exp := map[string]any{"dateTime": localDateTime(t, t0.Add(-time.Hour), "Pacific Standard Time"), "timeZone": "Pacific Standard Time"}
	wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("stale", exp)))
	if v, ok := f.getp(f.U1).get("statusMessage"); !ok || v != nil {
		t.Errorf("statusMessage = %v, want null", v)
	}
}

// C8 #71, #72 and the other validation failures.
func TestC8_Validation(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		path := f.p("/me/presence/setStatusMessage")
		future := clockNow(t).Add(time.Hour).UTC()
		for _, c := range []struct {
			name      string
			body      any
			code, msg string
			opts      []reqOpt
		}{
			{name: "#71 html", body: map[string]any{"statusMessage": map[string]any{"message": map[string]any{"content": "<b>x</b>", "contentType": "html"}}}, code: "InvalidArgument"},
			{name: "#72 no statusMessage", body: map[string]any{}},
			{name: "statusMessage null", body: map[string]any{"statusMessage": nil}},
			{name: "no message", body: map[string]any{"statusMessage": map[string]any{}}},
			{name: "unknown zone", body: statusText("x", map[string]any{"dateTime": future.Format("2006-01-02T15:04:05"), "timeZone": "Mars/Olympus_Mons"}), code: "InvalidArgument"},
			{name: "dateTime with Z", body: statusText("x", map[string]any{"dateTime": future.Format("2006-01-02T15:04:05Z"), "timeZone": "UTC"}), code: "InvalidArgument"},
			{name: "dateTime with offset", body: statusText("x", map[string]any{"dateTime": future.Format("2006-01-02T15:04:05") + "+02:00", "timeZone": "UTC"}), code: "InvalidArgument"},
			{name: "dateTime not a date", body: statusText("x", map[string]any{"dateTime": "tomorrow", "timeZone": "UTC"}), code: "InvalidArgument"},
			{name: "no Content-Type", body: statusText("x", nil), code: "BadRequest", msg: msgBadPayload, opts: []reqOpt{noContentType()}},
			{name: "unknown parameter", body: map[string]any{"statusMessage": map[string]any{"message": map[string]any{"content": "x", "contentType": "text"}}, "x": 1},
				code: "BadRequest", msg: "The parameter 'x' in the request payload is not a valid parameter for the operation 'setStatusMessage'."},
		} {
			t.Run(c.name, func(t *testing.T) {
				f := f.in(t)
				wantError(t, f.post(path, "D1rw", c.body, c.opts...), 400, c.code, c.msg)
			})
		}
		if v, ok := f.getp(f.U1).get("statusMessage"); !ok || v != nil {
			t.Errorf("after only failures: statusMessage = %v, want null", v)
		}
	})
}

// 1.9: publishedDateTime is read-only and ignored on input.
func TestC8_PublishedDateTimeIgnoredOnInput(t *testing.T) {
	f := newFixture(t)
	t0 := clockNow(t)
	body := statusText("hello", nil)
	body["statusMessage"].(map[string]any)["publishedDateTime"] = "2001-01-01T00:00:00Z"
	wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", body))
	pub, err := time.Parse(time.RFC3339Nano, f.get(f.p("/me/presence"), "D1r").str("statusMessage", "publishedDateTime"))
	if err != nil || pub.Sub(t0) > time.Millisecond || t0.Sub(pub) > time.Millisecond {
		t.Errorf("publishedDateTime = %v (%v), want the service clock %v", pub, err, t0)
	}
}

// C8 #73 and 2.7: other readers see the message without its dates; the user
// and applications see everything.
func TestC8_73_OtherUserVisibility(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t0 := clockNow(t)
		exp := map[string]any{"dateTime": t0.Add(3 * time.Hour).Format("2006-01-02T15:04:05"), "timeZone": "UTC"}
		wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("Heads down", exp)))
		for _, path := range []string{f.p("/users/%s/presence", f.U1), f.p("/communications/presences/%s", f.U1)} {
			r := f.get(path, "D2ra")
			wantStatus(t, r, 200)
			if got := r.str("statusMessage", "message", "content"); got != "Heads down" {
				t.Errorf("D2ra: content = %q, want Heads down", got)
			}
			if got := r.str("statusMessage", "message", "contentType"); got != "text" {
				t.Errorf("D2ra: contentType = %q, want text", got)
			}
			if r.has("statusMessage", "publishedDateTime") || r.has("statusMessage", "expiryDateTime") {
				t.Errorf("D2ra reads U1: %s; want no publishedDateTime and no expiryDateTime", r)
			}
		}
		// A delegated reader with Presence.Read.All reading themself sees all.
		for _, tok := range []string{"D1ra", "D1r", "APPr"} {
			r := f.get(f.p("/users/%s/presence", f.U1), tok)
			wantStatus(t, r, 200)
			if !r.has("statusMessage", "publishedDateTime") || !r.has("statusMessage", "expiryDateTime") {
				t.Errorf("%s reads U1: %s; want publishedDateTime and expiryDateTime", tok, r)
			}
		}
		// A status message survives the end of every session.
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		wantEmptyOK(t, f.clear(f.U1, "APPrw"))
		if got := f.getp(f.U1).str("statusMessage", "message", "content"); got != "Heads down" {
			t.Errorf("after clearPresence: content = %q", got)
		}
	})
}

// C8 #74 and the other permission failures.
func TestC8_74_Permissions(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		body := statusText("Not yours", nil)
		wantError(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U2), "D1rw", body), 403, "Forbidden", msgOtherUser)
		wantError(t, f.post(f.p("/me/presence/setStatusMessage"), "D1ra", body), 403, "Forbidden", "")
		wantError(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U2), "APPr", body), 403, "Forbidden", "")
		wantError(t, f.post(f.p("/me/presence/setStatusMessage"), "MSA", body), 403, "", "")
		wantError(t, f.post(f.p("/me/presence/setStatusMessage"), "APPrw", body), 400, "BadRequest", "/me request is only valid with delegated authentication flow.")
		if v, ok := f.getp(f.U2).get("statusMessage"); !ok || v != nil {
			t.Errorf("U2 statusMessage = %v, want null", v)
		}
		// An application may set any user's message.
		wantEmptyOK(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U2), "APPrw", body))
		if got := f.getp(f.U2).str("statusMessage", "message", "content"); got != "Not yours" {
			t.Errorf("U2 content = %q", got)
		}
	})
}
