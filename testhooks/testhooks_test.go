package testhooks_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/memstore"
	"github.com/presenced/presenced/testclock"
	"github.com/presenced/presenced/testhooks"
)

const (
	tenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	user   = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
)

// noAuth refuses every token: the hooks take none.
type noAuth struct{}

func (noAuth) Verify(context.Context, string) (presence.Principal, error) {
	return presence.Principal{}, presence.Errorf(presence.CodeInvalidAuthenticationToken, "Access token validation failure.")
}

// newHooks returns the hooks over a fresh in-memory service, answering
// errors as the Graph surface does.
func newHooks(t testing.TB) (http.Handler, *testclock.Clock) {
	t.Helper()
	h, clock, _ := newHooksOn(t, memstore.New())
	return h, clock
}

// newHooksOn is newHooks over store, returning the service too.
func newHooksOn(t testing.TB, store presence.Store) (http.Handler, *testclock.Clock, *presence.Service) {
	t.Helper()
	clock := testclock.New(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(store, clock, nil)
	api, err := graphapi.NewServer(graphapi.Config{Service: svc, Auth: noAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	return testhooks.NewHandler(testhooks.Config{Service: svc, Clock: clock, SetRateLimit: func(int) {}, WriteError: api.WriteError}), clock, svc
}

// FuzzHooks sends sequences of arbitrary bodies to the hooks, each
// sequence to hooks of its own (a fresh service and clock, and an empty
// store): every answer
// must be a success or a Graph error (never a 5xx or a panic, and an
// answer at all), and the test clock never moves backwards. A sequence
// rather than one call, so that what one hook leaves (the clock far on, a
// session) meets the next; each input its own state, so that an input
// that fails fails alone too.
func FuzzHooks(f *testing.F) {
	hooks := []string{
		"POST /_test/clock/advance",
		"PUT /_test/limits",
		"PUT /_test/tenants/" + tenant + "/users/" + user + "/clientSessions/desktop-1",
		"DELETE /_test/tenants/" + tenant + "/users/" + user + "/clientSessions/desktop-1",
		"PUT /_test/tenants/" + tenant + "/users/" + user + "/outOfOffice",
		"PUT /_test/tenants/" + tenant + "/users/" + user + "/calendarBusy",
		"PUT /_test/tenants/" + tenant + "/users/" + user + "/presenceEnabled",
		"PUT /_test/tenants/not-a-guid/users/" + user + "/calendarBusy",
		"PUT /_test/clock",
		"POST /_test/reset",
		"GET /_test/tenants/" + tenant + "/state",
	}
	for i, body := range []string{`{"by":"PT5M"}`, `{"presencePer30s":5}`, `{"availability":"Busy","activity":"InACall","expirationDuration":"PT1H"}`,
		``, `{"isOutOfOffice":true,"message":"away"}`, `{"active":true}`, `{"enabled":false}`, `{"active":1}`,
		`{"by":"-PT5M"}`, `{"by":"P99999999D"}`, `{"availability":"Nope","activity":"x"}`, `[]`, `null`, `{"extra":1}`,
		`{"now":"2030-01-01T09:00:00Z"}`, `{"now":"2001-01-01T00:00:00Z"}`, `{"tenantId":"` + tenant + `"}`, `{}`, `{"tenantId":"x"}`} {
		f.Add(hookSteps(hookStep{uint8(i), body}))
	}
	// Far on, then a session due after the clock's now, then an advance:
	// past April 2262 the advance never answered.
	for _, far := range []string{"2199-12-31T22:00:00Z", "2299-12-31T22:00:00Z"} {
		f.Add(hookSteps(hookStep{8, `{"now":"` + far + `"}`}, hookStep{2, `{"availability":"Busy","activity":"InACall","expirationDuration":"PT1H"}`},
			hookStep{0, `{"by":"PT30M"}`}, hookStep{10, ``}, hookStep{0, `{"by":"PT1H"}`}))
	}
	// One store for every input, emptied before each (a store costs more
	// to make than a short sequence costs to run); a clock and a service
	// of their own.
	store := memstore.New()
	f.Fuzz(func(t *testing.T, steps []byte) {
		h, clock, svc := newHooksOn(t, store)
		if _, err := svc.Reset(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
		for n := 0; len(steps) >= 2 && n < maxHookSteps; n++ {
			which, size := steps[0], int(steps[1])
			steps = steps[2:]
			body := steps[:min(size, len(steps))]
			steps = steps[len(body):]
			method, path, _ := strings.Cut(hooks[int(which)%len(hooks)], " ")
			before := clock.Now()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			req := httptest.NewRequest(method, path, bytes.NewReader(body)).WithContext(ctx)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			cancel()
			if rec.Code >= 500 {
				t.Fatalf("step %d, %s %s %q: status %d: %s", n, method, path, body, rec.Code, rec.Body)
			}
			if rec.Code >= 400 {
				var env struct {
					Error struct {
						Code    string `json:"code"`
						Message string `json:"message"`
					} `json:"error"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || env.Error.Code == "" || env.Error.Message == "" {
					t.Fatalf("step %d, %s %s %q: %d without a Graph error: %s", n, method, path, body, rec.Code, rec.Body)
				}
			}
			if clock.Now().Before(before) {
				t.Fatalf("step %d: the clock went back from %v to %v", n, before, clock.Now())
			}
		}
	})
}

// maxHookSteps bounds the hooks one FuzzHooks input calls.
const maxHookSteps = 8

// hookStep is one call of a FuzzHooks input: the hook's index and a body.
type hookStep struct {
	which uint8
	body  string
}

// hookSteps encodes steps as a FuzzHooks input: for each, the hook's
// index, the body's length (a byte) and the body.
func hookSteps(steps ...hookStep) []byte {
	var b []byte
	for _, s := range steps {
		b = append(b, s.which, byte(len(s.body)))
		b = append(b, s.body...)
	}
	return b
}

// TestUnknownHookIs404 checks that a path under /_test/ with no hook is a
// Graph-shaped 404, as is a known path with the wrong method.
func TestUnknownHookIs404(t *testing.T) {
	h, _ := newHooks(t)
	for _, target := range []string{"GET /_test/nothing", "DELETE /_test/clock", "GET /_test/limits"} {
		method, path, _ := strings.Cut(target, " ")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"code":"`) {
			t.Errorf("%s: %d %s, want a Graph 404", target, rec.Code, rec.Body)
		}
	}
}

// TestHookErrorsCarryRequestIDs: a hook's error, like every error
// presenced sends, has a request-id and echoes the client-request-id (else
// repeats the request-id), in its headers and in its innerError.
func TestHookErrorsCarryRequestIDs(t *testing.T) {
	h, _ := newHooks(t)
	for _, sent := range []string{"", "hook-client-id"} {
		req := httptest.NewRequest(http.MethodGet, "/_test/nothing", nil)
		if sent != "" {
			req.Header.Set("client-request-id", sent)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var env struct {
			Error struct {
				InnerError struct {
					RequestID       string `json:"request-id"`
					ClientRequestID string `json:"client-request-id"`
				} `json:"innerError"`
			} `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
		}
		rid, crid := rec.Header().Get("request-id"), rec.Header().Get("client-request-id")
		want := sent
		if want == "" {
			want = rid
		}
		if len(rid) != 36 || crid != want || env.Error.InnerError.RequestID != rid || env.Error.InnerError.ClientRequestID != want {
			t.Errorf("client-request-id %q sent: headers %q, %q; innerError %+v", sent, rid, crid, env.Error.InnerError)
		}
	}
}

// TestEndClientSession: ending a simulated client session is 204, and 404
// when there is none (conformance, "Test hooks").
func TestEndClientSession(t *testing.T) {
	h, _ := newHooks(t)
	path := "/_test/tenants/" + tenant + "/users/" + user + "/clientSessions/desktop-1"
	for _, step := range []struct {
		method, body string
		want         int
	}{
		{http.MethodDelete, "", http.StatusNotFound},
		{http.MethodPut, `{"availability":"Busy","activity":"InAMeeting"}`, http.StatusNoContent},
		{http.MethodDelete, "", http.StatusNoContent},
		{http.MethodDelete, "", http.StatusNotFound},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(step.method, path, strings.NewReader(step.body)))
		if rec.Code != step.want {
			t.Fatalf("%s %s: %d %s, want %d", step.method, path, rec.Code, rec.Body, step.want)
		}
	}
}

// TestReset: POST /_test/reset forgets the subscriptions (first) and the
// users of one tenant, or of all with no body or {}, and nothing else.
func TestReset(t *testing.T) {
	clock := testclock.New(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(memstore.New(), clock, nil)
	api, err := graphapi.NewServer(graphapi.Config{Service: svc, Auth: noAuth{}})
	if err != nil {
		t.Fatal(err)
	}
	var resets []string
	h := testhooks.NewHandler(testhooks.Config{Service: svc, Clock: clock, SetRateLimit: func(int) {}, WriteError: api.WriteError,
		ResetSubscriptions: func(_ context.Context, tenant string) error {
			resets = append(resets, tenant)
			return nil
		}})
	const other = "0d7b4a5e-9f7e-4c44-9a57-1b2f3c4d5e6f"
	put := func(tid string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, "/_test/tenants/"+tid+"/users/"+user+"/calendarBusy", strings.NewReader(`{"active":true}`)))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("calendarBusy: %d %s", rec.Code, rec.Body)
		}
	}
	users := func(tid string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/_test/tenants/"+tid+"/state", nil))
		var doc struct {
			Users map[string]json.RawMessage `json:"users"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("state: %d %s", rec.Code, rec.Body)
		}
		return len(doc.Users)
	}
	reset := func(body string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/_test/reset", strings.NewReader(body)))
		if rec.Code != http.StatusNoContent {
			t.Fatalf("reset %q: %d %s", body, rec.Code, rec.Body)
		}
	}
	put(tenant)
	put(other)
	reset(`{"tenantId":"` + strings.ToUpper(tenant) + `"}`)
	if users(tenant) != 0 || users(other) != 1 {
		t.Errorf("after a reset of one tenant: %d and %d users, want 0 and 1", users(tenant), users(other))
	}
	put(tenant)
	reset("")
	if users(tenant) != 0 || users(other) != 0 {
		t.Errorf("after a reset of all: %d and %d users", users(tenant), users(other))
	}
	reset("{}")
	if strings.Join(resets, ",") != tenant+",," {
		t.Errorf("subscriptions reset for %q, want the tenant, then all twice", resets)
	}
}

// The clock cannot be moved where the state can no longer be written as
// JSON (past year 9999): the fuzz campaign advanced it a century at a time
// until GET .../state answered 500. Advances and sets beyond year 2199 are
// refused with a Graph error, and the state stays readable.
func TestClockStaysWritable(t *testing.T) {
	h, clock := newHooks(t)
	do := func(method, path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec
	}
	if rec := do("PUT", "/_test/tenants/"+tenant+"/users/"+user+"/clientSessions/desktop-1", `{"availability":"Busy","activity":"InACall"}`); rec.Code >= 300 {
		t.Fatalf("client session: %d %s", rec.Code, rec.Body)
	}
	refused := false
	for range 200 {
		rec := do("POST", "/_test/clock/advance", `{"by":"P36500D"}`)
		if rec.Code == http.StatusBadRequest {
			refused = true
			break
		}
		if rec.Code != http.StatusOK {
			t.Fatalf("advance: %d %s", rec.Code, rec.Body)
		}
	}
	if !refused || clock.Now().Year() >= 2200 {
		t.Fatalf("advancing a century at a time reached %v without a refusal", clock.Now())
	}
	if rec := do("PUT", "/_test/clock", `{"now":"9999-12-31T00:00:00Z"}`); rec.Code != http.StatusBadRequest {
		t.Errorf("set to year 9999: %d %s", rec.Code, rec.Body)
	}
	if rec := do("GET", "/_test/tenants/"+tenant+"/state", ""); rec.Code != http.StatusOK {
		t.Fatalf("state at %v: %d %s", clock.Now(), rec.Code, rec.Body)
	}
}

// TestClockNearItsLimitStillFires: a session that falls due near the end of
// the test clock's range expires when the clock passes its instant, and an
// advance answers. (With the clock past April 2262, every instant fell due
// at once in the scheduler's order, and an advance over a session not yet
// due never answered; the fuzz campaign's FuzzHooks found it as a hung
// worker.)
func TestClockNearItsLimitStillFires(t *testing.T) {
	h, clock := newHooks(t)
	do := func(method, path, body string) *httptest.ResponseRecorder {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)).WithContext(ctx))
		return rec
	}
	for _, far := range []string{"2200-01-01T00:00:00Z", "2300-01-01T00:00:00Z"} {
		if rec := do("PUT", "/_test/clock", `{"now":"`+far+`"}`); rec.Code != http.StatusBadRequest {
			t.Fatalf("set to %s: %d %s, want 400", far, rec.Code, rec.Body)
		}
	}
	if rec := do("PUT", "/_test/clock", `{"now":"2199-12-31T22:00:00Z"}`); rec.Code != http.StatusOK {
		t.Fatalf("set: %d %s", rec.Code, rec.Body)
	}
	if rec := do("PUT", "/_test/tenants/"+tenant+"/users/"+user+"/clientSessions/desktop-1", `{"availability":"Busy","activity":"InACall","expirationDuration":"PT1H"}`); rec.Code >= 300 {
		t.Fatalf("client session: %d %s", rec.Code, rec.Body)
	}
	availability := func() string {
		rec := do("GET", "/_test/tenants/"+tenant+"/state", "")
		var st struct {
			Users map[string]struct{ Availability string } `json:"users"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
			t.Fatalf("state: %d %s", rec.Code, rec.Body)
		}
		return st.Users[user].Availability
	}
	for _, step := range []struct{ by, want string }{{"PT30M", "Busy"}, {"PT1H", "Offline"}} {
		if rec := do("POST", "/_test/clock/advance", `{"by":"`+step.by+`"}`); rec.Code != http.StatusOK {
			t.Fatalf("advance %s at %v: %d %s", step.by, clock.Now(), rec.Code, rec.Body)
		}
		if got := availability(); got != step.want {
			t.Fatalf("after %s, at %v: %s, want %s", step.by, clock.Now(), got, step.want)
		}
	}
}
