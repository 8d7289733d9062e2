package graphapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// TestListSubscriptionsPaged checks the paging of GET /subscriptions (4.4):
// a user with Subscription.Read.All and more subscriptions than one page
// holds gets them all, each once, by following @odata.nextLink, with no
// nextLink on the last page; a malformed $skiptoken is 400.
func TestListSubscriptionsPaged(t *testing.T) {
	auth := twoUsers{"reader": {Tenant: tenant, User: userU1, AppID: appA, Delegated: true, Scopes: []string{"Subscription.Read.All"}}}
	h := newNotifying(t, auth)
	rx, clock, n, srv := h.rx, h.clock, h.n, h.srv
	// One subscription per application, all for the same user: one page
	// and one more.
	const count = 101
	str := func(s string) *string { return &s }
	want := map[string]bool{}
	for range count {
		p := presence.Principal{Tenant: tenant, User: userU1, AppID: presence.NewGUID(), Delegated: true, Scopes: []string{"Presence.Read.All"}}
		sub, err := n.Create(context.Background(), p, presence.SubscriptionRequest{
			ChangeType: str("updated"), NotificationURL: str(rx.URL + "/hook"), Resource: str("communications/presences/" + userU1),
			ExpirationDateTime: str(clock.Now().Add(50 * time.Minute).Format(time.RFC3339)), ClientState: str("secret"),
		})
		if err != nil {
			t.Fatal(err)
		}
		want[sub.ID] = true
	}
	get := func(target string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		req.Header.Set("Authorization", "Bearer reader")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}

	var got []string
	var pages []int
	for target := "/v1.0/subscriptions"; target != ""; {
		rec := get(target)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", target, rec.Code, rec.Body)
		}
		var page struct {
			NextLink string           `json:"@odata.nextLink"`
			Value    []map[string]any `json:"value"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &page); err != nil {
			t.Fatal(err)
		}
		pages = append(pages, len(page.Value))
		for _, s := range page.Value {
			if cs, ok := s["clientState"]; ok && cs != nil {
				t.Errorf("the list shows clientState %v", cs)
			}
			got = append(got, s["id"].(string))
		}
		target = ""
		if page.NextLink != "" {
			u, err := url.Parse(page.NextLink)
			if err != nil || len(pages) > count {
				t.Fatalf("nextLink %q after %d pages: %v", page.NextLink, len(pages), err)
			}
			target = u.RequestURI()
		}
	}
	if !slices.Equal(pages, []int{100, 1}) {
		t.Errorf("pages of %v subscriptions, want [100 1]", pages)
	}
	slices.Sort(got)
	listed := len(got)
	if got = slices.Compact(got); listed != count || len(got) != count {
		t.Errorf("%d subscriptions listed, %d distinct, want %d", listed, len(got), count)
	}
	for _, id := range got {
		if !want[id] {
			t.Errorf("listed %s, which was not created", id)
		}
	}

	for _, bad := range []string{"x", "-1"} {
		if rec := get("/v1.0/subscriptions?$skiptoken=" + bad); rec.Code != http.StatusBadRequest {
			t.Errorf("$skiptoken=%s: %d %s, want 400", bad, rec.Code, rec.Body)
		}
	}
}
