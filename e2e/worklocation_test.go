package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// wl reads the workLocation of a presence answer as "type/source/place"
// ("-" for a null place).
func wl(r *resp, path ...any) string {
	v, ok := r.get(append(path, "workLocation")...)
	m, isMap := v.(map[string]any)
	if !ok || !isMap {
		return "<missing>"
	}
	place := "-"
	if p, ok := m["placeId"].(string); ok {
		place = p
	} else if _, present := m["placeId"]; !present {
		place = "<no placeId member>"
	}
	return fmt.Sprintf("%v/%v/%s", m["workLocationType"], m["source"], place)
}

func (f *fixture) wantWorkLocation(user, want string) *resp {
	f.t.Helper()
	r := f.getp(user)
	if got := wl(r); got != want {
		f.t.Errorf("workLocation of %s = %s, want %s", short(user), got, want)
	}
	return r
}

// scoped mints a delegated token of user with scopes.
func (f *fixture) scoped(user string, scopes ...string) string {
	return f.mint(f.delegated(f.T, user, f.A, scopes...))
}

func (f *fixture) doTok(method, path, token string, body any) *resp {
	f.t.Helper()
	return f.s.do(f.t, method, path, token, body)
}

func (f *fixture) setLoc(user, action, tokName string, body any) *resp {
	f.t.Helper()
	return f.post(f.p("/users/%s/presence/%s", user, action), tokName, body)
}

// setPlan sets user's work plan through the test hook.
func (f *fixture) setPlan(user string, plan map[string]any) {
	f.t.Helper()
	r := f.s.do(f.t, "PUT", f.hookPath(user, "workPlan"), "", plan)
	wantStatus(f.t, r, http.StatusNoContent)
}

// weekly is a workPlanRecurrence body: every day of days, from..to local
// time in zone, from startDate on.
func weekly(startDate, from, to, zone, typ, place string, days ...string) map[string]any {
	r := map[string]any{
		"start":            map[string]any{"dateTime": startDate + "T" + from, "timeZone": zone},
		"end":              map[string]any{"dateTime": startDate + "T" + to, "timeZone": zone},
		"workLocationType": typ,
		"recurrence": map[string]any{
			"pattern": map[string]any{"type": "weekly", "interval": 1, "daysOfWeek": days},
			"range":   map[string]any{"type": "noEnd", "startDate": startDate},
		},
	}
	if place != "" {
		r["placeId"] = place
	}
	return r
}

var allDays = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

func TestWorkLocation_DefaultAndSelect(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		r := f.wantWorkLocation(f.U1, "unspecified/none/-")
		if !strings.Contains(string(r.Body), `"workLocation":{"workLocationType":"unspecified","source":"none","placeId":null}`) {
			t.Errorf("default workLocation: %s", r.Body)
		}
		s := f.get(f.p("/users/%s/presence?$select=workLocation", f.U1), "D1ra")
		wantStatus(t, s, http.StatusOK)
		if s.has("availability") || wl(s) != "unspecified/none/-" {
			t.Errorf("$select=workLocation: %s", s.Body)
		}
		if !strings.Contains(s.str("@odata.context"), "presence(workLocation)") {
			t.Errorf("@odata.context %q", s.str("@odata.context"))
		}
	})
}

// Section 1.10: delegated Presence.ReadWrite, self only, on every alias and
// name; applications refused on v1.0 and allowed on beta; the clear
// actions answer 200 on v1.0 and 204 on beta.
func TestWorkLocation_PermissionsPerVersion(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		body := map[string]any{"workLocationType": "office", "placeId": "b1"}
		for _, c := range []struct{ name, path, tok string }{
			{"me", "/me/presence/setManualLocation", "D1rw"},
			{"me qualified", "/me/presence/microsoft.graph.setManualLocation", "D1rw"},
			{"users", "/users/%s/presence/setManualLocation", "D1rw"},
			{"communications", "/communications/presences/%s/setManualLocation", "D1rw"},
			{"communications qualified", "/communications/presences/%s/microsoft.graph.setAutomaticLocation", "D1rw"},
		} {
			g := f.in(t)
			wantEmptyOK(t, g.post("/"+g.v+strings.ReplaceAll(c.path, "%s", g.U1), c.tok, body))
		}
		f.wantWorkLocation(f.U1, "office/manual/b1")
		wantError(t, f.setLoc(f.U1, "setManualLocation", "D2rw", body), 403, "Forbidden", "Cannot set the presence of another user.")
		wantError(t, f.setLoc(f.U1, "setManualLocation", "D1r", body), 403, "Forbidden", "")
		wantError(t, f.setLoc(f.U1, "setManualLocation", "MSA", body), 403, "Forbidden", "")
		wantError(t, f.post(f.p("/me/presence/setManualLocation"), "APPrw", body), 400, "BadRequest", "/me request is only valid with delegated authentication flow.")
		app := f.setLoc(f.U2, "setAutomaticLocation", "APPrw", body)
		appClear := f.setLoc(f.U2, "clearLocation", "APPrw", nil)
		appRead := f.setLoc(f.U2, "setAutomaticLocation", "APPr", body)
		wantError(t, appRead, 403, "Forbidden", "")
		if f.v == "v1.0" {
			wantError(t, app, 403, "Forbidden", "Application permissions are not supported for this operation.")
			wantError(t, appClear, 403, "Forbidden", "")
			wantEmptyOK(t, f.setLoc(f.U1, "clearAutomaticLocation", "D1rw", nil))
			wantEmptyOK(t, f.setLoc(f.U1, "clearLocation", "D1rw", nil))
		} else {
			wantEmptyOK(t, app)
			wantStatus(t, appClear, http.StatusNoContent)
			wantStatus(t, f.setLoc(f.U1, "clearAutomaticLocation", "D1rw", nil), http.StatusNoContent)
			wantStatus(t, f.setLoc(f.U1, "microsoft.graph.clearLocation", "D1rw", nil), http.StatusNoContent)
			// An application sets any user of its tenant.
			wantEmptyOK(t, f.setLoc(f.U3, "setManualLocation", "APPrw", map[string]any{"workLocationType": "remote"}))
			f.wantWorkLocation(f.U3, "remote/manual/-")
		}
		f.wantWorkLocation(f.U1, "unspecified/none/-")
	})
}

func TestWorkLocation_Validation(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		const valid = "'office', 'remote', 'timeOff'"
		for _, c := range []struct {
			name string
			body any
			msg  string
		}{
			{"missing type", map[string]any{"placeId": "b1"}, "workLocationType"},
			{"empty object", map[string]any{}, "workLocationType"},
			{"unknown value", map[string]any{"workLocationType": "home"}, "home"},
			{"unknownFutureValue", map[string]any{"workLocationType": "unknownFutureValue"}, "unknownFutureValue"},
			{"unspecified value", map[string]any{"workLocationType": "unspecified"}, "unspecified"},
			{"unknown member", map[string]any{"workLocationType": "office", "building": "b1"}, "building"},
			{"not a string", map[string]any{"workLocationType": 3}, "workLocationType"},
			{"not JSON", "{", ""},
		} {
			r := f.setLoc(f.U1, "setManualLocation", "D1rw", c.body)
			wantError(t, r, 400, "", "")
			if msg := r.str("error", "message"); !strings.Contains(msg, c.msg) {
				t.Errorf("%s: message %q lacks %q", c.name, msg, c.msg)
			}
			if strings.Contains(c.name, "type") || strings.Contains(c.name, "value") {
				if msg := r.str("error", "message"); !strings.Contains(msg, valid) {
					t.Errorf("%s: message %q does not name the valid values", c.name, msg)
				}
			}
		}
		// Enum values are case-insensitive; the answer is canonical.
		wantEmptyOK(t, f.setLoc(f.U1, "setManualLocation", "D1rw", map[string]any{"workLocationType": "TIMEOFF"}))
		f.wantWorkLocation(f.U1, "timeOff/manual/-")
		// The clear actions take no parameter.
		wantError(t, f.setLoc(f.U1, "clearLocation", "D1rw", map[string]any{"workLocationType": "office"}), 400, "BadRequest", "")
	})
}

// Layers: manual > automatic > scheduled; clearAutomaticLocation and
// clearLocation; every visible change bumps sequenceNumber, none changes
// availability or activity.
func TestWorkLocation_Layers(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		f.setPlan(f.U1, map[string]any{"recurrences": []any{weekly("2020-01-06", "00:00:00", "23:59:00", "UTC", "remote", "", allDays...)},
			"occurrences": []any{}})
		now := clockNow(t).UTC()
		if now.Hour() == 23 && now.Minute() >= 59 {
			advance(t, "PT2M")
		}
		seq := seqNum(t, f.seqOf(f.U1))
		f.wantWorkLocation(f.U1, "remote/scheduled/-")
		// bumped says whether the last action moved sequenceNumber (which
		// grows, possibly by more than one: it is floored by the instant).
		step := func(action string, body any, want string, bumped bool) {
			t.Helper()
			r := f.setLoc(f.U1, action, "D1rw", body)
			if r.Status != http.StatusOK && r.Status != http.StatusNoContent {
				t.Fatalf("%s: %s", action, r)
			}
			g := f.wantPresence(f.U1, "Busy", "InACall")
			if got := wl(g); got != want {
				t.Errorf("after %s: workLocation %s, want %s", action, got, want)
			}
			n := seqNum(t, g.str("sequenceNumber"))
			if bumped && n <= seq || !bumped && n != seq {
				t.Errorf("after %s: sequence %d from %d, bumped %v", action, n, seq, bumped)
			}
			seq = n
		}
		step("setAutomaticLocation", map[string]any{"workLocationType": "office", "placeId": "b7"}, "office/automatic/b7", true)
		step("setManualLocation", map[string]any{"workLocationType": "timeOff"}, "timeOff/manual/-", true)
		// Clearing the automatic layer under a manual one changes nothing
		// visible, nor does a new automatic signal.
		step("clearAutomaticLocation", nil, "timeOff/manual/-", false)
		step("setAutomaticLocation", map[string]any{"workLocationType": "office"}, "timeOff/manual/-", false)
		step("clearLocation", nil, "remote/scheduled/-", true)
	})
}

// tokyo is the zone of the day-boundary tests: no DST, nine hours ahead.
const tokyo = "Tokyo Standard Time"

// durationTo renders the wait from now until at, whole seconds apart, as
// an ISO 8601 duration that parses exactly.
func durationTo(now, at time.Time) string {
	return fmt.Sprintf("PT%dS", int64(at.Sub(now)/time.Second))
}

// alignClock advances s's clock to a whole second, so that whole-second
// advances land exactly on whole-second boundaries.
func alignClock(t *testing.T, s *server) time.Time {
	t.Helper()
	now := nowOn(t, s)
	for range 3 {
		if now.Nanosecond() == 0 {
			return now
		}
		now = advanceOn(t, s, fmt.Sprintf("PT0.%09dS", int(time.Second)-now.Nanosecond()))
	}
	if now.Nanosecond() != 0 {
		t.Fatalf("could not align the clock: %v", now)
	}
	return now
}

// The manual and automatic layers last until midnight in the user's time
// zone; the scheduler applies the boundary exactly on time.
func TestWorkLocation_DayEndsAtMidnightInTheUsersZone(t *testing.T) {
	f := newFixture(t)
	f.v = "beta"
	f.setPlan(f.U1, map[string]any{"timeZone": tokyo})
	wantEmptyOK(t, f.setLoc(f.U1, "setManualLocation", "D1rw", map[string]any{"workLocationType": "office"}))
	f.wantWorkLocation(f.U1, "office/manual/-")
	seq := seqNum(t, f.seqOf(f.U1))
	loc, _ := time.LoadLocation("Asia/Tokyo")
	now := alignClock(t, f.s)
	y, m, d := now.In(loc).Date()
	midnight := time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	advance(t, durationTo(now, midnight.Add(-time.Second)))
	f.wantWorkLocation(f.U1, "office/manual/-")
	advance(t, "PT1S")
	f.wantWorkLocation(f.U1, "unspecified/none/-")
	if n := seqNum(t, f.seqOf(f.U1)); n <= seq {
		t.Errorf("midnight left the sequence at %d (was %d)", n, seq)
	}
	f.wantPresence(f.U1, "Offline", "Offline")
}

// The scheduled layer follows the plan's segments, changing exactly at
// their boundaries.
func TestWorkLocation_SegmentBoundaries(t *testing.T) {
	f := newFixture(t)
	now := alignClock(t, f.s)
	loc, _ := time.LoadLocation("Asia/Tokyo")
	// A segment starting two hours from now (local), lasting one hour,
	// every day.
	start := now.Add(2 * time.Hour).In(loc)
	end := start.Add(time.Hour)
	date := start.Format("2006-01-02")
	rec := weekly(date, start.Format("15:04:05"), end.Format("15:04:05"), tokyo, "office", "desk-4", allDays...)
	if end.Day() != start.Day() {
		rec["end"] = map[string]any{"dateTime": end.Format("2006-01-02T15:04:05"), "timeZone": tokyo}
	}
	f.setPlan(f.U1, map[string]any{"recurrences": []any{rec}})
	f.wantWorkLocation(f.U1, "unspecified/none/-")
	seq := seqNum(t, f.seqOf(f.U1))
	cur := clockNow(t)
	advance(t, durationTo(cur, start.Add(-time.Second)))
	f.wantWorkLocation(f.U1, "unspecified/none/-")
	if n := seqNum(t, f.seqOf(f.U1)); n != seq {
		t.Errorf("no boundary yet, but the sequence moved to %d from %d", n, seq)
	}
	advance(t, "PT1S")
	f.wantWorkLocation(f.U1, "office/scheduled/desk-4")
	atStart := seqNum(t, f.seqOf(f.U1))
	if atStart <= seq {
		t.Errorf("the segment's start left the sequence at %d", atStart)
	}
	advance(t, durationTo(clockNow(t), end))
	f.wantWorkLocation(f.U1, "unspecified/none/-")
	if n := seqNum(t, f.seqOf(f.U1)); n <= atStart {
		t.Errorf("the segment's end left the sequence at %d", n)
	}
	// The next day's segment comes back by itself.
	advance(t, durationTo(clockNow(t), start.Add(24*time.Hour)))
	f.wantWorkLocation(f.U1, "office/scheduled/desk-4")
}

// nextTransition finds the first change of loc's UTC offset after t.
func nextTransition(t time.Time, loc *time.Location) time.Time {
	_, off := t.In(loc).Zone()
	for h := t.Truncate(time.Hour); ; h = h.Add(time.Hour) {
		if _, o := h.In(loc).Zone(); o != off {
			return h
		}
	}
}

// Across a daylight-saving change the plan keeps local wall-clock times: a
// 09:00-17:00 segment starts at 09:00 local the day after the change, and
// a manual location set the evening before ends at local midnight.
func TestWorkLocation_AcrossDST(t *testing.T) {
	s := startTestServer(t, hookedArgs(t, "--rate-limit", "0"), nil)
	f := newFixture(t)
	f.s = s
	loc, _ := time.LoadLocation("Europe/Berlin")
	now := alignClock(t, s)
	change := nextTransition(now, loc)
	// The day of the change, 20:00 local the evening before.
	y, m, d := change.In(loc).Date()
	eve := time.Date(y, m, d-1, 20, 0, 0, 0, loc)
	if eve.Before(now) {
		t.Skip("the change is too close")
	}
	f.setPlan(f.U1, map[string]any{"recurrences": []any{weekly(eve.Format("2006-01-02"), "09:00:00", "17:00:00", "W. Europe Standard Time", "office", "", allDays...)}})
	advanceOn(t, s, durationTo(now, eve))
	wantEmptyOK(t, f.setLoc(f.U1, "setManualLocation", "D1rw", map[string]any{"workLocationType": "remote"}))
	f.wantWorkLocation(f.U1, "remote/manual/-")
	midnight := time.Date(y, m, d, 0, 0, 0, 0, loc)
	advanceOn(t, s, durationTo(eve, midnight.Add(-time.Second)))
	f.wantWorkLocation(f.U1, "remote/manual/-")
	advanceOn(t, s, "PT1S")
	f.wantWorkLocation(f.U1, "unspecified/none/-")
	nine := time.Date(y, m, d, 9, 0, 0, 0, loc)
	advanceOn(t, s, durationTo(midnight, nine.Add(-time.Second)))
	f.wantWorkLocation(f.U1, "unspecified/none/-")
	advanceOn(t, s, "PT1S")
	f.wantWorkLocation(f.U1, "office/scheduled/-")
	// The occurrences view says 09:00 local, whatever the offset.
	tok := f.scoped(f.U1, "Calendars.Read")
	v := f.doTok("GET", f.p("/me/settings/workHoursAndLocations/occurrencesView(startDateTime='%s',endDateTime='%s')",
		midnight.UTC().Format(time.RFC3339), midnight.Add(24*time.Hour).UTC().Format(time.RFC3339)), tok, nil)
	wantStatus(t, v, http.StatusOK)
	if got := v.str("value", 0, "start", "dateTime"); !strings.HasSuffix(got, "T09:00:00.0000000") {
		t.Errorf("occurrence start %q: %s", got, v.Body)
	}
}

// workLocation in every answer: the filtered list, getPresencesByUserId,
// $batch.
func TestWorkLocation_EveryAnswer(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		wantEmptyOK(t, f.setLoc(f.U1, "setManualLocation", "D1rw", map[string]any{"workLocationType": "office", "placeId": "p1"}))
		l := f.get(f.p("/communications/presences?")+url.Values{"$filter": {fmt.Sprintf("id in ('%s','%s')", f.U1, f.U2)}}.Encode(), "D1ra")
		wantStatus(t, l, http.StatusOK)
		if wl(l, "value", 0) != "office/manual/p1" || wl(l, "value", 1) != "unspecified/none/-" {
			t.Errorf("$filter list: %s", l.Body)
		}
		b := f.post(f.p("/communications/getPresencesByUserId"), "D1ra", map[string]any{"ids": []string{f.U1}})
		wantStatus(t, b, http.StatusOK)
		if wl(b, "value", 0) != "office/manual/p1" {
			t.Errorf("getPresencesByUserId: %s", b.Body)
		}
		batch := f.post(f.p("/$batch"), "D1rw", map[string]any{"requests": []any{
			map[string]any{"id": "1", "method": "POST", "url": "/me/presence/setAutomaticLocation",
				"headers": map[string]string{"Content-Type": "application/json"}, "body": map[string]any{"workLocationType": "remote"}},
			map[string]any{"id": "2", "method": "GET", "url": "/me/presence", "dependsOn": []string{"1"}},
		}})
		wantStatus(t, batch, http.StatusOK)
		if !strings.Contains(string(batch.Body), `"workLocation":{"workLocationType":"office","source":"manual","placeId":"p1"}`) {
			t.Errorf("$batch: %s", batch.Body)
		}
	})
}

// The work plan API: delegated Calendars.Read / Calendars.ReadWrite, own
// user only, applications refused.
func TestWorkPlan_API(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		rw := f.scoped(f.U1, "Calendars.ReadWrite")
		ro := f.scoped(f.U1, "Calendars.Read")
		other := f.scoped(f.U2, "Calendars.ReadWrite")
		app := f.tok("APPrw")
		base := f.p("/me/settings/workHoursAndLocations")
		own := f.p("/users/%s/settings/workHoursAndLocations", f.U1)

		get := f.doTok("GET", base, ro, nil)
		wantStatus(t, get, http.StatusOK)
		if get.str("maxSharedWorkLocationDetails") != "specific" {
			t.Errorf("settings: %s", get.Body)
		}
		wantError(t, f.doTok("PATCH", base, ro, map[string]any{"maxSharedWorkLocationDetails": "none"}), 403, "Forbidden", "")
		wantError(t, f.doTok("PATCH", base, rw, map[string]any{"maxSharedWorkLocationDetails": "exact"}), 400, "InvalidArgument", "")
		wantError(t, f.doTok("PATCH", base, rw, map[string]any{"timeZone": "UTC"}), 400, "BadRequest", "")
		patched := f.doTok("PATCH", own, rw, map[string]any{"maxSharedWorkLocationDetails": "Approximate"})
		wantStatus(t, patched, http.StatusOK)
		if got := f.doTok("GET", base, ro, nil).str("maxSharedWorkLocationDetails"); got != "approximate" || patched.str("maxSharedWorkLocationDetails") != "approximate" {
			t.Errorf("after PATCH: %q, %s", got, patched.Body)
		}
		list := f.doTok("GET", base+"/recurrences", ro, nil)
		wantStatus(t, list, http.StatusOK)
		if !strings.Contains(string(list.Body), `"value":[]`) {
			t.Errorf("empty list: %s", list.Body)
		}
		rec := weekly("2030-01-06", "09:00:00", "17:00:00", "Pacific Standard Time", "office", "b1", "monday", "wednesday", "friday")
		created := f.doTok("POST", base+"/recurrences", rw, rec)
		wantStatus(t, created, http.StatusCreated)
		id := created.str("id")
		if id == "" || created.str("recurrence", "pattern", "type") != "weekly" || created.str("workLocationType") != "office" {
			t.Fatalf("created: %s", created.Body)
		}
		wantError(t, f.doTok("POST", base+"/recurrences", ro, rec), 403, "Forbidden", "")
		wantError(t, f.doTok("GET", own+"/recurrences", other, nil), 403, "Forbidden", "")
		wantError(t, f.doTok("GET", own+"/recurrences", app, nil), 403, "Forbidden", "")
		wantError(t, f.doTok("GET", base+"/recurrences", app, nil), 400, "BadRequest", "")
		wantError(t, f.doTok("GET", base+"/recurrences", f.tok("D1rw"), nil), 403, "Forbidden", "")
		byUser := f.doTok("GET", own+"/recurrences/"+id, ro, nil)
		wantStatus(t, byUser, http.StatusOK)
		if byUser.str("placeId") != "b1" {
			t.Errorf("get by id: %s", byUser.Body)
		}
		// PUT replaces the whole object; PATCH is refused.
		rec2 := weekly("2030-01-06", "10:00:00", "16:00:00", "UTC", "remote", "", "tuesday")
		put := f.doTok("PUT", base+"/recurrences/"+id, rw, rec2)
		wantStatus(t, put, http.StatusOK)
		if put.str("id") != id || put.has("placeId") && put.str("placeId") != "" || put.str("workLocationType") != "remote" {
			t.Errorf("put: %s", put.Body)
		}
		wantError(t, f.doTok("PATCH", base+"/recurrences/"+id, rw, map[string]any{"workLocationType": "office"}), 405, "BadRequest", "")
		wantError(t, f.doTok("PUT", base+"/recurrences/nope", rw, rec2), 404, "NotFound", "")
		// Validation.
		bad := weekly("2030-01-06", "09:00:00", "17:00:00", "UTC", "timeOff", "", "monday")
		wantError(t, f.doTok("POST", base+"/recurrences", rw, bad), 400, "", "")
		bad = weekly("2030-01-06", "09:00:00", "17:00:00", "Mars Standard Time", "office", "", "monday")
		wantError(t, f.doTok("POST", base+"/recurrences", rw, bad), 400, "", "")
		bad = weekly("2030-01-06", "09:00:00", "17:00:00", "UTC", "office", "", "someday")
		wantError(t, f.doTok("POST", base+"/recurrences", rw, bad), 400, "", "")
		bad = weekly("2030-01-06", "09:00:00", "17:00:00", "UTC", "office", "", "monday")
		bad["color"] = "blue"
		wantError(t, f.doTok("POST", base+"/recurrences", rw, bad), 400, "BadRequest", "")
		// A time-off occurrence, then the view.
		occ := map[string]any{
			"start":            map[string]any{"dateTime": "2030-01-08T00:00:00", "timeZone": "UTC"},
			"end":              map[string]any{"dateTime": "2030-01-09T00:00:00", "timeZone": "UTC"},
			"workLocationType": "timeOff",
			"timeOffDetails":   map[string]any{"subject": "Dentist", "isAllDay": true},
		}
		oc := f.doTok("POST", base+"/occurrences", rw, occ)
		wantStatus(t, oc, http.StatusCreated)
		if got := f.doTok("GET", base+"/occurrences/"+oc.str("id"), ro, nil); got.str("timeOffDetails", "subject") != "Dentist" {
			t.Errorf("get occurrence: %s", got.Body)
		}
		if got := f.doTok("GET", own+"/occurrences", ro, nil); got.str("value", 0, "id") != oc.str("id") {
			t.Errorf("list occurrences: %s", got.Body)
		}
		office := map[string]any{"start": occ["start"], "end": occ["end"], "workLocationType": "office"}
		wantError(t, f.doTok("POST", base+"/occurrences", rw, office), 400, "", "")
		view := f.doTok("GET", base+"/occurrencesView(startDateTime='2030-01-06T00:00:00Z',endDateTime='2030-01-23T00:00:00Z')", ro, nil)
		wantStatus(t, view, http.StatusOK)
		// Tuesdays 8, 15, 22: the 8th is time off.
		var got []string
		for i := 0; ; i++ {
			s := view.str("value", i, "start", "dateTime")
			if s == "" {
				break
			}
			got = append(got, s[:10]+" "+view.str("value", i, "workLocationType"))
		}
		if want := "[2030-01-08 timeOff 2030-01-15 remote 2030-01-22 remote]"; fmt.Sprint(got) != want {
			t.Errorf("occurrencesView = %v, want %s\n%s", got, want, view.Body)
		}
		wantError(t, f.doTok("GET", base+"/occurrencesView(startDateTime='2030-01-06T00:00:00Z')", ro, nil), 400, "BadRequest", "")
		wantError(t, f.doTok("DELETE", base+"/occurrences/"+oc.str("id"), ro, nil), 403, "Forbidden", "")
		wantStatus(t, f.doTok("DELETE", base+"/occurrences/"+oc.str("id"), rw, nil), http.StatusNoContent)
		wantStatus(t, f.doTok("DELETE", base+"/recurrences/"+id, rw, nil), http.StatusNoContent)
		wantError(t, f.doTok("GET", base+"/recurrences/"+id, rw, nil), 404, "NotFound", "")
	})
}

// setCurrentLocation replaces the current segment (or the day's) with an
// occurrence of the new location, which the scheduled layer shows.
func TestWorkPlan_SetCurrentLocation(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.setPlan(f.U1, map[string]any{"recurrences": []any{weekly("2020-01-06", "00:00:00", "23:59:00", "UTC", "office", "", allDays...)}})
		now := clockNow(t).UTC()
		if now.Hour() == 23 && now.Minute() >= 59 {
			advance(t, "PT2M")
		}
		f.wantWorkLocation(f.U1, "office/scheduled/-")
		rw := f.scoped(f.U1, "Calendars.ReadWrite")
		path := f.p("/me/settings/workHoursAndLocations/occurrences/setCurrentLocation")
		wantStatus(t, f.doTok("POST", path, rw, map[string]any{"updateScope": "currentSegment", "workLocationType": "remote"}), http.StatusNoContent)
		f.wantWorkLocation(f.U1, "remote/scheduled/-")
		wantStatus(t, f.doTok("POST", path, rw, map[string]any{"updateScope": "CurrentDay", "workLocationType": "office", "placeId": "b2"}), http.StatusNoContent)
		f.wantWorkLocation(f.U1, "office/scheduled/b2")
		wantError(t, f.doTok("POST", path, rw, map[string]any{"updateScope": "currentWeek", "workLocationType": "office"}), 400, "", "")
		wantError(t, f.doTok("POST", path, rw, map[string]any{"updateScope": "currentDay", "workLocationType": "timeOff"}), 400, "", "")
		wantError(t, f.doTok("POST", path, rw, map[string]any{"workLocationType": "office"}), 400, "BadRequest", "")
	})
}

// Work location and plan survive kill -9.
func TestWorkLocation_SurvivesKill(t *testing.T) {
	args := hookedArgs(t, "--rate-limit", "0")
	s1 := startRestartableServer(t, args)
	addr := strings.TrimPrefix(s1.base, "http://")
	f := newFixture(t)
	f.s = s1
	f.v = "beta"
	f.setPlan(f.U2, map[string]any{"recurrences": []any{weekly("2020-01-06", "00:00:00", "23:59:00", "UTC", "remote", "", allDays...)}})
	wantEmptyOK(t, f.setLoc(f.U1, "setManualLocation", "D1rw", map[string]any{"workLocationType": "office", "placeId": "hq"}))
	before := string(f.getp(f.U1).Body)
	if err := s1.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-s1.exited
	s2, err := startServerOn(addr, args)
	if err != nil {
		t.Fatal(err)
	}
	stopAtEnd(t, s2, "the restarted presenced")
	f.s = s2
	after := f.getp(f.U1)
	if wl(after) != "office/manual/hq" {
		t.Errorf("after kill -9: %s (before: %s)", after.Body, before)
	}
	r := f.doTok("GET", f.p("/me/settings/workHoursAndLocations/recurrences"), f.scoped(f.U2, "Calendars.Read"), nil)
	wantStatus(t, r, http.StatusOK)
	if r.str("value", 0, "workLocationType") != "remote" {
		t.Errorf("plan after kill -9: %s", r.Body)
	}
}

// A rich notification carries the user's work location at the change; a
// change of the work location alone sends none (Graph notifies changes of
// availability and activity).
func TestWorkLocation_RichNotification(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U1), sk.URL, t0.Add(50*time.Minute))))
	wantEmptyOK(t, f.setLoc(f.U1, "setManualLocation", "D1rw", map[string]any{"workLocationType": "office", "placeId": "hq"}))
	f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
	d := sk.waitPosts(t, 1, deliveryWithin)[0]
	items := d.items()
	if len(items) != 1 {
		t.Fatalf("%d items, want 1 (the work location alone notifies nothing): %s", len(items), d.Body)
	}
	data := decryptItem(t, items[0])
	if data["availability"] != "Busy" {
		t.Errorf("the first notification is of %v, want the setPresence (Busy)", data["availability"])
	}
	w, _ := data["workLocation"].(map[string]any)
	if w["workLocationType"] != "office" || w["source"] != "manual" || w["placeId"] != "hq" {
		t.Errorf("decrypted workLocation %v", data["workLocation"])
	}
}

// The SSE stream's data carries workLocation; a change of the work location
// alone emits no event.
func TestWorkLocation_Stream(t *testing.T) {
	f := newFixture(t)
	wantEmptyOK(t, f.setLoc(f.U1, "setManualLocation", "D1rw", map[string]any{"workLocationType": "remote"}))
	res, es := openStream(t, f.s, f.v, f.tok("D1ra"), f.U1)
	if es == nil {
		t.Fatalf("GET stream -> %d, want 200", res.StatusCode)
	}
	ev := es.next(t)
	if w, _ := ev.Data["workLocation"].(map[string]any); w["workLocationType"] != "remote" || w["source"] != "manual" {
		t.Errorf("snapshot's workLocation: %s", ev.Raw)
	}
	wantEmptyOK(t, f.setLoc(f.U1, "setManualLocation", "D1rw", map[string]any{"workLocationType": "office", "placeId": "hq"}))
	f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw") // the marker
	ev = es.next(t)
	wantEvent(t, ev, f.U1, "Busy/InACall")
	if w, _ := ev.Data["workLocation"].(map[string]any); w["workLocationType"] != "office" || w["placeId"] != "hq" {
		t.Errorf("event's workLocation: %s", ev.Raw)
	}
	es.none(t, "a change of the work location alone")
}
