package e2e

import (
	"bufio"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
)

// refusedByDesign are the operations of the metadata that presenced refuses
// with 405 in Graph's envelope: the undocumented entity CRUD of presence
// (graph-presence.md 1.11).
func refusedByDesign(method, path string) bool {
	switch {
	case method == "POST" && path == "/communications/presences":
		return true
	case (method == "PATCH" || method == "DELETE") && (strings.HasSuffix(path, "/presence") || strings.HasPrefix(path, "/communications/presences/{")) && strings.Count(path, "/") <= 3:
		return true
	}
	return false
}

// TestMetadataWalk sends every operation of testdata/graph-metadata-paths.txt
// and requires it to be served (2xx) or refused as documented (405 in
// Graph's envelope): never 404, never 5xx.
func TestMetadataWalk(t *testing.T) {
	file, err := os.Open("testdata/graph-metadata-paths.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	f := newFixture(t)
	tok := f.scoped(f.U1, "Presence.ReadWrite", "Presence.Read.All", "Calendars.ReadWrite")
	weeklyBody := weekly("2030-01-06", "09:00:00", "17:00:00", "UTC", "office", "", "monday")
	timeOff := map[string]any{
		"start":            map[string]any{"dateTime": "2030-01-08T00:00:00", "timeZone": "UTC"},
		"end":              map[string]any{"dateTime": "2030-01-09T00:00:00", "timeZone": "UTC"},
		"workLocationType": "timeOff",
	}
	bodies := map[string]any{
		"setpresence":              map[string]any{"sessionId": f.A, "availability": "Available", "activity": "Available", "expirationDuration": "PT1H"},
		"clearpresence":            map[string]any{"sessionId": f.A},
		"setuserpreferredpresence": map[string]any{"availability": "Busy", "activity": "Busy"},
		"setstatusmessage":         statusText("walking the metadata", nil),
		"setmanuallocation":        map[string]any{"workLocationType": "office"},
		"setautomaticlocation":     map[string]any{"workLocationType": "remote"},
		"getpresencesbyuserid":     map[string]any{"ids": []string{f.U1}},
		"recurrences":              weeklyBody,
		"occurrences":              timeOff,
		"setcurrentlocation":       map[string]any{"updateScope": "currentDay", "workLocationType": "remote"},
		"workhoursandlocations":    map[string]any{"maxSharedWorkLocationDetails": "approximate"},
	}
	n := 0
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.SplitN(line, " ", 3)
		version, method, path := fields[0], fields[1], fields[2]
		n++
		g := f.in(t)
		g.v = version
		concrete := strings.NewReplacer("{user-id}", f.U1, "{presence-id}", f.U1,
			"{startDateTime}", "2030-01-06T00:00:00Z", "{endDateTime}", "2030-01-13T00:00:00Z").Replace(path)
		base := "/" + version + "/me/settings/workHoursAndLocations"
		if strings.Contains(concrete, "{workPlanRecurrence-id}") {
			r := g.doTok("POST", base+"/recurrences", tok, weeklyBody)
			wantStatus(t, r, http.StatusCreated)
			concrete = strings.ReplaceAll(concrete, "{workPlanRecurrence-id}", r.str("id"))
		}
		if strings.Contains(concrete, "{workPlanOccurrence-id}") {
			r := g.doTok("POST", base+"/occurrences", tok, timeOff)
			wantStatus(t, r, http.StatusCreated)
			concrete = strings.ReplaceAll(concrete, "{workPlanOccurrence-id}", r.str("id"))
		}
		if strings.HasSuffix(concrete, "/clearPresence") || strings.HasSuffix(concrete, ".clearPresence") {
			wantEmptyOK(t, g.doTok("POST", "/"+version+"/users/"+f.U1+"/presence/setPresence", tok, bodies["setpresence"]))
		}
		if concrete == "/communications/presences" && method == "GET" {
			concrete += "?" + url.Values{"$filter": {"id eq '" + f.U1 + "'"}}.Encode()
		}
		last := concrete[strings.LastIndexByte(concrete, '/')+1:]
		op := strings.ToLower(strings.TrimPrefix(last, "microsoft.graph."))
		var body any
		if method == "POST" || method == "PUT" || method == "PATCH" {
			if b, ok := bodies[op]; ok {
				body = b
			} else if strings.Contains(concrete, "/recurrences/") {
				body = weeklyBody
			} else if strings.Contains(concrete, "/occurrences/") {
				body = timeOff
			}
		}
		r := g.doTok(method, "/"+version+concrete, tok, body)
		switch {
		case refusedByDesign(method, path):
			wantError(t, r, http.StatusMethodNotAllowed, "BadRequest", "")
		case r.Status == http.StatusNotFound || r.Status >= 500 || r.Status < 200 || r.Status > 299:
			t.Errorf("%s: %s", line, r)
		}
	}
	if n < 100 {
		t.Fatalf("only %d operations listed", n)
	}
}

// Nullable action parameters: a body without them gets Graph's default or
// a 400 in Graph's envelope, never a 500.
func TestMetadataNullableParameters(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		path := f.p("/users/%s/presence/setPresence", f.U1)
		wantError(t, f.post(path, "APPrw", map[string]any{"availability": "Available", "activity": "Available"}), 400, "InvalidArgument", msgSessionInvalid)
		wantError(t, f.post(path, "APPrw", map[string]any{"sessionId": nil, "availability": "Available", "activity": "Available"}), 400, "InvalidArgument", msgSessionInvalid)
		wantEmptyOK(t, f.post(path, "APPrw", map[string]any{"sessionId": f.A, "availability": "Available", "activity": "Available"}))
		wantEmptyOK(t, f.post(path, "APPrw", map[string]any{"sessionId": f.A, "availability": "Busy", "activity": "InACall", "expirationDuration": nil}))
		pref := f.p("/users/%s/presence/setUserPreferredPresence", f.U1)
		wantEmptyOK(t, f.post(pref, "APPrw", map[string]any{"availability": "Busy", "activity": "Busy"}))
		wantEmptyOK(t, f.post(pref, "APPrw", map[string]any{"availability": "Busy", "activity": "Busy", "expirationDuration": nil}))
		wantError(t, f.post(f.p("/users/%s/presence/clearPresence", f.U1), "APPrw", map[string]any{}), 400, "InvalidArgument", msgSessionInvalid)
		wantEmptyOK(t, f.post(f.p("/users/%s/presence/setManualLocation", f.U1), "D1rw", map[string]any{"workLocationType": "office", "placeId": nil}))
		f.wantWorkLocation(f.U1, "office/manual/-")
	})
}
