package graphapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// TestBulkReadsShareNoMemory runs bulk reads of different id lists side by
// side, with duplicates and failing requests among them: bulk reads take
// their answer buffer and id set from a pool, and each answer must hold
// exactly its own ids, in order, however the pooled memory was used before
// (by a longer list, by a list that failed half way through).
func TestBulkReadsShareNoMemory(t *testing.T) {
	srv := newServer(t, appPrincipal())
	const users = 700
	ids := make([]string, users)
	body := setPresenceBodyT(t)
	for i := range ids {
		ids[i] = benchUser(i)
		req := httptest.NewRequest(http.MethodPost, "/v1.0/users/"+ids[i]+"/presence/setPresence", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer good")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("setPresence: %d %s", rec.Code, rec.Body)
		}
	}
	// list returns the request's ids, and the distinct ones expected back.
	list := func(worker, round int) (sent, want []string) {
		n := 1 + (worker*37+round*101)%650
		from := (worker*13 + round*7) % (users - n + 1)
		want = ids[from : from+n]
		sent = slices.Clone(want)
		if round%3 == 1 { // each id twice, the second time in capitals
			for _, id := range want {
				sent = append(sent, strings.ToUpper(id))
			}
			sent = sent[:min(len(sent), 650)]
		}
		return sent, want
	}
	get := func(sent []string, filter bool) *httptest.ResponseRecorder {
		var req *http.Request
		if filter {
			quoted := make([]string, len(sent))
			for i, id := range sent {
				quoted[i] = "'" + id + "'"
			}
			q := url.Values{"$filter": {"id in (" + strings.Join(quoted, ",") + ")"}}
			req = httptest.NewRequest(http.MethodGet, "/v1.0/communications/presences?"+q.Encode(), nil)
		} else {
			b, _ := json.Marshal(map[string][]string{"ids": sent})
			req = httptest.NewRequest(http.MethodPost, "/v1.0/communications/getPresencesByUserId", bytes.NewReader(b))
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Authorization", "Bearer good")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for worker := range 4 {
		wg.Go(func() {
			for round := range 40 {
				sent, want := list(worker, round)
				if round%5 == 2 { // fails at an invalid id half way through
					bad := slices.Clone(sent)
					bad[len(bad)/2] = "not-a-guid"
					if rec := get(bad, round%2 == 0); rec.Code != http.StatusBadRequest {
						errs <- fmt.Errorf("invalid id: %d %s", rec.Code, rec.Body)
						return
					}
				}
				rec := get(sent, round%2 == 0)
				if rec.Code != http.StatusOK {
					errs <- fmt.Errorf("bulk read of %d ids: %d %s", len(sent), rec.Code, rec.Body)
					return
				}
				var out struct {
					Value []struct {
						ID           string `json:"id"`
						Availability string `json:"availability"`
					} `json:"value"`
				}
				if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
					errs <- fmt.Errorf("bulk read of %d ids: %v: %.200s", len(sent), err, rec.Body)
					return
				}
				got := make([]string, len(out.Value))
				for i, v := range out.Value {
					got[i] = v.ID
					if v.Availability != "Busy" {
						errs <- fmt.Errorf("%s: availability %q, want Busy", v.ID, v.Availability)
						return
					}
				}
				if !slices.Equal(got, want) {
					errs <- fmt.Errorf("worker %d round %d: %d ids back, want %d (first %v, want %v)", worker, round, len(got), len(want), got[:min(3, len(got))], want[:min(3, len(want))])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func setPresenceBodyT(t *testing.T) []byte {
	t.Helper()
	body, err := json.Marshal(map[string]string{"sessionId": appA, "availability": "Busy", "activity": "InACall", "expirationDuration": "PT1H"})
	if err != nil {
		t.Fatal(err)
	}
	return body
}
