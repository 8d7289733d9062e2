package e2e

// Cases found by a rule-by-rule review of graph-presence.md sections 1, 2,
// 3, 5 and 6 against the server; each failed before its fix.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// 6: every inner response of a batch is {"id","status","headers","body"};
// headers is an object even when the inner response (a 200 action) had none
// to pass on, and body may then be left out.
func TestReviewPresenceBatchResponsesAlwaysCarryHeaders(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		r := f.post(f.p("/$batch"), "APPrw", map[string]any{"requests": []map[string]any{
			{"id": "set", "method": "POST", "url": "/users/" + f.U1 + "/presence/setPresence",
				"headers": map[string]string{"Content-Type": "application/json"},
				"body":    setBody(f.A, "Busy", "InACall", "PT1H")},
			{"id": "pref", "method": "POST", "url": "/users/" + f.U1 + "/presence/clearUserPreferredPresence"},
			{"id": "get", "dependsOn": []string{"set"}, "method": "GET", "url": "/users/" + f.U1 + "/presence"},
			{"id": "bad", "method": "POST", "url": "/users/" + f.U2 + "/presence/setPresence",
				"headers": map[string]string{"Content-Type": "application/json"},
				"body":    setBody(f.A, "Busy", "Busy", "PT1H")},
			{"id": "dep", "dependsOn": []string{"bad"}, "method": "GET", "url": "/users/" + f.U2 + "/presence"},
		}})
		wantStatus(t, r, http.StatusOK)
		rs := batchResponses(t, r)
		for id, want := range map[string]int{"set": 200, "pref": 200, "get": 200, "bad": 400, "dep": http.StatusFailedDependency} {
			e := rs[id]
			if got := status(e); got != want {
				t.Errorf("response %s: status %d, want %d (%v)", id, got, want, e)
			}
			if h, ok := e["headers"].(map[string]any); !ok {
				t.Errorf("response %s: headers = %v, want an object (6)", id, e["headers"])
			} else if want != 200 || id == "get" {
				if ct, _ := h["Content-Type"].(string); ct == "" {
					t.Errorf("response %s: a JSON body without a Content-Type header: %v", id, h)
				}
			}
		}
	})
}

// 1.3: the collection's $filter has the subscription resource's cap (4.2
// #10): 650 distinct ids. Repeats (in any case) are answered once, in the
// order of their first occurrence; a 651st distinct id is 400.
func TestReviewPresenceListFilterCapCountsDistinctIDs(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		var q []string
		for range 650 {
			q = append(q, "'"+newGUID()+"'")
		}
		filter := func(vals []string) string {
			return f.p("/communications/presences?") + url.Values{"$filter": {"id in (" + strings.Join(vals, ",") + ")"}}.Encode()
		}
		repeated := append(append([]string{}, q...), strings.ToUpper(q[0]), q[1])
		r := f.get(filter(repeated), "D1ra")
		wantStatus(t, r, http.StatusOK)
		vs := values(t, r)
		if len(vs) != 650 {
			t.Fatalf("650 distinct ids written 652 times: %d values, want 650", len(vs))
		}
		if got, want := vs[0]["id"], strings.Trim(q[0], "'"); got != want {
			t.Errorf("value[0].id = %v, want %s", got, want)
		}
		more := append(append([]string{}, q...), "'"+newGUID()+"'", q[2])
		wantError(t, f.get(filter(more), "D1ra"), http.StatusBadRequest, "BadRequest", "The number of ids exceeds the maximum of 650.")
	})
}

// 1.0 "Bodies", 1.5, 1.7 (A6): a valid Edm.Duration longer than Go's
// time.Duration (about 292 years) is still a valid literal: setPresence
// refuses it as out of range (InvalidArgument), setUserPreferredPresence,
// which has no upper bound, takes it. Only a literal beyond Edm.Duration
// itself is unreadable (BadRequest).
func TestReviewPresenceVeryLongDurations(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		wantError(t, f.set(f.U1, "Busy", "InACall", "P200000D", "APPrw"), http.StatusBadRequest, "InvalidArgument", msgDurationRange)
		wantError(t, f.set(f.U1, "Busy", "InACall", "P99999999999D", "APPrw"), http.StatusBadRequest, "BadRequest",
			"Cannot convert the literal 'P99999999999D' to the expected type 'Edm.Duration'.")

		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		wantEmptyOK(t, f.preferred(f.U1, "BeRightBack", "BeRightBack", "P200000D", "APPrw"))
		f.wantPresence(f.U1, "BeRightBack", "BeRightBack")
	})
}
