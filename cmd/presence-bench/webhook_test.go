package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// TestTracker follows three users through changes: every notification
// matches the one change its user awaits, users come back longest idle
// first with the other pair, and what never matched is counted.
func TestTracker(t *testing.T) {
	users := []string{"a", "b", "c"}
	tr := newTracker(users)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr.window(t0, t0.Add(time.Second))

	take := func(wantUser, wantPair int) {
		t.Helper()
		u, p, ok := tr.take()
		if !ok || u != wantUser || p != wantPair {
			t.Fatalf("take = %d, %d, %v; want %d, %d", u, p, ok, wantUser, wantPair)
		}
	}
	// Warm-up: sent before the window, matched but not measured.
	tr.scheduled(t0.Add(-time.Millisecond))
	take(0, webhookPairA)
	tr.sent(0, t0.Add(-time.Millisecond), t0.Add(-time.Millisecond))
	tr.notified([]string{"a"}, t0.Add(5*time.Millisecond))

	// In the window: b then c (a went to the back of the queue).
	for i, u := range []int{1, 2} {
		due := t0.Add(time.Duration(i) * time.Millisecond)
		tr.scheduled(due)
		take(u, webhookPairA)
		tr.sent(u, due, due.Add(time.Millisecond)) // a millisecond late
		tr.answered(due, 2*time.Millisecond)
	}
	// Every user awaits a notification except a, which is taken now and
	// gets the other pair.
	tr.scheduled(t0.Add(2 * time.Millisecond))
	take(0, webhookPairB)
	gen := tr.sent(0, t0.Add(2*time.Millisecond), t0.Add(2*time.Millisecond))
	tr.scheduled(t0.Add(3 * time.Millisecond))
	if _, _, ok := tr.take(); ok {
		t.Fatal("take with every user waiting succeeded")
	}
	tr.unsent(t0.Add(3 * time.Millisecond))

	// One POST with c and b (any order), a duplicate of b, and a stranger.
	tr.notified([]string{"c", "b", "b", "zzz"}, t0.Add(21*time.Millisecond))
	if got := tr.waiting(); got != 1 {
		t.Errorf("waiting = %d, want 1 (a)", got)
	}
	// a's change fails: it is retired, so its late notification is
	// unexpected and it never comes back.
	tr.failed(0, gen, "HTTP 500: boom")
	tr.notified([]string{"a"}, t0.Add(30*time.Millisecond))
	for range 2 {
		u, _, ok := tr.take()
		if !ok || u == 0 {
			t.Errorf("take = %d, %v; want b or c", u, ok)
		}
	}
	if _, _, ok := tr.take(); ok {
		t.Error("a retired user was taken")
	}

	res := WebhookResult{AskedRate: 4} // four changes due in the 1 s window
	tr.summarize(&res)
	if res.Due != 4 || res.Sent != 3 || res.Unsent != 1 || res.Failed != 1 || res.FirstError != "HTTP 500: boom" ||
		res.Notified != 2 || res.Missing != 0 || tr.unexpectedCount() != 3 || tr.matched() != 3 {
		t.Errorf("counts: %+v, unexpected %d, matched %d", res, tr.unexpectedCount(), tr.matched())
	}
	// b was sent at 1 ms, c at 2 ms; both arrived at 21 ms.
	if !within(time.Duration(res.P50ms*1e6), 19*time.Millisecond, 0.01) || !within(time.Duration(res.MaxMs*1e6), 20*time.Millisecond, 0.01) {
		t.Errorf("latency p50 %v max %v ms; want 19 and 20", res.P50ms, res.MaxMs)
	}
	if res.SendLagMaxMs != 1 {
		t.Errorf("send lag max = %v ms, want 1 (a's warm-up change is not measured)", res.SendLagMaxMs)
	}
	// Two of the four changes due in 1 s were answered 200.
	if res.Rate != 2 {
		t.Errorf("rate = %v, want 2", res.Rate)
	}
	if st := tr.setStats(); st.hist.Count() != 2 || st.errors != 1 {
		t.Errorf("setPresence stats: %d answered, %d errors", st.hist.Count(), st.errors)
	}
}

// TestTrackerMissing checks that a change never notified is missing, and
// that sending late beyond onSchedule lowers the rate.
func TestTrackerMissing(t *testing.T) {
	tr := newTracker([]string{"a", "b"})
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr.window(t0, t0.Add(time.Second))
	for _, u := range []int{0, 1} {
		tr.scheduled(t0)
		tr.take()
		// b is sent 2.1 s late: the window stretches to 2 s.
		tr.sent(u, t0, t0.Add(time.Duration(u)*2100*time.Millisecond))
	}
	tr.notified([]string{"a"}, t0.Add(time.Second))
	res := WebhookResult{AskedRate: 2}
	tr.summarize(&res)
	if res.Missing != 1 || res.Notified != 1 || res.Rate != 1 {
		t.Errorf("missing %d notified %d rate %v; want 1, 1, 1", res.Missing, res.Notified, res.Rate)
	}
}

func TestRing(t *testing.T) {
	r := newRing(3)
	var got []int
	for round := range 4 {
		r.push(round)
		r.push(round + 10)
		a, _ := r.pop()
		b, _ := r.pop()
		got = append(got, a, b)
	}
	if !slices.Equal(got, []int{0, 10, 1, 11, 2, 12, 3, 13}) {
		t.Errorf("FIFO order: %v", got)
	}
	if _, ok := r.pop(); ok {
		t.Error("pop of an empty ring succeeded")
	}
}

func TestWebhookGoal(t *testing.T) {
	base := Figures{WebhookAskedRate: 2000, WebhookRate: 2000, WebhookP99ms: 40}
	tests := []struct {
		name   string
		edit   func(*Figures)
		status string
		note   string
	}{
		{"met", func(*Figures) {}, GoalMet, "at 2,000 changes/s"},
		{"p99 too high", func(f *Figures) { f.WebhookP99ms = 100.5 }, GoalMissed, "at 2,000"},
		{"p99 at the bound", func(f *Figures) { f.WebhookP99ms = 100 }, GoalMet, ""},
		{"rate below the goal", func(f *Figures) { f.WebhookAskedRate, f.WebhookRate = 500, 500 }, GoalMissed, "below the goal's 2,000"},
		{"above the goal's rate", func(f *Figures) { f.WebhookAskedRate, f.WebhookRate = 3000, 3000 }, GoalMet, "at 3,000"},
		{"changes not sent", func(f *Figures) { f.WebhookShortfall = 3 }, GoalMissed, "3 changes due"},
		{"notification missing", func(f *Figures) { f.WebhookMissing = 1 }, GoalMissed, "1 notifications missing"},
		{"noisy", func(f *Figures) { f.WebhookNoisy = true }, GoalMet, "noisy"},
		{"not run", func(f *Figures) { *f = Figures{} }, GoalNotMeasured, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := base
			tt.edit(&f)
			g := goalByName(t, Evaluate(f), "change to webhook")
			if g.Status != tt.status || !strings.Contains(g.Note, tt.note) {
				t.Errorf("%+v; want status %q, note with %q", g, tt.status, tt.note)
			}
		})
	}
}

// TestWebhookReport checks that the report carries the webhook figures to
// the goal, the table and the JSON.
func TestWebhookReport(t *testing.T) {
	r := &Report{Webhook: &WebhookResult{Users: 2600, Subscriptions: 4, AskedRate: 2000, Rate: 1990, Seconds: 10,
		Due: 20000, Sent: 19900, Unsent: 100, Notified: 19900, P99ms: 20, ServerWithin100ms: 0.995, Grace: "15s"}}
	r.finish()
	g := goalByName(t, r.Goals, "change to webhook")
	if g.Status != GoalMissed || !strings.Contains(g.Note, "100 changes due") {
		t.Errorf("goal: %+v", g)
	}
	var b strings.Builder
	if err := writeTable(&b, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"2600 users in 4 subscriptions", "1,990 achieved", "p99 20.00 ms", "99.5% of deliveries", "change to webhook received"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestDeliveredWithin(t *testing.T) {
	const name = "presenced_notify_change_to_delivery_seconds"
	before := map[string]float64{name + `_bucket{le="0.1"}`: 10, name + "_count": 10}
	after := map[string]float64{name + `_bucket{le="0.1"}`: 100, name + "_count": 110}
	if got := deliveredWithin(before, after, "0.1"); got != 0.9 {
		t.Errorf("share = %v, want 0.9", got)
	}
	if got := deliveredWithin(before, before, "0.1"); got != -1 {
		t.Errorf("no deliveries: %v, want -1", got)
	}
	if got := deliveredWithin(before, map[string]float64{}, "0.1"); got != -1 {
		t.Errorf("no samples: %v, want -1", got)
	}
}

// TestBulkResource checks the subscription resource against presenced's own
// parser.
func TestBulkResource(t *testing.T) {
	ids := userIDs(1, subscriptionUsers)
	got, err := presence.ParseSubscriptionResource(bulkResource(ids))
	if err != nil || !slices.Equal(got, ids) {
		t.Errorf("ParseSubscriptionResource: %v, %d ids", err, len(got))
	}
}

// TestReceiver drives the receiver's handler: the validation handshake,
// then a batch of notifications.
func TestReceiver(t *testing.T) {
	rx := &receiver{clientState: "cs"}
	users := userIDs(2, 2)
	tr := newTracker(users)
	now := time.Now()
	tr.window(now.Add(-time.Hour), now.Add(time.Hour))
	rx.setTracker(tr)

	w := httptest.NewRecorder()
	rx.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/notify?validationToken=a%2Bb%20c", http.NoBody))
	if body, _ := io.ReadAll(w.Result().Body); w.Code != 200 || string(body) != "a+b c" || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/plain") {
		t.Errorf("handshake: %d %q %q", w.Code, body, w.Header().Get("Content-Type"))
	}

	for i := range users {
		tr.take()
		tr.sent(i, now, now)
	}
	upper := strings.ToUpper(users[1])
	body := `{"value":[` +
		`{"clientState":"cs","resource":"communications/presences/` + users[0] + `","resourceData":{"id":"` + users[0] + `"}},` +
		`{"clientState":"cs","resource":"communications/presences/` + upper + `"},` +
		`{"clientState":"forged","resource":"communications/presences/` + users[0] + `"}]}`
	w = httptest.NewRecorder()
	rx.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/notify", strings.NewReader(body)))
	if w.Code != http.StatusAccepted {
		t.Errorf("notification: HTTP %d", w.Code)
	}
	w = httptest.NewRecorder()
	rx.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/notify", strings.NewReader("{")))
	if w.Code != http.StatusBadRequest {
		t.Errorf("bad body: HTTP %d", w.Code)
	}
	posts, unexpected := rx.counts()
	if posts != 2 || unexpected != 2 || tr.waiting() != 0 || tr.matched() != 2 {
		t.Errorf("posts %d unexpected %d waiting %d matched %d; want 2, 2, 0, 2", posts, unexpected, tr.waiting(), tr.matched())
	}
}

func TestWebhookConfig(t *testing.T) {
	c, err := parseConfig([]string{"--scenario", "webhook"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Scenarios, []string{"webhook"}) || c.Rate != defaultRate || c.usersFor("webhook") != defaultWebhookUsers {
		t.Errorf("webhook: %+v", c)
	}
	if c, _ := parseConfig(nil, io.Discard); slices.Contains(c.Scenarios, "webhook") {
		t.Error("webhook runs by default; it is opt-in")
	}
	for _, bad := range [][]string{
		{"--scenario", "webhook", "--rate", "0"},
		{"--scenario", "webhook", "--rate", "1e6"},
		{"--scenario", "webhook", "--url", "http://127.0.0.1:8080", "--data", "d"},
	} {
		if _, err := parseConfig(bad, io.Discard); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
