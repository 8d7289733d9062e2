package console

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

const (
	devTenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	devApp    = "22553876-f5ab-4529-bffb-cfe50aa89f87"
)

func TestParseListQuery(t *testing.T) {
	for _, c := range []struct {
		query string
		want  listQuery
		bad   bool
	}{
		{"", listQuery{top: defaultTop}, false},
		{"search=0A1B&$top=3", listQuery{search: "0a1b", top: 3}, false},
		{"$top=500", listQuery{top: 500}, false},
		{"$skiptoken=0A1B2C3D-0000-4000-8000-00000000A11C", listQuery{top: defaultTop, after: "0a1b2c3d-0000-4000-8000-00000000a11c"}, false},
		{"tenant=x", listQuery{top: defaultTop}, false}, // the operator's, read elsewhere
		{"$top=0", listQuery{}, true},
		{"$top=501", listQuery{}, true},
		{"$top=-1", listQuery{}, true},
		{"$top=1e3", listQuery{}, true},
		{"$skiptoken=abc", listQuery{}, true},
		{"search=xyz", listQuery{}, true},
		{"search=" + strings.Repeat("a", 37), listQuery{}, true},
		{"$filter=id", listQuery{}, true},
	} {
		q, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		got, err := parseListQuery(q)
		if c.bad {
			var pe *presence.Error
			if !errors.As(err, &pe) || pe.Code != presence.CodeBadRequest {
				t.Errorf("%q: err %v, want a BadRequest", c.query, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v, %v; want %+v", c.query, got, err, c.want)
		}
	}
}

func TestParseDevTokenBody(t *testing.T) {
	user := "0A1B2C3D-0000-4000-8000-00000000A11C"
	for _, c := range []struct {
		body string
		want DevTokenRequest
		bad  bool
	}{
		{"", DevTokenRequest{Tenant: devTenant, AppID: devApp, Roles: []string{"Presence.ReadWrite.All"}, TTL: time.Hour}, false},
		{`{}`, DevTokenRequest{Tenant: devTenant, AppID: devApp, Roles: []string{"Presence.ReadWrite.All"}, TTL: time.Hour}, false},
		{`{"user":"` + user + `","scopes":"Presence.Read, Presence.ReadWrite","ttl":"30m"}`,
			DevTokenRequest{Tenant: devTenant, AppID: devApp, User: strings.ToLower(user), Scopes: []string{"Presence.Read", "Presence.ReadWrite"}, TTL: 30 * time.Minute}, false},
		{`{"user":" ","roles":"Presence.Read.All"}`, DevTokenRequest{Tenant: devTenant, AppID: devApp, Roles: []string{"Presence.Read.All"}, TTL: time.Hour}, false},
		{`{"user":"` + user + `"}`, DevTokenRequest{Tenant: devTenant, AppID: devApp, User: strings.ToLower(user), Scopes: []string{"Presence.Read.All", "Presence.ReadWrite"}, TTL: time.Hour}, false},
		{`{"tenant":"nope"}`, DevTokenRequest{}, true},
		{`{"app":"1"}`, DevTokenRequest{}, true},
		{`{"ttl":"25h"}`, DevTokenRequest{}, true},
		{`{"ttl":"-1h"}`, DevTokenRequest{}, true},
		{`{"ttl":"P1D"}`, DevTokenRequest{}, true},
		{`{"other":1}`, DevTokenRequest{}, true},
		{`[]`, DevTokenRequest{}, true},
	} {
		got, err := parseDevTokenBody([]byte(c.body), devTenant, devApp)
		if c.bad {
			if err == nil {
				t.Errorf("%s: %+v, want an error", c.body, got)
			}
			continue
		}
		if err != nil || got.Tenant != c.want.Tenant || got.AppID != c.want.AppID || got.User != c.want.User || got.TTL != c.want.TTL ||
			strings.Join(got.Scopes, " ") != strings.Join(c.want.Scopes, " ") || strings.Join(got.Roles, " ") != strings.Join(c.want.Roles, " ") {
			t.Errorf("%s: %+v, %v; want %+v", c.body, got, err, c.want)
		}
	}
}

// FuzzParseListQuery: any query either parses into a page size in range
// and a canonical skip token, or is refused with a BadRequest.
func FuzzParseListQuery(f *testing.F) {
	for _, s := range []string{"", "search=ab&$top=3", "$skiptoken=0a1b2c3d-0000-4000-8000-00000000a11c", "$top=0", "%zz", "search=%00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseListQuery(q)
		if err != nil {
			var pe *presence.Error
			if !errors.As(err, &pe) || pe.Code != presence.CodeBadRequest {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		if lq.top < 1 || lq.top > maxTop || len(lq.search) > maxSearch {
			t.Fatalf("%q: %+v", raw, lq)
		}
		if lq.after != "" {
			if id, ok := presence.CanonicalGUID(lq.after); !ok || id != lq.after {
				t.Fatalf("%q: skip token %q not canonical", raw, lq.after)
			}
		}
	})
}

// FuzzParseDevTokenBody: any body either gives a request with canonical
// ids, a positive lifetime of at most a day, and scopes exactly when there
// is a user; or is refused with a BadRequest.
func FuzzParseDevTokenBody(f *testing.F) {
	for _, s := range []string{"", "{}", `{"user":"0a1b2c3d-0000-4000-8000-00000000a11c","ttl":"2h"}`, `{"tenant":1}`, `{"ttl":"0s"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		req, err := parseDevTokenBody(raw, devTenant, devApp)
		if err != nil {
			var pe *presence.Error
			if !errors.As(err, &pe) || pe.Code != presence.CodeBadRequest {
				t.Fatalf("%q: %v", raw, err)
			}
			return
		}
		for _, id := range []string{req.Tenant, req.AppID} {
			if c, ok := presence.CanonicalGUID(id); !ok || c != id {
				t.Fatalf("%q: id %q", raw, id)
			}
		}
		if req.TTL <= 0 || req.TTL > maxDevTokenTTL || (req.User != "") != (req.Scopes != nil) || (req.User == "") != (req.Roles != nil) {
			t.Fatalf("%q: %+v", raw, req)
		}
	})
}
