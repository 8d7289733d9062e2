package e2e

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
)

// limitFor sets the presence budget for the rest of the test and restores
// the server's default afterwards. The limit is global to the server, which
// is why no test of this suite runs in parallel.
func limitFor(t *testing.T, n int) {
	t.Helper()
	setLimit(t, n)
	t.Cleanup(func() {
		setLimit(t, defaultRateLimit)
		// Let every window of the test drain, whoever filled it.
		advance(t, "PT30S")
	})
}

// want429 checks a throttled answer (C12 #117, 5.2, 5.4) and returns its
// Retry-After.
func want429(t *testing.T, r *resp) int {
	t.Helper()
	wantError(t, r, http.StatusTooManyRequests, "TooManyRequests", "Please retry again later.")
	if got := r.str("error", "innerError", "message"); got != "Please retry after" {
		t.Errorf("innerError.message = %q, want \"Please retry after\" (5.2)", got)
	}
	if got := r.str("error", "innerError", "code"); got != "429" {
		t.Errorf("innerError.code = %q, want \"429\"", got)
	}
	if got := r.str("error", "innerError", "status"); got != "429" {
		t.Errorf("innerError.status = %q, want \"429\"", got)
	}
	return assertRetryAfter(t, r.Header.Get("Retry-After"), r.String())
}

// C12 #117: 5 per 30 s; the 6th is 429 until the window moves on.
func TestC12_117_Throttling(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		limitFor(t, 5)
		path := f.p("/users/%s/presence", f.U1)
		for i := 1; i <= 5; i++ {
			wantStatus(t, f.get(path, "APPr"), 200)
		}
		// All five were made at the same service instant: the oldest leaves
		// the window in 30 s (5.4).
		if ra := want429(t, f.get(path, "APPr")); ra != 30 {
			t.Errorf("Retry-After = %d, want 30", ra)
		}
		// Every presence operation of the app draws from the same bucket.
		want429(t, f.set(f.U1, "Busy", "InACall", "PT1H", "APPrw"))
		want429(t, f.post(f.p("/communications/getPresencesByUserId"), "APPr", map[string]any{"ids": []string{f.U1}}))
		// Another app of the tenant, and the same app in another tenant, have
		// budgets of their own.
		wantStatus(t, f.get(path, "APPBr"), 200)
		// Delegated tokens of app A share app A's budget in the tenant.
		want429(t, f.get(path, "D1ra"))
		g := f.inTenant(newGUID())
		wantStatus(t, g.get(path, "APPr"), 200)

		// Retry-After counts down with the service clock: the oldest request
		// leaves the window 30 s after it was made.
		advance(t, "PT10S")
		if ra := want429(t, f.get(path, "APPr")); ra != 20 {
			t.Errorf("10 s into the window: Retry-After = %d, want 20", ra)
		}
		advance(t, "PT20S")
		wantStatus(t, f.get(path, "APPr"), 200)
	})
}

// Decision 8: the default budget is 1500 requests per 30 s per (app,
// tenant). It runs on a server of its own started without --rate-limit:
// on the main server the budget may have been set through /_test/limits,
// which would hide a wrong default. --test-hooks keeps its clock still, so
// the window cannot move on while the requests are made.
func TestThrottlingDefault1500(t *testing.T) {
	s := startTestServer(t, hookedArgs(t), nil)
	f := newFixture(t)
	f.s = s
	path := f.p("/users/%s/presence", f.U1)
	if n := burst(s, path, f.tok("APPr"), defaultRateLimit); n != 0 {
		t.Fatalf("%d of the first %d requests failed or were refused", n, defaultRateLimit)
	}
	want429(t, f.get(path, "APPr"))
}

// 6: each request of a batch is throttled on its own; a throttled inner
// request is a 429 entry of a 200 batch.
func TestC12_BatchInnerThrottling(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		limitFor(t, 3)
		var reqs []map[string]any
		for i := 1; i <= 4; i++ {
			reqs = append(reqs, map[string]any{"id": strconv.Itoa(i), "method": "GET", "url": "/users/" + f.U1 + "/presence"})
		}
		r := f.post(f.p("/$batch"), "APPr", map[string]any{"requests": reqs})
		wantStatus(t, r, 200)
		byID := batchResponses(t, r)
		counts := map[float64]int{}
		for id, e := range byID {
			st, _ := e["status"].(float64)
			counts[st]++
			if st == 429 {
				if ra, _ := jget(e, "headers", "Retry-After"); ra == nil {
					t.Errorf("inner 429 %s without a Retry-After header: %v", id, e)
				} else if s, _ := ra.(string); s == "" {
					t.Errorf("inner 429 %s: Retry-After = %v", id, ra)
				} else {
					assertRetryAfter(t, s, "inner response "+id)
				}
				assertInnerEnvelope(t, id, e)
				if code, _ := jget(e, "body", "error", "code"); code != "TooManyRequests" {
					t.Errorf("inner 429 %s: code %v", id, code)
				}
			}
		}
		if counts[429] < 1 || counts[200] < 2 || counts[200]+counts[429] != 4 {
			t.Errorf("inner statuses %v, want the requests beyond the budget of 3 to be 429 and the others 200", counts)
		}
		// The batch drew from the budget: a direct request is refused now.
		want429(t, f.get(f.p("/users/%s/presence", f.U1), "APPr"))
	})
}

// burst sends n GETs of path with token to s from 8 workers at once and
// returns how many failed or were answered other than 200.
func burst(s *server, path, token string, n int) int64 {
	var wg sync.WaitGroup
	var bad atomic.Int64
	const workers = 8
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				req, _ := http.NewRequest("GET", s.base+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				res, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return bad.Load()
}
