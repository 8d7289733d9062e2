package e2e

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const msgBadPayload = "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format."

// values returns the "value" array of a collection answer.
func values(t *testing.T, r *resp) []map[string]any {
	t.Helper()
	v, ok := r.get("value")
	arr, isArr := v.([]any)
	if !ok || !isArr {
		t.Fatalf("%s: no value array", r)
	}
	out := make([]map[string]any, len(arr))
	for i, e := range arr {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("%s: value[%d] is not an object", r, i)
		}
		out[i] = m
	}
	return out
}

func ids(vs []map[string]any) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i], _ = v["id"].(string)
	}
	return out
}

// C2 #15, #16, #17.
func TestC2_GetPresencesByUserId(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		path := f.p("/communications/getPresencesByUserId")
		body := map[string]any{"ids": []string{f.U1, f.U2}}
		for _, tok := range []string{"D1ra", "APPr", "APPrw"} {
			t.Run(tok, func(t *testing.T) {
				f := f.in(t)
				r := f.post(path, tok, body)
				if tok == "APPrw" && f.v == "beta" {
					// beta lists Presence.Read.All alone for applications.
					wantError(t, r, 403, "Forbidden", "")
					return
				}
				wantStatus(t, r, 200)
				vs := values(t, r)
				if got := ids(vs); len(got) != 2 || got[0] != f.U1 || got[1] != f.U2 {
					t.Fatalf("ids = %v, want [%s %s] in request order", got, f.U1, f.U2)
				}
				for i, want := range [][2]string{{"Busy", "InACall"}, {"Offline", "Offline"}} {
					if vs[i]["availability"] != want[0] || vs[i]["activity"] != want[1] {
						t.Errorf("value[%d] = %v/%v, want %s/%s", i, vs[i]["availability"], vs[i]["activity"], want[0], want[1])
					}
				}
				if ctx := r.str("@odata.context"); !strings.HasSuffix(ctx, "$metadata#Collection(microsoft.graph.presence)") {
					t.Errorf("@odata.context = %q", ctx)
				}
				for i, v := range vs {
					if s, _ := v["sequenceNumber"].(string); !seqRE.MatchString(s) {
						t.Errorf("value[%d].sequenceNumber = %v", i, v["sequenceNumber"])
					}
					if sm, ok := v["statusMessage"]; !ok || sm != nil {
						t.Errorf("value[%d].statusMessage = %v, want null", i, sm)
					}
					if oof, ok := v["outOfOfficeSettings"].(map[string]any); !ok || oof["isOutOfOffice"] != false {
						t.Errorf("value[%d].outOfOfficeSettings = %v", i, v["outOfOfficeSettings"])
					}
				}
			})
		}
		t.Run("#17 D1r", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(path, "D1r", body), 403, "Forbidden", "")
		})
		t.Run("D1x, APPx, MSA", func(t *testing.T) {
			f := f.in(t)
			for _, tok := range []string{"D1x", "APPx", "MSA", "D1rw"} {
				wantError(t, f.post(path, tok, body), 403, "", "")
			}
		})
		t.Run("qualified action name", func(t *testing.T) {
			f := f.in(t)
			r := f.post(f.p("/communications/microsoft.graph.getPresencesByUserId"), "D1ra", body)
			wantStatus(t, r, 200)
			if got := ids(values(t, r)); len(got) != 2 {
				t.Errorf("ids = %v", got)
			}
		})
		t.Run("no token", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(path, "", body), 401, "InvalidAuthenticationToken", "")
		})
	})
}

// Decision 1 and 1.4: order kept, duplicates collapsed to the first
// occurrence, unknown ids read Offline; the 650 limit.
func TestC2_OrderDedupLimits(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		path := f.p("/communications/getPresencesByUserId")
		f.mustSet(f.U3, "DoNotDisturb", "Presenting", "PT1H", "APPrw")
		r := f.post(path, "D1ra", map[string]any{"ids": []string{f.U3, f.U2, f.U3, f.U1, strings.ToUpper(f.U2)}})
		wantStatus(t, r, 200)
		vs := values(t, r)
		if got := ids(vs); fmt.Sprint(got) != fmt.Sprint([]string{f.U3, f.U2, f.U1}) {
			t.Fatalf("ids = %v, want [U3 U2 U1]: request order, duplicates collapsed, canonical ids", got)
		}
		if vs[0]["availability"] != "DoNotDisturb" || vs[0]["activity"] != "Presenting" {
			t.Errorf("U3 = %v/%v, want DoNotDisturb/Presenting", vs[0]["availability"], vs[0]["activity"])
		}
		for _, v := range vs[1:] {
			if v["availability"] != "Offline" || v["activity"] != "Offline" {
				t.Errorf("%v = %v/%v, want Offline/Offline", v["id"], v["availability"], v["activity"])
			}
		}

		many := make([]string, 651)
		for i := range many {
			many[i] = newGUID()
		}
		t.Run("#19 651 ids", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(path, "D1ra", map[string]any{"ids": many}), 400, "BadRequest", "The number of ids exceeds the maximum of 650.")
		})
		t.Run("650 ids", func(t *testing.T) {
			f := f.in(t)
			r := f.post(path, "D1ra", map[string]any{"ids": many[:650]})
			wantStatus(t, r, 200)
			vs := values(t, r)
			if len(vs) != 650 {
				t.Fatalf("len(value) = %d, want 650", len(vs))
			}
			for i, v := range vs {
				if v["id"] != many[i] || v["availability"] != "Offline" {
					t.Fatalf("value[%d] = %v, want id %s Offline", i, v, many[i])
				}
			}
		})
		t.Run("650 distinct ids sent with duplicates", func(t *testing.T) {
			f := f.in(t)
			dup := append(append([]string{}, many[:650]...), many[0])
			// 651 entries, 650 distinct: the limit counts entries sent.
			wantError(t, f.post(path, "D1ra", map[string]any{"ids": dup}), 400, "", "")
		})
	})
}

// C2 #20, #21: bad bodies.
func TestC2_BadBodies(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		path := f.p("/communications/getPresencesByUserId")
		for _, c := range []struct {
			name string
			body any
		}{
			{"#20 empty ids", `{"ids":[]}`},
			{"#20 no ids", `{}`},
			{"#20 not a GUID", `{"ids":["not-a-guid"]}`},
			{"a UPN", `{"ids":["adele@contoso.com"]}`},
			{"ids not an array", `{"ids":"` + f.U1 + `"}`},
			{"ids null", `{"ids":null}`},
		} {
			t.Run(c.name, func(t *testing.T) {
				f := f.in(t)
				wantError(t, f.post(path, "D1ra", c.body), 400, "BadRequest", "")
			})
		}
		t.Run("#21 no Content-Type", func(t *testing.T) {
			f := f.in(t)
			r := f.post(path, "D1ra", map[string]any{"ids": []string{f.U1}}, noContentType())
			wantError(t, r, 400, "BadRequest", msgBadPayload)
		})
		t.Run("text/plain", func(t *testing.T) {
			f := f.in(t)
			r := f.post(path, "D1ra", map[string]any{"ids": []string{f.U1}}, contentType("text/plain"))
			wantError(t, r, 400, "BadRequest", msgBadPayload)
		})
		t.Run("not JSON", func(t *testing.T) {
			f := f.in(t)
			wantError(t, f.post(path, "D1ra", `{"ids":[`), 400, "BadRequest", msgBadPayload)
		})
		t.Run("unknown parameter", func(t *testing.T) {
			f := f.in(t)
			r := f.post(path, "D1ra", map[string]any{"ids": []string{f.U1}, "x": 1})
			wantError(t, r, 400, "BadRequest", "The parameter 'x' in the request payload is not a valid parameter for the operation 'getPresencesByUserId'.")
		})
		t.Run("charset parameter accepted", func(t *testing.T) {
			f := f.in(t)
			r := f.post(path, "D1ra", map[string]any{"ids": []string{f.U1}}, contentType("application/json; charset=utf-8"))
			wantStatus(t, r, 200)
		})
	})
}

// 1.3: GET /communications/presences?$filter=id in ('…','…').
func TestListPresencesFilter(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		f.mustSet(f.U2, "Away", "Away", "PT1H", "APPrw")
		filter := func(f string) string { return "?" + url.Values{"$filter": {f}}.Encode() }
		path := f.p("/communications/presences")
		r := f.get(path+filter(fmt.Sprintf("id in ('%s','%s')", f.U2, f.U1)), "D1ra")
		wantStatus(t, r, 200)
		vs := values(t, r)
		if got := ids(vs); len(got) != 2 || got[0] != f.U2 || got[1] != f.U1 {
			t.Fatalf("ids = %v, want [U2 U1]", got)
		}
		if vs[0]["availability"] != "Away" || vs[1]["availability"] != "Offline" {
			t.Errorf("availabilities = %v, %v; want Away, Offline", vs[0]["availability"], vs[1]["availability"])
		}
		if ctx := r.str("@odata.context"); !strings.HasSuffix(ctx, "$metadata#communications/presences") {
			t.Errorf("@odata.context = %q, want suffix $metadata#communications/presences", ctx)
		}
		// The same with an application token and free spacing.
		r = f.get(path+filter(fmt.Sprintf("id in ( '%s' , '%s' )", f.U1, f.U2)), "APPr")
		wantStatus(t, r, 200)
		if got := ids(values(t, r)); len(got) != 2 || got[0] != f.U1 {
			t.Errorf("ids = %v, want [U1 U2]", got)
		}
		// Unfiltered: 400 (strict).
		wantError(t, f.get(path, "D1ra"), 400, "BadRequest", "A $filter on id is required.")
		// Unquoted ids are not the grammar.
		wantError(t, f.get(path+filter(fmt.Sprintf("id in (%s)", f.U1)), "D1ra"), 400, "", "")
		// More than 650 ids.
		var q []string
		for range 651 {
			q = append(q, "'"+newGUID()+"'")
		}
		wantError(t, f.get(path+filter("id in ("+strings.Join(q, ",")+")"), "D1ra"), 400, "", "")
		r = f.get(path+filter("id in ("+strings.Join(q[:650], ",")+")"), "D1ra")
		wantStatus(t, r, 200)
		if n := len(values(t, r)); n != 650 {
			t.Errorf("650 ids in $filter: %d values", n)
		}
		wantError(t, f.get(path+filter("id in ()"), "D1ra"), 400, "", "")
		// Reading many users needs a .All permission.
		wantError(t, f.get(path+filter(fmt.Sprintf("id in ('%s')", f.U1)), "D1r"), 403, "", "")
	})
}

// 1.4 and 2.7: in a bulk read, the caller's own entry keeps the status
// message's dates; other users' entries do not.
func TestC2_StatusVisibilityInBulk(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText("mine", nil)))
		wantEmptyOK(t, f.post(f.p("/users/%s/presence/setStatusMessage", f.U2), "APPrw", statusText("theirs", nil)))
		r := f.post(f.p("/communications/getPresencesByUserId"), "D1ra", map[string]any{"ids": []string{f.U1, f.U2}})
		wantStatus(t, r, http.StatusOK)
		vs := values(t, r)
		if len(vs) != 2 {
			t.Fatalf("%s: %d values, want 2", r, len(vs))
		}
		if c, _ := jget(vs[0], "statusMessage", "message", "content"); c != "mine" {
			t.Errorf("own entry content = %v", c)
		}
		if _, ok := jget(vs[0], "statusMessage", "publishedDateTime"); !ok {
			t.Errorf("own entry: publishedDateTime missing")
		}
		if c, _ := jget(vs[1], "statusMessage", "message", "content"); c != "theirs" {
			t.Errorf("other entry content = %v", c)
		}
		if _, ok := jget(vs[1], "statusMessage", "publishedDateTime"); ok {
			t.Errorf("other user's entry: publishedDateTime present, want omitted (2.7)")
		}
		// Application readers see every field (2.7, strict).
		r = f.post(f.p("/communications/getPresencesByUserId"), "APPr", map[string]any{"ids": []string{f.U1, f.U2}})
		wantStatus(t, r, http.StatusOK)
		vs = values(t, r)
		if len(vs) != 2 {
			t.Fatalf("%s: %d values, want 2", r, len(vs))
		}
		for i, v := range vs {
			if _, ok := jget(v, "statusMessage", "publishedDateTime"); !ok {
				t.Errorf("APPr: value[%d] without publishedDateTime", i)
			}
		}
	})
}
