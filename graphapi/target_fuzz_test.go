package graphapi_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// FuzzRequestTarget sends arbitrary methods, paths and query strings (the
// route matcher, the aliases, $select and $filter parsing) with and without
// a body: every answer must be a success or a Graph error, never a 5xx or
// a panic.
func FuzzRequestTarget(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v1.0/users/" + userU1 + "/presence", "$select=availability,activity"},
		{"GET", "/beta/communications/presences/" + userU1, ""},
		{"GET", "/v1.0/communications/presences", "$filter=id in ('" + userU1 + "')"},
		{"GET", "/v1.0/communications/presences", "$filter=id eq '" + userU1 + "'&$select=id"},
		{"POST", "/v1.0/users/" + userU1 + "/presence/microsoft.graph.setPresence", ""},
		{"POST", "/v1.0/communications/getPresencesByUserId", ""},
		{"PATCH", "/v1.0/me/presence", ""},
		{"GET", "/V1.0/USERS/{" + strings.ToUpper(userU1) + "}/PRESENCE", "%24select=Availability"},
		{"GET", "/v1.0/users//presence", "$select="},
		{"DELETE", "/beta/communications/presences/x", "$filter=id in ("},
		{"GET", "/v2/x", "a=%zz"},
		{"PATCH", "/v1.0/communications/presences/stream", ""},
	} {
		f.Add(s[0], s[1], s[2], []byte(`{"ids":["`+userU1+`"]}`))
	}
	f.Fuzz(func(t *testing.T, method, path, rawQuery string, body []byte) {
		srv := newServer(t, appPrincipal()) // each input's own
		if method == "" || strings.ContainsAny(method, " \t\r\n") {
			method = http.MethodGet
		}
		req := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: "/" + strings.TrimPrefix(path, "/"), RawQuery: rawQuery},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Header:     http.Header{"Authorization": {"Bearer good"}, "Content-Type": {"application/json"}},
			Body:       http.NoBody,
			Host:       "presenced.test",
			RemoteAddr: "192.0.2.1:1234",
		}
		if len(body) > 0 {
			req.Body = httptestBody(body)
			req.ContentLength = int64(len(body))
		}
		req.RequestURI = req.URL.RequestURI()
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		checkResponse(t, rec)
		if rec.Code == http.StatusMethodNotAllowed {
			allow := strings.Split(rec.Header().Get("Allow"), ", ")
			if slices.Sort(allow); len(slices.Compact(slices.Clone(allow))) != len(allow) || allow[0] == "" {
				t.Fatalf("%s %s: Allow %q is empty or repeats a method", method, req.URL.Path, rec.Header().Get("Allow"))
			}
		}
	})
}

// httptestBody is a request body over b.
func httptestBody(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }
