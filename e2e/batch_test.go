package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

// batchResponses indexes the responses of a $batch answer by id (they may
// come in any order) and checks their shape.
func batchResponses(t *testing.T, r *resp) map[string]map[string]any {
	t.Helper()
	v, ok := r.get("responses")
	arr, isArr := v.([]any)
	if !ok || !isArr {
		t.Fatalf("%s: no responses array", r)
	}
	out := map[string]map[string]any{}
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("%s: responses[%d] is not an object", r, i)
		}
		id, _ := m["id"].(string)
		if id == "" {
			t.Fatalf("%s: responses[%d] has no string id", r, i)
		}
		if _, dup := out[id]; dup {
			t.Errorf("%s: id %q answered twice", r, id)
		}
		if st, ok := m["status"].(float64); !ok {
			t.Errorf("%s: responses[%d].status is not a number", r, i)
		} else if st < 200 || st > 299 {
			assertInnerEnvelope(t, id, m)
		}
		out[id] = m
	}
	return out
}

// assertInnerEnvelope checks the error envelope of an inner response (C12
// #116 applies to inner errors too).
func assertInnerEnvelope(t *testing.T, id string, e map[string]any) {
	t.Helper()
	if code, _ := jget(e, "body", "error", "code"); code == nil || code == "" {
		t.Errorf("inner response %s: no error.code: %v", id, e)
	}
	if _, ok := jget(e, "body", "error", "message"); !ok {
		t.Errorf("inner response %s: no error.message: %v", id, e)
	}
	d, _ := jget(e, "body", "error", "innerError", "date")
	if s, _ := d.(string); !errorDateRE.MatchString(s) {
		t.Errorf("inner response %s: innerError.date = %v", id, d)
	}
	rid, _ := jget(e, "body", "error", "innerError", "request-id")
	if s, _ := rid.(string); !guidRE.MatchString(s) {
		t.Errorf("inner response %s: innerError.request-id = %v", id, rid)
	}
}

func status(e map[string]any) int {
	s, _ := e["status"].(float64)
	return int(s)
}

// C12 #119: setPresence then a dependent GET in one batch.
func TestC12_119_Batch(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		body := map[string]any{"requests": []map[string]any{
			{"id": "1", "method": "POST", "url": "/users/" + f.U1 + "/presence/setPresence",
				"headers": map[string]string{"Content-Type": "application/json"},
				"body":    setBody(f.A, "Busy", "InACall", "PT1H")},
			{"id": "2", "dependsOn": []string{"1"}, "method": "GET", "url": "/users/" + f.U1 + "/presence"},
		}}
		r := f.post(f.p("/$batch"), "APPrw", body)
		wantStatus(t, r, http.StatusOK)
		rs := batchResponses(t, r)
		if len(rs) != 2 {
			t.Fatalf("%d responses, want 2", len(rs))
		}
		if status(rs["1"]) != 200 {
			t.Errorf("response 1: %v, want status 200", rs["1"])
		}
		if b, ok := rs["1"]["body"]; ok && b != nil {
			t.Errorf("response 1: body %v, want null or none (6)", b)
		}
		if status(rs["2"]) != 200 {
			t.Errorf("response 2: %v, want status 200", rs["2"])
		}
		if a, _ := jget(rs["2"], "body", "availability"); a != "Busy" {
			t.Errorf("response 2: body.availability = %v, want Busy", a)
		}
		if a, _ := jget(rs["2"], "body", "activity"); a != "InACall" {
			t.Errorf("response 2: body.activity = %v, want InACall", a)
		}
		f.wantPresence(f.U1, "Busy", "InACall")
	})
}

// 6: a failed request makes its dependants 424, transitively; independent
// requests still run.
func TestC12_BatchFailedDependency(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		r := f.post(f.p("/$batch"), "APPrw", map[string]any{"requests": []map[string]any{
			{"id": "a", "method": "POST", "url": "users/" + f.U1 + "/presence/setPresence",
				"headers": map[string]string{"content-type": "application/json"},
				"body":    setBody(f.A, "Busy", "Busy", "PT1H")},
			{"id": "b", "dependsOn": []string{"a"}, "method": "GET", "url": "/users/" + f.U1 + "/presence"},
			{"id": "c", "dependsOn": []string{"b"}, "method": "POST", "url": "/users/" + f.U1 + "/presence/setPresence",
				"headers": map[string]string{"Content-Type": "application/json"},
				"body":    setBody(f.A, "Away", "Away", "PT1H")},
			{"id": "d", "method": "GET", "url": "/users/" + f.U2 + "/presence"},
		}})
		wantStatus(t, r, http.StatusOK)
		rs := batchResponses(t, r)
		for id, want := range map[string]int{"a": 400, "b": 424, "c": 424, "d": 200} {
			if got := status(rs[id]); got != want {
				t.Errorf("response %s: status %d, want %d (%v)", id, got, want, rs[id])
			}
		}
		if code, _ := jget(rs["a"], "body", "error", "code"); code != "InvalidArgument" {
			t.Errorf("response a: code %v, want InvalidArgument", code)
		}
		// c never ran.
		f.wantPresence(f.U1, "Offline", "Offline")
	})
}

// 6: the batch's own limits: 1-20 requests, unique ids.
func TestC12_BatchLimits(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		gets := func(n int) []map[string]any {
			var out []map[string]any
			for i := 1; i <= n; i++ {
				out = append(out, map[string]any{"id": strconv.Itoa(i), "method": "GET", "url": "/users/" + f.U1 + "/presence"})
			}
			return out
		}
		t.Run("20 requests", func(t *testing.T) {
			f := f.in(t)
			r := f.post(f.p("/$batch"), "APPr", map[string]any{"requests": gets(20)})
			wantStatus(t, r, 200)
			rs := batchResponses(t, r)
			if len(rs) != 20 {
				t.Fatalf("%d responses, want 20", len(rs))
			}
			for id, e := range rs {
				if status(e) != 200 {
					t.Errorf("response %s: %v", id, e)
				}
			}
		})
		t.Run("21 requests", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/$batch"), "APPr", map[string]any{"requests": gets(21)}), 400, "BadRequest", "")
		})
		t.Run("duplicate ids", func(t *testing.T) {
			f := f.in(t)
			reqs := gets(3)
			reqs[2]["id"] = "1"
			wantError(t, f.post(f.p("/$batch"), "APPr", map[string]any{"requests": reqs}), 400, "", "")
		})
		t.Run("no requests", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/$batch"), "APPr", map[string]any{"requests": []any{}}), 400, "", "")
		})
		t.Run("no Content-Type", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/$batch"), "APPr", map[string]any{"requests": gets(1)}, noContentType()), 400, "BadRequest", msgBadPayload)
		})
		t.Run("no token", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(f.p("/$batch"), "", map[string]any{"requests": gets(1)}), 401, "InvalidAuthenticationToken", "")
		})
		t.Run("inner body without Content-Type", func(t *testing.T) {
			f := f.in(t)
			r := f.post(f.p("/$batch"), "APPrw", map[string]any{"requests": []map[string]any{
				{"id": "1", "method": "POST", "url": "/users/" + f.U1 + "/presence/setPresence", "body": setBody(f.A, "Busy", "InACall", "PT1H")},
			}})
			if r.Status == 200 {
				if st := status(batchResponses(t, r)["1"]); st != 400 {
					t.Errorf("inner request with a body but no Content-Type: status %d, want 400 (6)", st)
				}
			} else {
				wantError(t, r, 400, "", "")
			}
		})
	})
}

// 6: inner requests are authorised as the outer token; /me follows it.
func TestC12_BatchInnerAuthorization(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		r := f.post(f.p("/$batch"), "D1r", map[string]any{"requests": []map[string]any{
			{"id": "me", "method": "GET", "url": "/me/presence"},
			{"id": "self", "method": "GET", "url": "/users/" + f.U1 + "/presence"},
			{"id": "other", "method": "GET", "url": "/users/" + f.U2 + "/presence"},
			{"id": "write", "method": "POST", "url": "/me/presence/setPresence",
				"headers": map[string]string{"Content-Type": "application/json"}, "body": setBody(f.A, "Busy", "InACall", "PT1H")},
			{"id": "missing", "method": "GET", "url": "/users/" + f.U1 + "/presence/nothing"},
			{"id": "select", "method": "GET", "url": "me/presence?$select=availability"},
		}})
		wantStatus(t, r, 200)
		rs := batchResponses(t, r)
		if a, _ := jget(rs["select"], "body", "availability"); a != "Offline" || status(rs["select"]) != 200 {
			t.Errorf("$select in a batch: %v", rs["select"])
		} else if _, ok := jget(rs["select"], "body", "activity"); ok {
			t.Errorf("$select in a batch: activity present: %v", rs["select"])
		}
		for id, want := range map[string]int{"me": 200, "self": 200, "other": 403, "write": 403, "missing": 404} {
			if got := status(rs[id]); got != want {
				t.Errorf("D1r batch, response %s: status %d, want %d (%v)", id, got, want, rs[id])
			}
		}
		if id, _ := jget(rs["me"], "body", "id"); id != f.U1 {
			t.Errorf("/me in a batch of D1r: id %v, want U1", id)
		}

		r = f.post(f.p("/$batch"), "APPr", map[string]any{"requests": []map[string]any{
			{"id": "1", "method": "GET", "url": "/me/presence"},
		}})
		wantStatus(t, r, 200)
		e := batchResponses(t, r)["1"]
		if status(e) != 400 {
			t.Errorf("/me in an app batch: %v, want 400", e)
		}
		if msg, _ := jget(e, "body", "error", "message"); msg != "/me request is only valid with delegated authentication flow." {
			t.Errorf("/me in an app batch: message %v", msg)
		}

		// A delegated writer sets its own presence through /me in a batch.
		r = f.post(f.p("/$batch"), "D1rw", map[string]any{"requests": []map[string]any{
			{"id": "1", "method": "POST", "url": "/me/presence/setPresence",
				"headers": map[string]string{"Content-Type": "application/json"}, "body": setBody(f.A, "DoNotDisturb", "Presenting", "PT1H")},
			{"id": "2", "dependsOn": []string{"1"}, "method": "GET", "url": "/me/presence"},
		}}, gzipped())
		wantStatus(t, r, 200)
		rs = batchResponses(t, r)
		if status(rs["1"]) != 200 || status(rs["2"]) != 200 {
			t.Fatalf("D1rw batch: %v", rs)
		}
		if a, _ := jget(rs["2"], "body", "activity"); a != "Presenting" {
			t.Errorf("D1rw batch GET: activity %v, want Presenting", a)
		}
		f.wantPresence(f.U1, "DoNotDisturb", "Presenting")
	})
}

// A batch may mix actions of several users and read them all back in order.
func TestC12_BatchChain(t *testing.T) {
	f := newFixture(t)
	users := []string{newGUID(), newGUID(), newGUID()}
	pairs := [][2]string{{"Busy", "InACall"}, {"Away", "Away"}, {"DoNotDisturb", "Presenting"}}
	var reqs []map[string]any
	for i, u := range users {
		reqs = append(reqs, map[string]any{"id": fmt.Sprint("set", i), "method": "POST", "url": "/users/" + u + "/presence/microsoft.graph.setPresence",
			"headers": map[string]string{"Content-Type": "application/json"}, "body": setBody(f.A, pairs[i][0], pairs[i][1], "PT1H")})
	}
	reqs = append(reqs, map[string]any{"id": "bulk", "dependsOn": []string{"set0", "set1", "set2"}, "method": "POST",
		"url": "/communications/getPresencesByUserId", "headers": map[string]string{"Content-Type": "application/json"},
		"body": map[string]any{"ids": users}})
	r := f.post(f.p("/$batch"), "APPrw", map[string]any{"requests": reqs})
	wantStatus(t, r, 200)
	bulk := batchResponses(t, r)["bulk"]
	if status(bulk) != 200 {
		t.Fatalf("bulk: %v", bulk)
	}
	for i := range users {
		if a, _ := jget(bulk, "body", "value", i, "activity"); a != pairs[i][1] {
			t.Errorf("value[%d].activity = %v, want %s", i, a, pairs[i][1])
		}
	}
}
