package graphapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/presenced/presenced/graphapi"
)

// In-process benchmarks of the Graph surface: routing, authentication (a
// trivial Authenticator), body decoding, the domain, the memory store and
// the JSON answer, without a network or a durable write.
//
//	go test -run '^$' -bench . -benchmem ./graphapi/

// benchUser returns the i-th user id of the benchmarks.
func benchUser(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }

// benchDo sends one request to srv and fails unless it answers 200.
func benchDo(b *testing.B, srv *graphapi.Server, method, path string, body []byte) *httptest.ResponseRecorder {
	var req *http.Request
	if body == nil {
		req = httptest.NewRequest(method, path, nil)
	} else {
		req = httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer good")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		b.Fatalf("%s %s: %d %s", method, path, rec.Code, rec.Body)
	}
	return rec
}

func setPresenceBody(b *testing.B) []byte {
	body, err := json.Marshal(map[string]string{"sessionId": appA, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1H"})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// benchServer returns a server whose first n users have a session.
func benchServer(b *testing.B, n int) *graphapi.Server {
	srv := newServer(b, appPrincipal())
	body := setPresenceBody(b)
	for i := range n {
		benchDo(b, srv, http.MethodPost, "/v1.0/users/"+benchUser(i)+"/presence/setPresence", body)
	}
	return srv
}

// BenchmarkGetPresence measures GET presence, whose cost beyond the HTTP
// server is mostly the JSON encoding of one presence.
func BenchmarkGetPresence(b *testing.B) {
	srv := benchServer(b, 1)
	path := "/v1.0/users/" + benchUser(0) + "/presence"
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = benchDo(b, srv, http.MethodGet, path, nil).Body.Len()
	}
	b.SetBytes(int64(n))
}

// BenchmarkSetPresence measures setPresence over 1,000 users: decoding,
// validation, Step and the memory store's update.
func BenchmarkSetPresence(b *testing.B) {
	const users = 1000
	srv := benchServer(b, users)
	body := setPresenceBody(b)
	paths := make([]string, users)
	for i := range paths {
		paths[i] = "/v1.0/users/" + benchUser(i) + "/presence/setPresence"
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		benchDo(b, srv, http.MethodPost, paths[i%users], body)
		i++
	}
}

// BenchmarkGetPresencesByUserID650 measures the largest bulk read: 650 ids
// decoded, read from the store in one batch, viewed and encoded.
func BenchmarkGetPresencesByUserID650(b *testing.B) {
	const ids = 650
	srv := benchServer(b, ids)
	list := make([]string, ids)
	for i := range list {
		list[i] = benchUser(i)
	}
	body, err := json.Marshal(map[string][]string{"ids": list})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		n = benchDo(b, srv, http.MethodPost, "/v1.0/communications/getPresencesByUserId", body).Body.Len()
	}
	b.SetBytes(int64(n))
}
