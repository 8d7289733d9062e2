package e2e

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"testing"
)

const msgMethod = "Specified HTTP method is not allowed for the request target."

// C12 #122 and 1.11: methods the presence entity does not take are 405 in
// the Graph envelope.
func TestC12_122_MethodNotAllowed(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"PATCH", f.p("/users/%s/presence", f.U1), map[string]any{"availability": "Busy"}}, // #122
			{"DELETE", f.p("/users/%s/presence", f.U1), nil},
			{"PUT", f.p("/users/%s/presence", f.U1), map[string]any{"availability": "Busy"}},
			{"PATCH", f.p("/communications/presences/%s", f.U1), map[string]any{"availability": "Busy"}},
			{"DELETE", f.p("/communications/presences/%s", f.U1), nil},
			{"PATCH", f.p("/me/presence"), map[string]any{"availability": "Busy"}},
			{"POST", f.p("/communications/presences"), map[string]any{"id": f.U1}},
			{"GET", f.p("/users/%s/presence/setPresence", f.U1), nil},
			{"GET", f.p("/communications/getPresencesByUserId"), nil},
		} {
			t.Run(c.method+" "+c.path, func(t *testing.T) {
				f := f.in(t)
				r := srv.do(t, c.method, c.path, f.tok("APPrw"), c.body)
				wantError(t, r, http.StatusMethodNotAllowed, "BadRequest", msgMethod)
			})
		}
		f.wantPresence(f.U1, "Offline", "Offline")
	})
}

// Unknown paths are 404 in the Graph envelope.
func TestUnknownPaths(t *testing.T) {
	f := newFixture(t)
	tok := f.tok("APPrw")
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1.0/nothing"},
		{"GET", "/beta/users/" + f.U1 + "/presence/nothing"},
		{"POST", "/v1.0/users/" + f.U1 + "/presence/setPresenceNow"},
		{"POST", "/v1.0/users/" + f.U1 + "/presence/microsoft.graph.nothing"},
		{"GET", "/v2.0/users/" + f.U1 + "/presence"},
		{"GET", "/users/" + f.U1 + "/presence"},
		{"GET", "/"},
		{"GET", "/v1.0/communications/presences/" + f.U1 + "/extra/segments"},
	} {
		r := srv.do(t, c.method, c.path, tok, nil, withHeader("client-request-id", "unknown-path-"+c.method))
		wantError(t, r, http.StatusNotFound, "", "")
	}
}

func gz(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// DESIGN "What real Graph clients need": bodies with Content-Encoding: gzip
// are decoded.
func TestGzipRequestBodies(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		wantEmptyOK(t, f.post(f.p("/users/%s/presence/setPresence", f.U1), "APPrw", setBody(f.A, "Busy", "InACall", "PT1H"), gzipped()))
		f.wantPresence(f.U1, "Busy", "InACall")
		r := f.post(f.p("/communications/getPresencesByUserId"), "APPr", map[string]any{"ids": []string{f.U1}}, gzipped())
		wantStatus(t, r, 200)
		if v, _ := r.get("value", 0, "activity"); v != "InACall" {
			t.Errorf("gzip getPresencesByUserId: activity = %v", v)
		}
		// Errors in a gzipped body are reported like plain ones.
		r = f.post(f.p("/users/%s/presence/setPresence", f.U1), "APPrw", setBody(f.A, "Busy", "Busy", "PT1H"), gzipped())
		wantError(t, r, 400, "InvalidArgument", "")
		// A body that says gzip but is not.
		r = f.post(f.p("/users/%s/presence/setPresence", f.U1), "APPrw", []byte(`{"sessionId":"x"}`), withHeader("Content-Encoding", "gzip"))
		wantError(t, r, 400, "BadRequest", "")
	})
}

// Oversized bodies are 413, whether sent so or after decompression.
func TestOversizedBody(t *testing.T) {
	f := newFixture(t)
	path := f.p("/communications/getPresencesByUserId")
	// 1 MiB of ids plus a little: well past any sensible limit for 650 ids
	// (which take about 26 KB), yet small enough to sit in socket buffers.
	big := `{"ids":["` + f.U1 + `"],"pad":"` + strings.Repeat("x", 1<<20+32<<10) + `"}`
	r := f.post(path, "D1ra", big, withHeader("client-request-id", "too-large"))
	wantError(t, r, http.StatusRequestEntityTooLarge, "", "")

	bomb := gz(t, []byte(`{"ids":["`+f.U1+`"],"pad":"`+strings.Repeat("x", 8<<20)+`"}`))
	r = f.post(path, "D1ra", bomb, withHeader("Content-Encoding", "gzip"))
	wantError(t, r, http.StatusRequestEntityTooLarge, "", "")

	// The server still serves afterwards.
	wantStatus(t, f.post(path, "D1ra", map[string]any{"ids": []string{f.U1}}), 200)
}

// 1.0 "Bodies": the exact errors of unreadable bodies, on every action.
func TestBodyRulesOnEveryAction(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		op   string
		body map[string]any
	}{
		{"setPresence", setBody(f.A, "Available", "Available", "PT1H")},
		{"clearPresence", map[string]any{"sessionId": f.A}},
		{"setUserPreferredPresence", map[string]any{"availability": "Away", "activity": "Away"}},
		{"setStatusMessage", statusText("x", nil)},
	} {
		t.Run(c.op, func(t *testing.T) {
			f := f.in(t)
			path := f.p("/users/%s/presence/%s", f.U1, c.op)
			wantError(t, f.post(path, "APPrw", c.body, noContentType()), 400, "BadRequest", msgBadPayload)
			wantError(t, f.post(path, "APPrw", c.body, contentType("application/x-www-form-urlencoded")), 400, "BadRequest", msgBadPayload)
			wantError(t, f.post(path, "APPrw", `{"not json`), 400, "BadRequest", msgBadPayload)
			unknown := map[string]any{"bogus": 1}
			for k, v := range c.body {
				unknown[k] = v
			}
			wantError(t, f.post(path, "APPrw", unknown), 400, "BadRequest",
				"The parameter 'bogus' in the request payload is not a valid parameter for the operation '"+c.op+"'.")
		})
	}
}

// C12 #116: the envelope helper checks every error of the suite; this test
// gathers one error of each status presenced sends, so a broken envelope for
// any of them is reported in one place.
func TestC12_116_ErrorEnvelopeOfEveryStatus(t *testing.T) {
	f := newFixture(t)
	const crid = "c12-116-client-request-id"
	for _, c := range []struct {
		name   string
		method string
		path   string
		tok    string
		body   any
		status int
	}{
		{"400", "POST", f.p("/users/%s/presence/setPresence", f.U1), "APPrw", setBody(f.A, "Busy", "Busy", ""), 400},
		{"401", "GET", f.p("/me/presence"), "", nil, 401},
		{"403", "GET", f.p("/users/%s/presence", f.U2), "D1r", nil, 403},
		{"404", "POST", f.p("/users/%s/presence/clearPresence", f.U1), "APPrw", map[string]any{"sessionId": f.A}, 404},
		{"405", "PATCH", f.p("/users/%s/presence", f.U1), "APPrw", map[string]any{}, 405},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := f.in(t)
			r := srv.do(t, c.method, c.path, f.tokOrEmpty(c.tok), c.body, withHeader("client-request-id", crid))
			wantStatus(t, r, c.status)
			if got := r.str("error", "innerError", "client-request-id"); got != crid {
				t.Errorf("innerError.client-request-id = %q, want %q", got, crid)
			}
		})
	}
}
