package graphapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/memstore"
	"github.com/presenced/presenced/notify"
)

// TestListSubscriptionsPaged checks the paging of GET /subscriptions (4.4):
// a user with Subscription.Read.All and more subscriptions than one page
// holds gets them all, each once, by following @odata.nextLink, with no
// nextLink on the last page; a malformed $skiptoken is 400.
func TestListSubscriptionsPaged(t *testing.T) {
	rx := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
	}))
	t.Cleanup(rx.Close)
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(memstore.New(), clock, nil)
	n, err := notify.New(notify.Config{Service: svc, Client: rx.Client(), Issuer: "https://presenced.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
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
	auth := twoUsers{"reader": {Tenant: tenant, User: userU1, AppID: appA, Delegated: true, Scopes: []string{"Subscription.Read.All"}}}
	srv, err := graphapi.NewServer(graphapi.Config{Service: svc, Subscriptions: n, Auth: auth})
	if err != nil {
		t.Fatal(err)
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
