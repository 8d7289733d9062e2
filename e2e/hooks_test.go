package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// GET /_test/ lists every hook with its method and path.
func TestHooksIndex(t *testing.T) {
	r := srv.do(t, "GET", "/_test/", "", nil)
	wantStatus(t, r, http.StatusOK)
	var doc struct {
		Hooks []struct{ Method, Path, Effect string } `json:"hooks"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	have := map[string]bool{}
	for _, h := range doc.Hooks {
		if h.Effect == "" {
			t.Errorf("hook %s %s has no effect described", h.Method, h.Path)
		}
		have[h.Method+" "+h.Path] = true
	}
	for _, want := range []string{"GET /_test/", "GET /_test/clock", "POST /_test/clock/advance", "PUT /_test/clock", "PUT /_test/limits",
		"POST /_test/reset", "GET /_test/tenants/{tid}/state", "PUT /_test/tenants/{tid}/users/{uid}/clientSessions/{sid}",
		"DELETE /_test/tenants/{tid}/users/{uid}/clientSessions/{sid}", "PUT /_test/tenants/{tid}/users/{uid}/outOfOffice",
		"PUT /_test/tenants/{tid}/users/{uid}/calendarBusy", "PUT /_test/tenants/{tid}/users/{uid}/presenceEnabled",
		"PUT /_test/tenants/{tid}/users/{uid}/workPlan"} {
		if !have[want] {
			t.Errorf("GET /_test/ does not list %s: %s", want, r)
		}
	}
	if len(doc.Hooks) != 13 {
		t.Errorf("GET /_test/ lists %d hooks, want the 13 above", len(doc.Hooks))
	}
}

// PUT /_test/clock moves the clock forward to an instant, firing what fell
// due; an earlier instant is refused with 400 and the clock stays.
func TestHooksSetClock(t *testing.T) {
	f := newFixture(t)
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
	t0 := clockNow(t)
	to := t0.Add(5 * time.Minute)
	r := srv.do(t, "PUT", "/_test/clock", "", map[string]string{"now": to.Format(time.RFC3339Nano)})
	wantStatus(t, r, http.StatusOK)
	if got := parseNow(t, r); !got.Equal(to) {
		t.Errorf("PUT /_test/clock answered now %v, want %v", got, to)
	}
	f.wantPresence(f.U1, "Available", "AvailableInactive")

	r = srv.do(t, "PUT", "/_test/clock", "", map[string]string{"now": t0.Format(time.RFC3339Nano)})
	wantError(t, r, http.StatusBadRequest, "BadRequest", "")
	if !strings.Contains(r.str("error", "message"), "forward only") {
		t.Errorf("an earlier instant: message %q does not say the clock moves forward only", r.str("error", "message"))
	}
	if got := clockNow(t); !got.Equal(to) {
		t.Errorf("after a refused PUT the clock reads %v, want %v", got, to)
	}
	for _, body := range []any{map[string]string{"now": "yesterday"}, map[string]string{}} {
		wantError(t, srv.do(t, "PUT", "/_test/clock", "", body), http.StatusBadRequest, "BadRequest", "")
	}
}

// GET /_test/tenants/{tid}/state shows every user of the tenant with stored
// state: visible presence, sequence number, the stored record and when the
// presence next changes by itself.
func TestHooksTenantState(t *testing.T) {
	f := newFixture(t)
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
	f.mustSet(f.U2, "Busy", "InACall", "PT2H", "APPrw")
	t0 := clockNow(t)
	r := srv.do(t, "GET", "/_test/tenants/"+f.T+"/state", "", nil)
	wantStatus(t, r, http.StatusOK)
	var doc struct {
		Now   time.Time `json:"now"`
		Users map[string]struct {
			Availability, Activity, SequenceNumber string
			NextChange                             *time.Time     `json:"nextChangeDateTime"`
			Stored                                 map[string]any `json:"stored"`
		} `json:"users"`
	}
	if err := json.Unmarshal(r.Body, &doc); err != nil {
		t.Fatalf("%s: %v", r, err)
	}
	if len(doc.Users) != 2 || !doc.Now.Equal(t0) {
		t.Fatalf("state of a tenant with two users: %s", r)
	}
	u1, u2 := doc.Users[f.U1], doc.Users[f.U2]
	if u1.Availability != "Available" || u1.NextChange == nil || !u1.NextChange.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("U1: %+v, want Available with the fade at t0+5m", u1)
	}
	if u2.Activity != "InACall" || u2.NextChange == nil || !u2.NextChange.Equal(t0.Add(2*time.Hour)) || u2.SequenceNumber == "" {
		t.Errorf("U2: %+v, want Busy/InACall expiring at t0+2h", u2)
	}
	if _, ok := u1.Stored["sessions"]; !ok {
		t.Errorf("U1's stored state has no sessions: %v", u1.Stored)
	}
	wantError(t, srv.do(t, "GET", "/_test/tenants/nope/state", "", nil), http.StatusBadRequest, "BadRequest", "")
}

// POST /_test/reset {"tenantId"} forgets the tenant's users and
// subscriptions (and what was queued for them), and nothing of another
// tenant.
func TestHooksResetTenant(t *testing.T) {
	f := newFixture(t)
	other := newFixture(t)
	sk := newSink(t)
	f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
	other.mustSet(other.U1, "Busy", "InACall", "PT1H", "APPrw")
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, clockNow(t).Add(50*time.Minute)))
	sk.setAnswer(http.StatusServiceUnavailable) // a delivery stays queued
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	sk.waitPosts(t, 1, 10*time.Second)

	r := srv.do(t, "POST", "/_test/reset", "", map[string]string{"tenantId": f.T})
	wantStatus(t, r, http.StatusNoContent)

	f.wantPresence(f.U1, "Offline", "Offline")
	other.wantPresence(other.U1, "Busy", "InACall")
	list := f.get(f.p("/subscriptions"), "D1ra")
	wantStatus(t, list, http.StatusOK)
	if v, _ := list.get("value"); len(v.([]any)) != 0 {
		t.Errorf("after a reset the tenant still lists subscriptions: %s", list)
	}
	st := srv.do(t, "GET", "/_test/tenants/"+f.T+"/state", "", nil)
	if v, _ := st.get("users"); len(v.(map[string]any)) != 0 {
		t.Errorf("after a reset the tenant still has stored users: %s", st)
	}
	// Nothing queued for the forgotten subscription is retried.
	posts := len(sk.deliveries())
	sk.setAnswer(http.StatusAccepted)
	advance(t, "PT1H")
	if n := len(sk.deliveries()); n != posts {
		t.Errorf("a reset subscription's delivery was retried: %d POSTs, want %d", n, posts)
	}
	// The slot is free again.
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, clockNow(t).Add(50*time.Minute)))
	wantError(t, srv.do(t, "POST", "/_test/reset", "", map[string]string{"tenantId": "x"}), http.StatusBadRequest, "BadRequest", "")
}

// POST /_test/reset with no body, or {}, forgets every tenant.
func TestHooksResetAll(t *testing.T) {
	s := startTestServer(t, hookedArgs(t), nil)
	f, g := newFixture(t), newFixture(t)
	f.s, g.s = s, s
	f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
	g.mustSet(g.U1, "Busy", "InACall", "PT1H", "APPrw")
	wantStatus(t, s.do(t, "POST", "/_test/reset", "", nil), http.StatusNoContent)
	f.wantPresence(f.U1, "Offline", "Offline")
	g.wantPresence(g.U1, "Offline", "Offline")
	g.mustSet(g.U1, "Busy", "InACall", "PT1H", "APPrw")
	wantStatus(t, s.do(t, "POST", "/_test/reset", "", map[string]any{}), http.StatusNoContent)
	g.wantPresence(g.U1, "Offline", "Offline")
}

// The test clock is durable: a restart on the same data resumes from the
// last instant the clock reached (after SIGTERM or kill -9), and the stored
// state stays consistent with it: an Available session faded to
// AvailableInactive is still that, with the same sequenceNumber, and the
// next advance fades it to Away.
func TestHooksDurableClock(t *testing.T) {
	args := hookedArgs(t)
	s1 := startRestartableServer(t, args)
	f := newFixture(t)
	f.s = s1
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
	t0 := nowOn(t, s1)
	// Far from the real time, so a clock that restarted at the real time
	// could not pass.
	advanceOn(t, s1, "P3D") // U1's session expired...
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
	reached := advanceOn(t, s1, "PT5M") // ...and the new one faded
	seq := f.wantPresence(f.U1, "Available", "AvailableInactive").str("sequenceNumber")
	if err := s1.stop(); err != nil {
		t.Fatalf("first server did not stop cleanly: %v", err)
	}

	s2 := startRestartableServer(t, args)
	f.s = s2
	if got := nowOn(t, s2); !got.Equal(reached) {
		t.Fatalf("after a restart the clock reads %v, want %v (t0 %v)", got, reached, t0)
	}
	if got := f.wantPresence(f.U1, "Available", "AvailableInactive").str("sequenceNumber"); got != seq {
		t.Errorf("after a restart: sequenceNumber %q, want %q", got, seq)
	}
	reached = advanceOn(t, s2, "PT5M")
	f.wantPresence(f.U1, "Away", "Away")
	r := s2.do(t, "PUT", "/_test/clock", "", map[string]string{"now": reached.Add(time.Minute).Format(time.RFC3339Nano)})
	wantStatus(t, r, http.StatusOK)
	reached = parseNow(t, r)

	// kill -9 right after an answered move: the move was durable.
	_ = s2.cmd.Process.Kill()
	<-s2.exited
	s3 := startTestServer(t, args, nil)
	if got := nowOn(t, s3); !got.Equal(reached) {
		t.Errorf("after kill -9 the clock reads %v, want %v", got, reached)
	}
}
