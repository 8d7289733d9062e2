package graphapi_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/memstore"
)

// TestStreamFilterCountsDistinctIDs checks that the stream's $filter takes
// what GET /communications/presences takes: its cap of 650 counts distinct
// ids (1.3, 4.2 #10), so an id repeated past 650 values is one user, and
// 651 distinct ids are too many.
func TestStreamFilterCountsDistinctIDs(t *testing.T) {
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(memstore.New(), clock, nil)
	auth := twoUsers{"app": {Tenant: tenant, AppID: appA, Roles: []string{"Presence.Read.All"}}}
	srv, err := graphapi.NewServer(graphapi.Config{Service: svc, Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	// With the streams closed, a stream ends once it has sent the current
	// presences.
	srv.CloseStreams()
	stream := func(values []string) *httptest.ResponseRecorder {
		filter := "id in ('" + strings.Join(values, "','") + "')"
		req := httptest.NewRequest(http.MethodGet, "/v1.0/communications/presences/stream?$filter="+url.QueryEscape(filter), nil)
		req.Header.Set("Authorization", "Bearer app")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}

	repeated := make([]string, presence.MaxIDs+1)
	for i := range repeated {
		repeated[i] = userU1
		if i%2 == 1 {
			repeated[i] = strings.ToUpper(userU1)
		}
	}
	rec := stream(repeated)
	if rec.Code != http.StatusOK || strings.Count(rec.Body.String(), "event: presence") != 1 {
		t.Errorf("one id in %d values: %d %q, want 200 and one event", len(repeated), rec.Code, rec.Body)
	}

	distinct := make([]string, presence.MaxIDs+1)
	for i := range distinct {
		distinct[i] = presence.NewGUID()
	}
	if rec := stream(distinct); rec.Code != http.StatusBadRequest {
		t.Errorf("%d distinct ids: %d %q, want 400", len(distinct), rec.Code, rec.Body)
	}
}
