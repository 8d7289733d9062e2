package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The console's read endpoints under /presenced/: who may read them, that a
// token sees its own tenant only, paging and search, the delivery log, the
// tenant-wide event stream, and the operator credential.

// consoleUsers pages through GET /presenced/users (query q) with token and
// returns the ids in order and the first page's count.
func consoleUsers(t *testing.T, s *server, token, q string, hdr ...reqOpt) (ids []string, count int) {
	t.Helper()
	path := "/presenced/users?" + q
	for pages := 0; path != ""; pages++ {
		if pages > 100 {
			t.Fatalf("more than 100 pages")
		}
		r := s.do(t, "GET", path, token, nil, hdr...)
		wantStatus(t, r, http.StatusOK)
		if pages == 0 {
			n, _ := r.get("@odata.count")
			f, _ := n.(float64)
			count = int(f)
		}
		vals, _ := r.get("value")
		for _, v := range vals.([]any) {
			ids = append(ids, v.(map[string]any)["id"].(string))
		}
		path = r.str("@odata.nextLink")
	}
	return ids, count
}

// withPrefix returns a fresh GUID that starts with prefix (8 hex digits).
func withPrefix(prefix string) string { return prefix + newGUID()[8:] }

func TestConsoleAuthorization(t *testing.T) {
	f := newFixture(t)
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
	for _, path := range []string{"/presenced/users", "/presenced/users/" + f.U1, "/presenced/subscriptions", "/presenced/health", "/presenced/events", "/presenced/whoami"} {
		wantError(t, f.get(path, ""), http.StatusUnauthorized, "InvalidAuthenticationToken", "")
	}
	// The tenant's users need the bulk read's permissions.
	for _, tok := range []string{"D1r", "D1rw", "D1x", "APPx"} {
		for _, path := range []string{"/presenced/users", "/presenced/users/" + f.U1, "/presenced/events", "/presenced/health"} {
			wantError(t, f.get(path, tok), http.StatusForbidden, "Forbidden", "")
		}
	}
	for _, tok := range []string{"D1ra", "APPr", "APPrw"} {
		r := f.get("/presenced/users", tok)
		wantStatus(t, r, http.StatusOK)
		if got := r.str("value", 0, "id"); got != f.U1 {
			t.Errorf("%s with %s: first user %q, want %q", r, tok, got, f.U1)
		}
		wantStatus(t, f.get("/presenced/health", tok), http.StatusOK)
	}
	// The configuration is public: the page reads it before sign-in.
	r := f.get("/presenced/config", "")
	wantStatus(t, r, http.StatusOK)
	if dev, _ := r.get("devAuth"); dev != false {
		t.Errorf("%s: devAuth = %v on a server with a JWKS", r, dev)
	}
	if hooks, _ := r.get("testHooks"); hooks != true {
		t.Errorf("%s: testHooks = %v", r, hooks)
	}
	// No development tokens outside development auth mode.
	wantStatus(t, f.post("/presenced/dev/token", "", map[string]any{}), http.StatusNotFound)
}

func TestConsoleUsersTenantIsolationAndPaging(t *testing.T) {
	f := newFixture(t)
	g := f.inTenant(newGUID())
	prefix := newGUID()[:8]
	var mine []string
	for range 5 {
		u := withPrefix(prefix)
		mine = append(mine, u)
		f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
	}
	other := f.U3
	f.mustSet(other, "Away", "Away", "PT1H", "APPrw")
	mine = append(mine, other)
	slices.Sort(mine)
	theirs := withPrefix(prefix)
	g.mustSet(theirs, "Available", "Available", "PT1H", "APPrw")
	g.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")

	ids, count := consoleUsers(t, f.s, f.tok("APPr"), "$top=2")
	if !slices.Equal(ids, mine) || count != len(mine) {
		t.Fatalf("tenant T by pages of 2: %v (count %d), want %v", ids, count, mine)
	}
	ids, count = consoleUsers(t, f.s, f.tok("D1ra"), "search="+strings.ToUpper(prefix)+"&$top=4")
	if want := slices.DeleteFunc(slices.Clone(mine), func(u string) bool { return u == other }); !slices.Equal(ids, want) || count != 5 {
		t.Fatalf("search %s: %v (count %d), want %v", prefix, ids, count, want)
	}
	ids, _ = consoleUsers(t, g.s, g.tok("APPr"), "")
	want := []string{f.U1, theirs}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("tenant T2: %v, want %v", ids, want)
	}
	// A user of the other tenant is not found through this tenant's token.
	wantError(t, f.get("/presenced/users/"+theirs, "APPr"), http.StatusNotFound, "NotFound", "")

	// One user's record: the visible pair and the session behind it.
	busy := slices.DeleteFunc(slices.Clone(mine), func(u string) bool { return u == other })[0]
	r := f.get("/presenced/users/"+busy, "APPr")
	wantStatus(t, r, http.StatusOK)
	if r.str("availability") != "Busy" || r.str("activity") != "InACall" || r.str("sessions", 0, "kind") != "application" ||
		r.str("sessions", 0, "id") != f.appOf("APPrw") || r.str("sessions", 0, "expiresAt") == "" || !seqRE.MatchString(r.str("sequenceNumber")) {
		t.Errorf("user record: %s", r)
	}

	for _, q := range []string{"$top=0", "$top=501", "$top=x", "$skiptoken=nope", "search=zz", "search=" + strings.Repeat("a", 37), "$filter=x"} {
		wantError(t, f.get("/presenced/users?"+url.PathEscape(q), "APPr"), http.StatusBadRequest, "BadRequest", "")
	}
}

// consoleDeliveries returns the delivery records of subscription id.
func consoleDeliveries(t *testing.T, f *fixture, token, id string) []map[string]any {
	t.Helper()
	r := f.s.do(t, "GET", "/presenced/subscriptions/"+id+"/deliveries", token, nil)
	wantStatus(t, r, http.StatusOK)
	var out []map[string]any
	vals, _ := r.get("value")
	for _, v := range vals.([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

func TestConsoleSubscriptionsAndDeliveries(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	sk.setAnswerFunc(func(n int) int {
		if n == 0 {
			return http.StatusServiceUnavailable
		}
		return http.StatusAccepted
	})
	sub := f.mustSubscribe("D1ra", subBody(bulkRes(f.U2), sk.URL, nowOn(t, f.s).Add(50*time.Minute)))
	id := sub.str("id")

	r := f.get("/presenced/subscriptions", "D1ra")
	wantStatus(t, r, http.StatusOK)
	if r.str("value", 0, "id") != id || r.str("value", 0, "notificationUrl") != sk.URL {
		t.Fatalf("the creator's list: %s", r)
	}
	// Another user of the tenant does not see it (as Graph's list), nor
	// does another tenant.
	r = f.get("/presenced/subscriptions", "D2ra")
	wantStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), id) {
		t.Errorf("another user sees the subscription: %s", r)
	}
	g := f.inTenant(newGUID())
	wantError(t, g.get("/presenced/subscriptions/"+id+"/deliveries", "D1ra"), http.StatusNotFound, "NotFound", "")
	wantError(t, f.get("/presenced/subscriptions/"+id+"/deliveries", "D2ra"), http.StatusNotFound, "NotFound", "")

	f.mustSet(f.U2, "Available", "Available", "PT1H", "APPrw")
	sk.waitPosts(t, 1, 10*time.Second)
	tok := f.tok("D1ra")
	var ds []map[string]any
	eventually(t, 10*time.Second, func() bool {
		ds = consoleDeliveries(t, f, tok, id)
		return len(ds) == 1
	}, func() string { return "no delivery logged" })
	first := ds[0]
	if first["statusCode"] != float64(503) || first["outcome"] != "retrying" || first["nextRetryAt"] == nil || first["attempt"] != float64(1) {
		t.Fatalf("the refused attempt: %v", first)
	}
	items, _ := first["notifications"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["user"] != f.U2 || !seqRE.MatchString(items[0].(map[string]any)["sequenceNumber"].(string)) {
		t.Fatalf("the refused attempt's notifications: %v", first["notifications"])
	}
	// The retry falls due on the service clock.
	advanceOn(t, f.s, "PT1M")
	eventually(t, 10*time.Second, func() bool {
		ds = consoleDeliveries(t, f, tok, id)
		return len(ds) == 2
	}, func() string { return "no retry logged" })
	if d := ds[0]; d["statusCode"] != float64(202) || d["outcome"] != "delivered" || d["retries"] != float64(1) || d["nextRetryAt"] != nil {
		t.Fatalf("the retry (newest first): %v", d)
	}
}

func TestConsoleEvents(t *testing.T) {
	f := newFixture(t)
	g := f.inTenant(newGUID())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	next := consoleEvents(t, ctx, f.s.base, f.tok("APPr"))
	if name, m := next(); name != "ready" || m["tenant"] != f.T {
		t.Fatalf("first event %s %v, want ready for %s", name, m, f.T)
	}
	// A change in another tenant first, then one in the token's: the
	// stream shows only the second.
	g.mustSet(g.U1, "Busy", "InACall", "PT1H", "APPrw")
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
	name, m := next()
	if name != "user" || m["id"] != f.U1 || m["availability"] != "Available" {
		t.Fatalf("event %s %v, want user %s Available", name, m, f.U1)
	}
	if s, _ := m["sessions"].([]any); len(s) != 1 {
		t.Errorf("the event's sessions: %v", m["sessions"])
	}
	// A change of the work location alone makes no Graph notification, but
	// the console's stream carries it.
	wantStatus(t, f.post("/beta/users/"+f.U1+"/presence/setManualLocation", "APPrw", map[string]any{"workLocationType": "remote"}), http.StatusOK)
	name, m = next()
	if wl, _ := m["workLocation"].(map[string]any); name != "user" || m["id"] != f.U1 || wl["workLocationType"] != "remote" || m["availability"] != "Available" {
		t.Fatalf("event %s %v, want user %s Available at work location remote", name, m, f.U1)
	}
}

// consoleEvents opens the console's event stream (/presenced/events) on
// base with token and returns a function that returns its next event's
// name and data; it fails the test when the stream ends or ctx does.
func consoleEvents(t *testing.T, ctx context.Context, base, token string) func() (string, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/presenced/events", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("GET /presenced/events: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	events := make(chan [2]string, 16)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(res.Body)
		var name string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				events <- [2]string{name, v}
			}
		}
	}()
	next := func() (string, map[string]any) {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended")
			}
			var m map[string]any
			if err := json.Unmarshal([]byte(ev[1]), &m); err != nil {
				t.Fatalf("event %s: %v", ev[1], err)
			}
			return ev[0], m
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return "", nil
	}
	return next
}

func TestConsoleOperator(t *testing.T) {
	secret := strings.Repeat("operator-secret-", 3)
	file := filepath.Join(t.TempDir(), "operator")
	if err := os.WriteFile(file, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startTestServer(t, hookedArgs(t, "--console-operator-token-file", file), nil)
	f := newFixture(t)
	f.s = s
	g := f.inTenant(newGUID())
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
	g.mustSet(g.U1, "Busy", "InACall", "PT1H", "APPrw")
	g.mustSet(g.U2, "Busy", "InACall", "PT1H", "APPrw")

	r := s.do(t, "GET", "/presenced/config", "", nil)
	if op, _ := r.get("operator"); op != true {
		t.Errorf("%s: operator not announced", r)
	}
	r = s.do(t, "GET", "/presenced/whoami", secret, nil)
	wantStatus(t, r, http.StatusOK)
	if op, _ := r.get("operator"); op != true {
		t.Fatalf("%s: not the operator", r)
	}
	r = s.do(t, "GET", "/presenced/tenants", secret, nil)
	wantStatus(t, r, http.StatusOK)
	body := string(r.Body)
	if !strings.Contains(body, `{"id":"`+f.T+`","users":1}`) || !strings.Contains(body, `{"id":"`+g.T+`","users":2}`) {
		t.Fatalf("tenants: %s", body)
	}
	// Without a tenant chosen, no tenant's data.
	wantError(t, s.do(t, "GET", "/presenced/users", secret, nil), http.StatusBadRequest, "BadRequest", "")
	if ids, _ := consoleUsers(t, s, secret, "", withHeader("X-Presenced-Tenant", f.T)); !slices.Equal(ids, []string{f.U1}) {
		t.Errorf("operator in T: %v", ids)
	}
	want := []string{g.U1, g.U2}
	slices.Sort(want)
	if ids, _ := consoleUsers(t, s, secret, "tenant="+g.T); !slices.Equal(ids, want) {
		t.Errorf("operator in T2: %v, want %v", ids, want)
	}
	// A subscription of any application in the chosen tenant.
	sk := newSink(t)
	sub := f.mustSubscribe("D1ra", subBody(bulkRes(f.U2), sk.URL, nowOn(t, s).Add(50*time.Minute)))
	r = s.do(t, "GET", "/presenced/subscriptions", secret, nil, withHeader("X-Presenced-Tenant", f.T))
	wantStatus(t, r, http.StatusOK)
	if r.str("value", 0, "id") != sub.str("id") {
		t.Errorf("operator's subscriptions of T: %s", r)
	}
	r = s.do(t, "GET", "/presenced/subscriptions", secret, nil, withHeader("X-Presenced-Tenant", g.T))
	if strings.Contains(string(r.Body), sub.str("id")) {
		t.Errorf("T's subscription listed in T2: %s", r)
	}
	wantStatus(t, s.do(t, "GET", "/presenced/subscriptions/"+sub.str("id")+"/deliveries", secret, nil, withHeader("X-Presenced-Tenant", f.T)), http.StatusOK)
	// A near miss of the secret is just an invalid token; a Graph token
	// cannot choose a tenant.
	wantError(t, s.do(t, "GET", "/presenced/whoami", secret[:len(secret)-1], nil), http.StatusUnauthorized, "InvalidAuthenticationToken", "")
	r = s.do(t, "GET", "/presenced/users", f.tok("APPr"), nil, withHeader("X-Presenced-Tenant", g.T))
	wantStatus(t, r, http.StatusOK)
	if strings.Contains(string(r.Body), g.U2) { // g.U1 is f.U1 in another tenant
		t.Errorf("a Graph token chose another tenant: %s", r)
	}
}

func TestConsolePage(t *testing.T) {
	for path, ct := range map[string]string{
		"/presenced/console/":            "text/html",
		"/presenced/console/app.js":      "text/javascript",
		"/presenced/console/sse.js":      "text/javascript",
		"/presenced/console/console.css": "text/css",
	} {
		res, err := client.Get(srv.base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), ct) {
			t.Errorf("GET %s: %d %s, want 200 %s", path, res.StatusCode, res.Header.Get("Content-Type"), ct)
		}
		if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
	}
}
