package console

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"pgregory.net/rapid"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
)

// tokens is an Authenticator whose tokens are the principals' names.
type tokens map[string]presence.Principal

func (a tokens) Verify(_ context.Context, raw string) (presence.Principal, error) {
	p, ok := a[raw]
	if !ok {
		return presence.Principal{}, presence.Errorf(presence.CodeInvalidAuthenticationToken, "unknown token")
	}
	return p, nil
}

const otherTenant = "5e1f0a2b-1111-4111-8111-0000000000b2"

type fixture struct {
	svc *presence.Service
	mux *http.ServeMux
}

// newFixture serves a console over a memory store, with the tokens
// "reader" (devTenant, Presence.Read.All), "other" (otherTenant, the same)
// and "weak" (delegated Presence.Read).
func newFixture(reg prometheus.Gatherer) *fixture {
	store := memstore.New()
	svc := presence.NewService(store, presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)), nil)
	mux := http.NewServeMux()
	New(Config{
		Service: svc, Store: store, Gatherer: reg, StoreKind: "memory",
		Auth: tokens{
			"reader": {Tenant: devTenant, AppID: devApp, Roles: []string{presence.ScopePresenceReadAll}},
			"other":  {Tenant: otherTenant, AppID: devApp, Roles: []string{presence.ScopePresenceReadAll}},
			"weak":   {Tenant: devTenant, AppID: devApp, User: devApp, Delegated: true, Scopes: []string{presence.ScopePresenceRead}},
		},
		WriteError: func(w http.ResponseWriter, _ *http.Request, err error) {
			status := http.StatusInternalServerError
			var pe *presence.Error
			if errors.As(err, &pe) {
				status = map[presence.Code]int{presence.CodeBadRequest: 400, presence.CodeForbidden: 403,
					presence.CodeNotFound: 404, presence.CodeInvalidAuthenticationToken: 401}[pe.Code]
			}
			http.Error(w, err.Error(), status)
		},
	}).Register(mux)
	return &fixture{svc: svc, mux: mux}
}

func (f *fixture) get(path, token string) (int, map[string]any) {
	req := httptest.NewRequest("GET", path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	var body map[string]any
	_ = json.Unmarshal(rec.Body.Bytes(), &body)
	return rec.Code, body
}

func (f *fixture) set(t interface{ Fatal(...any) }, tenant, user string) {
	d := time.Hour
	if _, err := f.svc.Do(context.Background(), presence.Key{Tenant: tenant, User: user},
		&presence.SetPresence{CallerApp: devApp, SessionID: devApp, Availability: "Available", Activity: "Available", Expiration: &d}); err != nil {
		t.Fatal(err)
	}
}

// TestListUsersPages: paging through the list with any page size and any
// search gives exactly the tenant's matching users, in order, each once.
func TestListUsersPages(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		f := newFixture(nil)
		hex := rapid.SampledFrom([]string{"0", "1", "a", "f"})
		id := rapid.Custom(func(t *rapid.T) string {
			return hex.Draw(t, "h1") + hex.Draw(t, "h2") + "000000-0000-4000-8000-000000000000"[:32] + hex.Draw(t, "h3") + hex.Draw(t, "h4")
		})
		var mine []string
		for _, u := range rapid.SliceOfNDistinct(id, 0, 30, rapid.ID).Draw(t, "mine") {
			f.set(t, devTenant, u)
			mine = append(mine, u)
		}
		for _, u := range rapid.SliceOfN(id, 0, 10).Draw(t, "theirs") {
			f.set(t, otherTenant, u)
		}
		search := rapid.SampledFrom([]string{"", "0", "a", "f0", "1a"}).Draw(t, "search")
		top := rapid.IntRange(1, 7).Draw(t, "top")
		want := slices.DeleteFunc(slices.Clone(mine), func(u string) bool { return !strings.HasPrefix(u, search) })
		slices.Sort(want)

		var got []string
		path := "/presenced/users?search=" + search + "&$top=" + string(rune('0'+top))
		for path != "" {
			code, body := f.get(path, "reader")
			if code != 200 {
				t.Fatalf("%s: %d %v", path, code, body)
			}
			if n := int(body["@odata.count"].(float64)); n != len(want) {
				t.Fatalf("%s: count %d, want %d", path, n, len(want))
			}
			page := body["value"].([]any)
			if len(page) > top {
				t.Fatalf("%s: %d users in a page of %d", path, len(page), top)
			}
			for _, u := range page {
				got = append(got, u.(map[string]any)["id"].(string))
			}
			path, _ = body["@odata.nextLink"].(string)
			if path != "" && len(page) != top {
				t.Fatalf("a short page with a next link")
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paged %v, want %v", got, want)
		}
	})
}

func TestReadEndpointsAuthorization(t *testing.T) {
	f := newFixture(prometheus.NewRegistry())
	u := "0a1b2c3d-0000-4000-8000-00000000a11c"
	f.set(t, devTenant, u)
	for _, path := range []string{"/presenced/users", "/presenced/users/" + u, "/presenced/health", "/presenced/whoami", "/presenced/subscriptions"} {
		if code, _ := f.get(path, ""); code != 401 {
			t.Errorf("%s without a token: %d", path, code)
		}
		if code, _ := f.get(path, "nope"); code != 401 {
			t.Errorf("%s with an unknown token: %d", path, code)
		}
	}
	for _, path := range []string{"/presenced/users", "/presenced/users/" + u, "/presenced/health", "/presenced/events"} {
		if code, _ := f.get(path, "weak"); code != 403 {
			t.Errorf("%s with Presence.Read: %d", path, code)
		}
	}
	if code, body := f.get("/presenced/users/"+u, "reader"); code != 200 || body["availability"] != "Available" {
		t.Errorf("the user: %d %v", code, body)
	}
	if code, _ := f.get("/presenced/users/"+u, "other"); code != 404 {
		t.Errorf("the user through another tenant: %d", code)
	}
	if code, body := f.get("/presenced/health", "reader"); code != 200 || body["storeKind"] != "memory" {
		t.Errorf("health: %d %v", code, body)
	}
	// No subscriptions service: an empty list.
	if code, body := f.get("/presenced/subscriptions", "reader"); code != 200 || len(body["value"].([]any)) != 0 {
		t.Errorf("subscriptions: %d %v", code, body)
	}
}

// TestUserWorkLocation: a user's record carries the work location when it
// is not unspecified, as Graph's userWorkLocation (placeId null when none).
func TestUserWorkLocation(t *testing.T) {
	f := newFixture(nil)
	const user = "0a1b2c3d-0000-4000-8000-00000000a11c"
	f.set(t, devTenant, user)
	_, body := f.get("/presenced/users/"+user, "reader")
	if wl, ok := body["workLocation"]; !ok || wl != nil {
		t.Fatalf("without a location: workLocation %v (present %v), want null", wl, ok)
	}
	for _, c := range []struct {
		cmd  *presence.SetLocation
		want map[string]any
	}{
		{&presence.SetLocation{Type: "remote", HasType: true}, map[string]any{"workLocationType": "remote", "source": "automatic", "placeId": nil}},
		{&presence.SetLocation{Type: "office", HasType: true, PlaceID: "Building 4"}, map[string]any{"workLocationType": "office", "source": "manual", "placeId": "Building 4"}},
	} {
		c.cmd.Automatic = c.want["source"] == "automatic"
		if _, err := f.svc.Do(context.Background(), presence.Key{Tenant: devTenant, User: user}, c.cmd); err != nil {
			t.Fatal(err)
		}
		_, body = f.get("/presenced/users/"+user, "reader")
		got, _ := json.Marshal(body["workLocation"])
		want, _ := json.Marshal(c.want)
		if string(got) != string(want) {
			t.Errorf("workLocation %s, want %s", got, want)
		}
	}
}
