package graphapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/memstore"
)

const (
	tenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	appA   = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	userU1 = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
)

// fixedAuth accepts one token value as one principal. The real verifier has
// its own tests; these in-process tests exercise everything behind it.
type fixedAuth struct{ p presence.Principal }

func (a fixedAuth) Verify(_ context.Context, raw string) (presence.Principal, error) {
	if raw != "good" {
		return presence.Principal{}, presence.Errorf(presence.CodeInvalidAuthenticationToken, "Access token validation failure.")
	}
	return a.p, nil
}

func newServer(t testing.TB, p presence.Principal) *graphapi.Server {
	t.Helper()
	svc := presence.NewService(memstore.New(), presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)), nil)
	s, err := graphapi.NewServer(graphapi.Config{Service: svc, Auth: fixedAuth{p}, MaxBodyBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func appPrincipal() presence.Principal {
	return presence.Principal{Tenant: tenant, AppID: appA, Roles: []string{"Presence.ReadWrite.All"}}
}

var graphDate = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$`)

// checkResponse fails on a 5xx and on an error that is not Graph's envelope.
func checkResponse(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if rec.Code < 400 {
		return
	}
	var env struct {
		Error struct {
			Code       *string `json:"code"`
			Message    *string `json:"message"`
			InnerError struct {
				Date      string `json:"date"`
				RequestID string `json:"request-id"`
			} `json:"innerError"`
		} `json:"error"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Error.Code == nil || env.Error.Message == nil {
		t.Fatalf("status %d without a Graph error: %s", rec.Code, rec.Body)
	}
	if !graphDate.MatchString(env.Error.InnerError.Date) || env.Error.InnerError.RequestID != rec.Header().Get("request-id") {
		t.Fatalf("bad innerError: %s", rec.Body)
	}
}

// FuzzActionBodies sends arbitrary bodies to every presence action, each to
// a new server: each must answer 200 or a Graph error, never a 5xx or a
// panic.
func FuzzActionBodies(f *testing.F) {
	seeds := []string{
		`{"sessionId":"` + appA + `","availability":"Available","activity":"Available","expirationDuration":"PT1H"}`,
		`{"sessionId":"` + appA + `","availability":"Busy","activity":"Busy"}`,
		`{"availability":"DoNotDisturb","activity":"DoNotDisturb","expirationDuration":"P1D"}`,
		`{"statusMessage":{"message":{"content":"hi","contentType":"text"},"expiryDateTime":{"dateTime":"2026-01-12T10:00:00","timeZone":"Pacific Standard Time"}}}`,
		`{"ids":["` + userU1 + `"]}`, `{}`, `[]`, `null`, `{"x":1}`, `{"sessionId":5}`, `{"expirationDuration":"-PT5M"}`,
		`{"statusMessage":{"message":null}}`, `{"statusMessage":{"@odata.type":"#microsoft.graph.presenceStatusMessage","message":{"content":"a"}}}`,
	}
	actions := []string{"setPresence", "clearPresence", "setUserPreferredPresence", "clearUserPreferredPresence", "setStatusMessage"}
	for _, s := range seeds {
		for i := range actions {
			f.Add(uint8(i), []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		// A server of its own for each input, so that a failure
		// reproduces from its input alone.
		srv := newServer(t, appPrincipal())
		path := "/v1.0/users/" + userU1 + "/presence/" + actions[int(which)%len(actions)]
		if which >= 128 {
			path = "/v1.0/communications/getPresencesByUserId"
		}
		req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer good")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		checkResponse(t, rec)
	})
}

// FuzzBatch sends arbitrary $batch bodies.
func FuzzBatch(f *testing.F) {
	for _, s := range []string{
		`{"requests":[{"id":"1","method":"POST","url":"/users/` + userU1 + `/presence/setPresence","headers":{"Content-Type":"application/json"},"body":{"sessionId":"` + appA + `","availability":"Busy","activity":"InACall"}},{"id":"2","dependsOn":["1"],"method":"GET","url":"/users/` + userU1 + `/presence"}]}`,
		`{"requests":[{"id":"1","method":"GET","url":"users/` + userU1 + `/presence"}]}`,
		`{"requests":[{"id":"1","dependsOn":["2"],"method":"GET","url":"/me/presence"},{"id":"2","dependsOn":["1"],"method":"GET","url":"/me/presence"}]}`,
		`{"requests":[{"id":"1","method":"POST","url":"/$batch","headers":{"content-type":"application/json"},"body":{}}]}`,
		`{"requests":[]}`, `{}`, `{"requests":[{"id":"1","method":"GET","url":"http://evil/x"}]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		srv := newServer(t, appPrincipal()) // each input's own
		req := httptest.NewRequest(http.MethodPost, "/v1.0/$batch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer good")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		checkResponse(t, rec)
		if rec.Code != http.StatusOK {
			return
		}
		var out struct {
			Responses []struct {
				ID     string          `json:"id"`
				Status int             `json:"status"`
				Body   json.RawMessage `json:"body"`
			} `json:"responses"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Responses) == 0 {
			t.Fatalf("batch 200 without responses: %s", rec.Body)
		}
		for _, r := range out.Responses {
			if r.Status >= 500 {
				t.Fatalf("inner %s answered %d: %s", r.ID, r.Status, r.Body)
			}
		}
	})
}
