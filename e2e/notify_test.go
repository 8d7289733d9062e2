package e2e

// C11: subscriptions and notifications (conformance.md), against real TLS
// receivers (sink, webhook_test.go). Time moves only through
// POST /_test/clock/advance, which runs due deliveries, retries, lifecycle
// events and expiries before it answers.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Graph's messages (graph-presence.md 5.2).
const (
	msgSubValidation    = "Subscription validation request failed. Response must exactly match validationToken query parameter."
	msgSubTimeout       = "Subscription validation request timed out."
	msgSubExpiration60  = "Subscription expiration can only be 60 minutes in the future."
	msgSubNotAuthorized = "The request is not authorized for this user or application."
	msgSubForbiddenFull = "Operation: Create; Exception: [Status Code: Forbidden; Reason: The request is not authorized for this user or application.]"
	msgSubExists        = "Operation: Create; Exception: [Status Code: Conflict; Reason: A subscripton already exists. It must be deleted before a another can be made.]"
)

// C11 #91: create, with the handshake seen before the 201.
func TestC11_91_CreateAndHandshake(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		sk := newSink(t)
		t0 := nowOn(t, f.s)
		body := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
		body["clientState"] = "cs1"
		r := f.mustSubscribe("D1ra", body)

		// The sink saw exactly one validation request before the 201.
		hs := sk.handshakeList()
		if len(hs) != 1 {
			t.Fatalf("the sink saw %d validation requests before the 201, want exactly 1", len(hs))
		}
		h := hs[0]
		if h.Method != http.MethodPost {
			t.Errorf("validation request method %s, want POST", h.Method)
		}
		if !strings.HasPrefix(h.ContentType, "text/plain") {
			t.Errorf("validation request Content-Type %q, want text/plain", h.ContentType)
		}
		if len(h.Body) != 0 {
			t.Errorf("validation request body %q, want empty", h.Body)
		}
		if len(h.Token) < 32 {
			t.Errorf("validationToken %q, want 32+ characters (4.3)", h.Token)
		}
		if strings.ContainsAny(h.Token, "<>\"'&") {
			t.Errorf("validationToken %q holds HTML/JS characters (4.3)", h.Token)
		}
		if n := len(sk.deliveries()); n != 0 {
			t.Errorf("the sink got %d notifications right after create, want none", n)
		}

		ctx := r.str("@odata.context")
		if !strings.HasSuffix(ctx, "/"+f.v+"/$metadata#subscriptions/$entity") {
			t.Errorf("%s: @odata.context %q, want …/%s/$metadata#subscriptions/$entity", r, ctx, f.v)
		}
		want := map[string]string{"applicationId": f.A, "creatorId": f.U1, "resource": userRes(f.U2),
			"changeType": "updated", "notificationUrl": sk.URL, "clientState": "cs1", "latestSupportedTlsVersion": "v1_2"}
		for k, v := range want {
			if got := r.str(k); got != v {
				t.Errorf("%s: %s = %q, want %q", r, k, got, v)
			}
		}
		if v, _ := r.get("includeResourceData"); v != false {
			t.Errorf("%s: includeResourceData = %v, want false", r, v)
		}
		if exp := parseGraphTime(t, "expirationDateTime", r.str("expirationDateTime")); !sameInstant(exp, t0.Add(50*time.Minute)) {
			t.Errorf("%s: expirationDateTime %v, want %v", r, exp, t0.Add(50*time.Minute))
		}

		// GET returns the same entity.
		id := r.str("id")
		g := f.get(f.p("/subscriptions/%s", id), "D1ra")
		wantStatus(t, g, http.StatusOK)
		for _, k := range []string{"id", "resource", "applicationId", "creatorId", "changeType", "clientState", "notificationUrl", "expirationDateTime"} {
			if g.str(k) != r.str(k) {
				t.Errorf("GET %s = %q, create answered %q", k, g.str(k), r.str(k))
			}
		}
		if !strings.HasSuffix(g.str("@odata.context"), "/"+f.v+"/$metadata#subscriptions/$entity") {
			t.Errorf("%s: @odata.context", g)
		}
	})
}

// 4.3 and 4.2 #13: a lifecycleNotificationUrl is validated too, with its own
// handshake, even when it is the same URL; a query string on the URL is
// preserved, in handshakes and deliveries.
func TestC11_HandshakeDetails(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	hook := sk.URL + "/hooks/presence?route=alpha&x=1"
	body := subBody(userRes(f.U2), hook, t0.Add(50*time.Minute))
	body["lifecycleNotificationUrl"] = hook
	r := f.mustSubscribe("D1ra", body)
	if r.str("lifecycleNotificationUrl") != hook {
		t.Errorf("%s: lifecycleNotificationUrl %q, want %q", r, r.str("lifecycleNotificationUrl"), hook)
	}
	hs := sk.handshakeList()
	if len(hs) != 2 {
		t.Fatalf("%d validation requests for notificationUrl and lifecycleNotificationUrl (same URL), want 2", len(hs))
	}
	if hs[0].Token == hs[1].Token {
		t.Errorf("both handshakes used the token %q; want a fresh one each", hs[0].Token)
	}
	for _, h := range hs {
		if q := url.Values(h.Query); h.Path != "/hooks/presence" || q.Get("route") != "alpha" || q.Get("x") != "1" {
			t.Errorf("validation request to %s?%v: the URL's path and query were not preserved", h.Path, h.Query)
		}
	}
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	d := sk.waitPosts(t, 1, deliveryWithin)[0]
	if d.Path != "/hooks/presence" || url.Values(d.Query).Get("route") != "alpha" {
		t.Errorf("notification POST to %s?%v: the URL's query string was not preserved (4.5)", d.Path, d.Query)
	}
}

// 4.2 #13: a lifecycleNotificationUrl that fails its handshake fails the
// create, though notificationUrl passed.
func TestC11_LifecycleHandshakeFails(t *testing.T) {
	f := newFixture(t)
	sk, life := newSink(t), newSink(t)
	life.setEcho(func(tok string) (int, string) { return 200, tok + "x" })
	t0 := nowOn(t, f.s)
	body := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
	body["lifecycleNotificationUrl"] = life.URL
	wantError(t, f.subscribe("D1ra", body), http.StatusBadRequest, "InvalidRequest", msgSubValidation)
	if len(sk.handshakeList()) != 1 || len(life.handshakeList()) != 1 {
		t.Errorf("handshakes: notificationUrl %d, lifecycleNotificationUrl %d; want 1 each", len(sk.handshakeList()), len(life.handshakeList()))
	}
	life.setEcho(nil)
	f.mustSubscribe("D1ra", body)
}

// Object ids are GUIDs, compared without regard to case: a subscription on
// an upper-case id is notified of changes made through the lower-case one,
// and the other way round.
func TestC11_GUIDCase(t *testing.T) {
	f := newFixture(t)
	a, b := newSink(t), newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", subBody(userRes(strings.ToUpper(f.U2)), a.URL, t0.Add(50*time.Minute)))
	f.mustSubscribeAs(f.d1raB(), subBody(bulkRes(strings.ToUpper(f.U3)), b.URL, t0.Add(50*time.Minute)))
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	it := a.waitItems(t, 1, deliveryWithin)[0]
	if rd, _ := it["resourceData"].(map[string]any); !strings.EqualFold(fmt.Sprint(rd["id"]), f.U2) {
		t.Errorf("resourceData.id %v, want U2", rd["id"])
	}
	f.mustSet(strings.ToUpper(f.U3), "Busy", "InACall", "PT1H", "APPrw")
	b.waitItems(t, 1, deliveryWithin)
}

// C11 #92: an answer that is not exactly the token fails the create.
func TestC11_92_HandshakeMismatch(t *testing.T) {
	f := newFixture(t)
	t0 := nowOn(t, f.s)
	cases := map[string]func(tok string) (int, string){
		// Our tokens are URL-safe (4.3), so url.QueryEscape leaves them as they
		// are; a receiver that sends the token percent-encoded byte by byte
		// sends an encoded form that differs from the decoded token.
		"percent-encoded": func(tok string) (int, string) {
			var b strings.Builder
			for i := 0; i < len(tok); i++ {
				fmt.Fprintf(&b, "%%%02X", tok[i])
			}
			return 200, b.String()
		},
		"query-escaped with a prefix": func(tok string) (int, string) {
			return 200, url.QueryEscape("validationToken=" + tok)
		},
		"trailing newline": func(tok string) (int, string) { return 200, tok + "\n" },
		"empty":            func(string) (int, string) { return 200, "" },
		"status 500":       func(tok string) (int, string) { return 500, tok },
	}
	for name, echo := range cases {
		t.Run(name, func(t *testing.T) {
			f := f.in(t)
			sk := newSink(t)
			sk.setEcho(echo)
			r := f.subscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
			wantError(t, r, http.StatusBadRequest, "InvalidRequest", msgSubValidation)
			if n := len(sk.handshakeList()); n != 1 {
				t.Errorf("%d validation requests, want 1", n)
			}
		})
	}
	// Nothing was created: the list is empty and the slot is free.
	l := f.get(f.p("/subscriptions"), "D1ra")
	wantStatus(t, l, http.StatusOK)
	if len(values(t, l)) != 0 {
		t.Errorf("%s: failed creates left subscriptions behind", l)
	}
	sk := newSink(t)
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
}

// C11 #93: a receiver that does not answer in time (--validation-timeout,
// 10 s by default, shortened to 1 s on the suite's server).
func TestC11_93_HandshakeTimeout(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	sk.setHold(true)
	t0 := nowOn(t, f.s)
	start := time.Now()
	r := f.subscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
	took := time.Since(start)
	wantError(t, r, http.StatusBadRequest, "InvalidRequest", msgSubTimeout)
	if took < validationTimeout-50*time.Millisecond {
		t.Errorf("timed out after %v, before --validation-timeout %v", took, validationTimeout)
	}
	if took > validationTimeout+5*time.Second {
		t.Errorf("timed out after %v; --validation-timeout is %v", took, validationTimeout)
	}
	// The slot is free again.
	sk.setHold(false)
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
}

// C11 #94 and 4.2 #9: expiry bounds; less than 45 minutes is raised to 45.
func TestC11_94_Expiration(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	for _, exp := range []time.Time{t0.Add(61 * time.Minute), t0.Add(60*time.Minute + time.Second), t0.Add(24 * time.Hour)} {
		r := f.subscribe("D1ra", subBody(userRes(f.U2), sk.URL, exp))
		wantError(t, r, http.StatusBadRequest, "ExtensionError", msgSubExpiration60)
	}
	for _, exp := range []time.Time{t0.Add(-time.Minute), t0} {
		r := f.subscribe("D1ra", subBody(userRes(f.U2), sk.URL, exp))
		wantError(t, r, http.StatusBadRequest, "ExtensionError", "")
	}
	r := f.subscribe("D1ra", map[string]any{"changeType": "updated", "notificationUrl": sk.URL,
		"resource": userRes(f.U2), "expirationDateTime": "tomorrow"})
	wantStatus(t, r, http.StatusBadRequest)
	if n := len(sk.handshakeList()); n != 0 {
		t.Errorf("%d handshakes for refused requests, want none (validation comes first, 4.2)", n)
	}

	// Exactly 60 minutes is allowed.
	r = f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(60*time.Minute)))
	if exp := parseGraphTime(t, "expirationDateTime", r.str("expirationDateTime")); !sameInstant(exp, t0.Add(60*time.Minute)) {
		t.Errorf("%s: expirationDateTime %v, want t0+60m", r, exp)
	}
	// Under 45 minutes is raised to now + 45 minutes (app B: its own slot).
	r = f.mustSubscribeAs(f.d1raB(), subBody(userRes(f.U2), sk.URL, t0.Add(10*time.Minute)))
	if exp := parseGraphTime(t, "expirationDateTime", r.str("expirationDateTime")); !sameInstant(exp, t0.Add(45*time.Minute)) {
		t.Errorf("%s: expirationDateTime %v, want raised to t0+45m (4.1)", r, exp)
	}
}

// C11 #96: only changeType updated.
func TestC11_96_ChangeType(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	for _, ct := range []string{"created", "deleted", "updated,created", ""} {
		b := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
		b["changeType"] = ct
		r := f.subscribe("D1ra", b)
		wantError(t, r, http.StatusBadRequest, "InvalidRequest", "")
	}
	if n := len(sk.handshakeList()); n != 0 {
		t.Errorf("%d handshakes for refused requests, want none", n)
	}
	b := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
	b["changeType"] = "Updated" // case-insensitive (4.2 #6)
	r := f.mustSubscribe("D1ra", b)
	if r.str("changeType") != "updated" {
		t.Errorf("%s: changeType %q, want updated", r, r.str("changeType"))
	}
}

// C11 #97, #98: delegated Presence.Read.All only.
func TestC11_97_98_Permissions(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	body := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
	for _, tok := range []string{"APPr", "APPrw", "APPx", "MSA"} {
		r := f.subscribe(tok, body)
		wantError(t, r, http.StatusForbidden, "ExtensionError", "")
		if msg := r.str("error", "message"); !strings.Contains(msg, msgSubNotAuthorized) {
			t.Errorf("%s (%s): message %q, want it to contain %q", r, tok, msg, msgSubNotAuthorized)
		}
	}
	for _, tok := range []string{"D1r", "D1rw", "D1x"} {
		r := f.subscribe(tok, body)
		wantError(t, r, http.StatusForbidden, "ExtensionError", msgSubForbiddenFull)
	}
	r := f.s.do(t, "POST", f.p("/subscriptions"), "", body)
	wantError(t, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "")
	if n := len(sk.handshakeList()); n != 0 {
		t.Errorf("%d handshakes for refused requests, want none", n)
	}
}

// C11 #100: one subscription per (user, app), per tenant.
func TestC11_100_OnePerUserAndApp(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
	// U1 with app B: its own slot.
	rb := f.mustSubscribeAs(f.d1raB(), subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
	if rb.str("applicationId") != f.B || rb.str("creatorId") != f.U1 {
		t.Errorf("%s: applicationId/creatorId, want B/U1", rb)
	}
	// U2 with app A: its own slot.
	f.mustSubscribe("D2ra", subBody(userRes(f.U1), sk.URL, t0.Add(50*time.Minute)))
	// U1 with app A again, even for another resource: 409.
	before := len(sk.handshakeList())
	for _, res := range []string{userRes(f.U2), userRes(f.U3), bulkRes(f.U2, f.U3)} {
		r := f.subscribe("D1ra", subBody(res, sk.URL, t0.Add(50*time.Minute)))
		wantError(t, r, http.StatusConflict, "ExtensionError", msgSubExists)
	}
	if n := len(sk.handshakeList()) - before; n != 0 {
		t.Errorf("%d handshakes for refused duplicates, want none (4.2: #12 before #13)", n)
	}
}

// 4.2 #12: two creates racing for one slot: while the first one's handshake
// is in flight, the second gets 409.
func TestC11_ConcurrentCreatesOneSlot(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	sk.setHold(true)
	t0 := nowOn(t, f.s)
	body := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
	tok := f.tok("D1ra")
	first := make(chan *resp, 1)
	go func() {
		req, _ := http.NewRequest("POST", f.s.base+f.p("/subscriptions"), strings.NewReader(mustJSON(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := client.Do(req)
		if err != nil {
			first <- nil
			return
		}
		res.Body.Close()
		first <- &resp{Status: res.StatusCode}
	}()
	select {
	case <-sk.seenHS:
	case <-time.After(deliveryWithin):
		t.Fatal("the first create's handshake never reached the sink")
	}
	r := f.subscribe("D1ra", body)
	wantError(t, r, http.StatusConflict, "ExtensionError", msgSubExists)
	// The first create is let down by the timeout: 400, and the slot is free.
	if got := <-first; got == nil || got.Status != http.StatusBadRequest {
		t.Fatalf("the held create answered %v, want 400 (timed out)", got)
	}
	sk.setHold(false)
	f.mustSubscribe("D1ra", body)
}

// C11 #103 and 4.2: URLs must be https; clientState at most 128 characters;
// other request rules.
func TestC11_103_RequestValidation(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	exp := t0.Add(50 * time.Minute)
	httpURL := "http://" + strings.TrimPrefix(sk.URL, "https://")
	bad := map[string]map[string]any{
		"http notificationUrl":          subBody(userRes(f.U2), httpURL, exp),
		"relative notificationUrl":      subBody(userRes(f.U2), "/hook", exp),
		"clientState of 129 characters": with(subBody(userRes(f.U2), sk.URL, exp), "clientState", strings.Repeat("c", 129)),
		"http lifecycleNotificationUrl": with(subBody(userRes(f.U2), sk.URL, exp), "lifecycleNotificationUrl", httpURL),
		"no resource":                   without(subBody(userRes(f.U2), sk.URL, exp), "resource"),
		"no notificationUrl":            without(subBody(userRes(f.U2), sk.URL, exp), "notificationUrl"),
		"no expirationDateTime":         without(subBody(userRes(f.U2), sk.URL, exp), "expirationDateTime"),
		"no changeType":                 without(subBody(userRes(f.U2), sk.URL, exp), "changeType"),
		"resource of a UPN":             subBody("communications/presences/someone@contoso.com", sk.URL, exp),
		"resource not presence":         subBody("me/messages", sk.URL, exp),
		"bulk ids unquoted":             subBody("communications/presences?$filter=id in ("+f.U2+","+f.U3+")", sk.URL, exp),
		"bulk of 651 ids":               subBody(bulkRes(manyGUIDs(651)...), sk.URL, exp),
		"bulk of no ids":                subBody("communications/presences?$filter=id in ()", sk.URL, exp),
		"rich without certificate":      with(subBody(userRes(f.U2), sk.URL, exp), "includeResourceData", true),
		"web push field":                with(subBody(userRes(f.U2), sk.URL, exp), "vapidPublicKey", "BNxx"),
	}
	for name, b := range bad {
		t.Run(name, func(t *testing.T) {
			r := f.in(t).subscribe("D1ra", b)
			wantStatus(t, r, http.StatusBadRequest)
		})
	}
	// An unusable certificate: Graph's words (4.2 #11, O27).
	b := richBody(subBody(userRes(f.U2), sk.URL, exp))
	b["encryptionCertificate"] = "bm90IGEgY2VydGlmaWNhdGU="
	wantError(t, f.subscribe("D1ra", b), http.StatusBadRequest, "", "Certificate validation error: Cannot find the requested object.")
	b = richBody(subBody(userRes(f.U2), sk.URL, exp))
	delete(b, "encryptionCertificateId")
	wantStatus(t, f.subscribe("D1ra", b), http.StatusBadRequest)
	if n := len(sk.handshakeList()); n != 0 {
		t.Errorf("%d handshakes for refused requests, want none", n)
	}

	// 128 characters is fine; so is a leading slash and the bulk form of 650,
	// counted as distinct ids (4.2 #10: a repeat, in any case, is not another).
	ok := with(subBody("/"+userRes(f.U2), sk.URL, exp), "clientState", strings.Repeat("c", 128))
	r := f.mustSubscribe("D1ra", ok)
	if r.str("clientState") != strings.Repeat("c", 128) {
		t.Errorf("%s: clientState not kept", r)
	}
	f.mustSubscribe("D2ra", subBody(bulkRes(manyGUIDs(650)...), sk.URL, exp))
	ids := manyGUIDs(650)
	f.mustSubscribeAs(f.d1raB(), subBody(bulkRes(append(ids, strings.ToUpper(ids[0]), ids[1])...), sk.URL, exp))
}

func with(b map[string]any, k string, v any) map[string]any { b[k] = v; return b }
func without(b map[string]any, k string) map[string]any     { delete(b, k); return b }

func manyGUIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = newGUID()
	}
	return out
}

// C11 #104: a basic notification, exactly.
func TestC11_104_BasicNotification(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		sk := newSink(t)
		t0 := nowOn(t, f.s)
		body := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
		body["clientState"] = "cs1"
		sub := f.mustSubscribe("D1ra", body)
		f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")

		d := sk.waitPosts(t, 1, deliveryWithin)[0]
		if !strings.HasPrefix(d.ContentType, "application/json") {
			t.Errorf("notification Content-Type %q, want application/json", d.ContentType)
		}
		if got := keysOf(d.JSON); !slices.Equal(got, []string{"value"}) {
			t.Errorf("notification body members %v, want only value (no validationTokens for basic): %s", got, d.Body)
		}
		items := d.items()
		if len(items) != 1 {
			t.Fatalf("notification holds %d items, want 1: %s", len(items), d.Body)
		}
		it := items[0]
		wantKeys := []string{"changeType", "clientState", "organizationId", "resource", "resourceData",
			"subscriptionExpirationDateTime", "subscriptionId", "tenantId"}
		if got := keysOf(it); !slices.Equal(got, wantKeys) {
			t.Errorf("item members %v, want %v (no encryptedContent): %s", got, wantKeys, d.Body)
		}
		want := map[string]string{"changeType": "updated", "resource": userRes(f.U2), "clientState": "cs1",
			"subscriptionId": sub.str("id"), "tenantId": f.T, "organizationId": f.T}
		for k, v := range want {
			if got, _ := it[k].(string); got != v {
				t.Errorf("item %s = %q, want %q", k, got, v)
			}
		}
		rd, _ := it["resourceData"].(map[string]any)
		wantRD := map[string]any{"@odata.id": "users/" + f.U2 + "/presence", "@odata.type": "#microsoft.graph.presence", "id": f.U2}
		if fmt.Sprint(rd) != fmt.Sprint(wantRD) {
			t.Errorf("resourceData = %v, want exactly %v", rd, wantRD)
		}
		exp, _ := it["subscriptionExpirationDateTime"].(string)
		if !sameInstant(parseGraphTime(t, "subscriptionExpirationDateTime", exp), t0.Add(50*time.Minute)) {
			t.Errorf("subscriptionExpirationDateTime %q, want %v", exp, t0.Add(50*time.Minute))
		}
	})
}

// C11 #105: a rich notification, decrypted with the standard library.
func TestC11_105_RichNotification(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	body := richBody(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
	body["clientState"] = "cs1"
	sub := f.mustSubscribe("D1ra", body)
	if v, _ := sub.get("includeResourceData"); v != true {
		t.Errorf("%s: includeResourceData %v, want true", sub, v)
	}
	if sub.str("encryptionCertificateId") != encCert().id {
		t.Errorf("%s: encryptionCertificateId %q, want %q", sub, sub.str("encryptionCertificateId"), encCert().id)
	}
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	seq := f.seqOf(f.U2)

	d := sk.waitPosts(t, 1, deliveryWithin)[0]
	items := d.items()
	if len(items) != 1 {
		t.Fatalf("%d items, want 1: %s", len(items), d.Body)
	}
	it := items[0]
	if _, ok := it["encryptedContent"]; !ok {
		t.Fatalf("rich item without encryptedContent: %s", d.Body)
	}
	for k, v := range map[string]string{"resource": userRes(f.U2), "clientState": "cs1", "subscriptionId": sub.str("id"), "tenantId": f.T, "changeType": "updated"} {
		if got, _ := it[k].(string); got != v {
			t.Errorf("rich item %s = %q, want %q", k, got, v)
		}
	}
	data := decryptItem(t, it)
	for k, v := range map[string]string{"availability": "Busy", "activity": "InACall", "id": f.U2,
		"@odata.id": "users/" + f.U2 + "/presence", "@odata.type": "#microsoft.graph.presence", "sequenceNumber": seq} {
		if got, _ := data[k].(string); got != v {
			t.Errorf("decrypted data %s = %q, want %q: %v", k, got, v, data)
		}
	}

	toks, _ := d.JSON["validationTokens"].([]any)
	if len(toks) != 1 {
		t.Fatalf("validationTokens %v, want one token (one app, one tenant)", d.JSON["validationTokens"])
	}
	tok, _ := toks[0].(string)
	claims := verifyValidationToken(t, f.s, tok)
	if !audIs(claims["aud"], f.A) {
		t.Errorf("validationToken aud = %v, want %s", claims["aud"], f.A)
	}
	if claims["tid"] != f.T {
		t.Errorf("validationToken tid = %v, want %s", claims["tid"], f.T)
	}
	if claims["appid"] != publisherAppID {
		t.Errorf("validationToken appid = %v, want %s", claims["appid"], publisherAppID)
	}
	// Decision 5: iss from the public URL (here derived from the listener).
	if claims["iss"] != f.s.base {
		t.Errorf("validationToken iss = %v, want the server's public URL %s (decision 5)", claims["iss"], f.s.base)
	}
}

// C11 #108: a bulk subscription notifies with the single-user resource.
func TestC11_108_BulkSubscription(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", subBody(bulkRes(f.U2, f.U3), sk.URL, t0.Add(50*time.Minute)))
	f.mustSet(f.U3, "Busy", "InACall", "PT1H", "APPrw")
	it := sk.waitItems(t, 1, deliveryWithin)[0]
	if it["resource"] != userRes(f.U3) {
		t.Errorf("bulk notification resource %v, want %s", it["resource"], userRes(f.U3))
	}
	if rd, _ := it["resourceData"].(map[string]any); rd["id"] != f.U3 || rd["@odata.id"] != "users/"+f.U3+"/presence" {
		t.Errorf("bulk notification resourceData %v, want U3's", rd)
	}
	if cs, ok := it["clientState"]; ok {
		t.Errorf("item clientState %v for a subscription without one; want none (4.5)", cs)
	}
	// U1 is not in the filter: a change of U1 is not notified (U2's change,
	// made after it, is the marker).
	f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
	f.mustSet(f.U2, "Away", "Away", "PT1H", "APPrw")
	items := sk.waitItems(t, 2, deliveryWithin)
	if len(items) != 2 || items[1]["resource"] != userRes(f.U2) {
		t.Errorf("after changes of U1 (not subscribed) and U2: items %v, want U3 then U2 only", resources(items))
	}
}

func resources(items []map[string]any) []string {
	var out []string
	for _, it := range items {
		s, _ := it["resource"].(string)
		out = append(out, s)
	}
	return out
}

// C11 #109: renew.
func TestC11_109_Renew(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	body := subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))
	body["clientState"] = "cs1"
	sub := f.mustSubscribe("D1ra", body)
	id := sub.str("id")
	now := advance(t, "PT20M")

	r := f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"expirationDateTime": graphTime(now.Add(55 * time.Minute))})
	wantStatus(t, r, http.StatusOK)
	if exp := parseGraphTime(t, "expirationDateTime", r.str("expirationDateTime")); !sameInstant(exp, now.Add(55*time.Minute)) {
		t.Errorf("%s: expirationDateTime %v, want now+55m", r, exp)
	}
	for _, k := range []string{"id", "resource", "applicationId", "creatorId", "changeType", "notificationUrl", "clientState"} {
		if r.str(k) != sub.str(k) {
			t.Errorf("PATCH answer %s = %q, want %q (the full entity)", k, r.str(k), sub.str(k))
		}
	}
	if !strings.HasSuffix(r.str("@odata.context"), "$metadata#subscriptions/$entity") {
		t.Errorf("%s: @odata.context", r)
	}
	if n := len(sk.handshakeList()); n != 1 {
		t.Errorf("renewal re-validated the URL: %d handshakes, want 1 (4.3 #5)", n)
	}
	r = f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"expirationDateTime": graphTime(now.Add(61 * time.Minute))})
	wantError(t, r, http.StatusBadRequest, "ExtensionError", msgSubExpiration60)
	// The failed renewal changed nothing.
	g := f.get(f.p("/subscriptions/%s", id), "D1ra")
	wantStatus(t, g, http.StatusOK)
	if exp := parseGraphTime(t, "expirationDateTime", g.str("expirationDateTime")); !sameInstant(exp, now.Add(55*time.Minute)) {
		t.Errorf("after a refused renewal: expirationDateTime %v, want now+55m", exp)
	}
	// It lives past its first expiry and notifications carry the new one.
	advance(t, "PT40M") // t0+60m: past t0+50m
	wantStatus(t, f.get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusOK)
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	it := sk.waitItems(t, 1, deliveryWithin)[0]
	if exp, _ := it["subscriptionExpirationDateTime"].(string); !sameInstant(parseGraphTime(t, "subscriptionExpirationDateTime", exp), now.Add(55*time.Minute)) {
		t.Errorf("subscriptionExpirationDateTime %q, want the renewed %v", exp, now.Add(55*time.Minute))
	}
	// 4.2 #9 on renewal: less than 45 minutes is raised to 45.
	now = nowOn(t, f.s)
	r = f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"expirationDateTime": graphTime(now.Add(10 * time.Minute))})
	wantStatus(t, r, http.StatusOK)
	if exp := parseGraphTime(t, "expirationDateTime", r.str("expirationDateTime")); !sameInstant(exp, now.Add(45*time.Minute)) {
		t.Errorf("%s: renewed to now+10m: expirationDateTime %v, want raised to now+45m", r, exp)
	}
	// Only the creator (same app, same user, Presence.Read.All) renews.
	r = f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D2ra"), map[string]any{"expirationDateTime": graphTime(now.Add(50 * time.Minute))})
	wantError(t, r, http.StatusNotFound, "", "")
	r = f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1r"), map[string]any{"expirationDateTime": graphTime(now.Add(50 * time.Minute))})
	wantStatus(t, r, http.StatusForbidden)
	// 4.4: lifecycleNotificationUrl cannot be added by an update; the other
	// read-only members cannot change.
	for _, b := range []map[string]any{{"lifecycleNotificationUrl": sk.URL}, {"resource": userRes(f.U3)}} {
		r := f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), b)
		wantStatus(t, r, http.StatusBadRequest)
	}
}

// 4.4: a PATCH of notificationUrl validates the new URL, and notifications
// go there afterwards.
func TestC11_MoveNotificationURL(t *testing.T) {
	f := newFixture(t)
	a, b := newSink(t), newSink(t)
	t0 := nowOn(t, f.s)
	id := f.mustSubscribe("D1ra", subBody(userRes(f.U2), a.URL, t0.Add(50*time.Minute))).str("id")
	bad := newSink(t)
	bad.setEcho(func(string) (int, string) { return 200, "nope" })
	r := f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"notificationUrl": bad.URL})
	wantError(t, r, http.StatusBadRequest, "InvalidRequest", msgSubValidation)
	r = f.s.do(t, "PATCH", f.p("/subscriptions/%s", id), f.tok("D1ra"), map[string]any{"notificationUrl": b.URL})
	wantStatus(t, r, http.StatusOK)
	if r.str("notificationUrl") != b.URL || len(b.handshakeList()) != 1 {
		t.Errorf("%s: moved to %s with %d handshakes, want 1", r, b.URL, len(b.handshakeList()))
	}
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	b.waitItems(t, 1, deliveryWithin)
	if n := len(a.deliveries()); n != 0 {
		t.Errorf("the old URL got %d notifications after the move", n)
	}
}

// 4.4: a PATCH rotates the encryption certificate: later rich notifications
// are encrypted for the new one and name its id; an unusable certificate is
// refused and changes nothing.
func TestC11_RotateEncryptionCertificate(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	t0 := nowOn(t, f.s)
	id := f.mustSubscribe("D1ra", richBody(subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))).str("id")
	path := f.p("/subscriptions/%s", id)
	r := f.s.do(t, "PATCH", path, f.tok("D1ra"), map[string]any{"encryptionCertificate": "bm90IGEgY2VydGlmaWNhdGU=", "encryptionCertificateId": "broken"})
	wantError(t, r, http.StatusBadRequest, "", "Certificate validation error: Cannot find the requested object.")
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	decryptItem(t, sk.waitItems(t, 1, deliveryWithin)[0]) // still the first certificate

	next := newEncCert("e2e-cert-2026-02")
	r = f.s.do(t, "PATCH", path, f.tok("D1ra"), map[string]any{"encryptionCertificate": next.b64, "encryptionCertificateId": next.id})
	wantStatus(t, r, http.StatusOK)
	if got := r.str("encryptionCertificateId"); got != next.id {
		t.Errorf("%s: encryptionCertificateId %q, want %q", r, got, next.id)
	}
	if n := len(sk.handshakeList()); n != 1 {
		t.Errorf("rotating the certificate re-validated the URL: %d handshakes, want 1", n)
	}
	f.mustSet(f.U2, "Away", "Away", "PT1H", "APPrw")
	data := decryptWith(t, sk.waitItems(t, 2, deliveryWithin)[1], next)
	if data["availability"] != "Away" || data["activity"] != "Away" {
		t.Errorf("after the rotation: decrypted %v, want Away/Away", data)
	}
}

// C11 #110: delete.
func TestC11_110_Delete(t *testing.T) {
	f := newFixture(t)
	sk, marker := newSink(t), newSink(t)
	t0 := nowOn(t, f.s)
	id := f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute))).str("id")
	// App B watches U2 too: its sink is the marker that a delivery happened.
	f.mustSubscribeAs(f.d1raB(), subBody(userRes(f.U2), marker.URL, t0.Add(50*time.Minute)))
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	sk.waitItems(t, 1, deliveryWithin)
	marker.waitItems(t, 1, deliveryWithin)

	r := f.s.do(t, "DELETE", f.p("/subscriptions/%s", id), f.tok("D1ra"), nil)
	wantStatus(t, r, http.StatusNoContent)
	if len(r.Body) != 0 {
		t.Errorf("%s: 204 with a body", r)
	}
	wantError(t, f.get(f.p("/subscriptions/%s", id), "D1ra"), http.StatusNotFound, "", "")
	wantError(t, f.s.do(t, "DELETE", f.p("/subscriptions/%s", id), f.tok("D1ra"), nil), http.StatusNotFound, "", "")
	wantError(t, f.post(f.p("/subscriptions/%s/reauthorize", id), "D1ra", nil), http.StatusNotFound, "", "")

	f.mustSet(f.U2, "Away", "Away", "PT1H", "APPrw")
	advance(t, "PT1M") // runs whatever is due before it answers
	marker.waitItems(t, 2, deliveryWithin)
	if n := len(sk.deliveries()); n != 1 {
		t.Errorf("the deleted subscription's sink got %d notification POSTs, want 1 (none after the delete): %s", n, sk.dump())
	}
	// The slot is free again.
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, nowOn(t, f.s).Add(50*time.Minute)))
}

// C11 #112: a failed delivery is redelivered after the backoff (10 s); an
// accepted one is not.
func TestC11_112_Redelivery(t *testing.T) {
	f := newFixture(t)
	sk := newSink(t)
	sk.setAnswerFunc(func(n int) int {
		if n == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusAccepted
	})
	t0 := nowOn(t, f.s)
	f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
	f.mustSet(f.U2, "Busy", "InACall", "PT1H", "APPrw")
	first := sk.waitPosts(t, 1, deliveryWithin)[0]
	if first.Status != http.StatusInternalServerError {
		t.Fatalf("first delivery answered %d", first.Status)
	}
	// The backoff is service-clock time: nothing happens without an advance.
	advance(t, "PT9S")
	if n := len(sk.deliveries()); n != 1 {
		t.Errorf("%d POSTs 9 s after the failure, want 1 (backoff starts at 10 s, 4.9): %s", n, sk.dump())
	}
	advance(t, "PT1S")
	ds := sk.waitPosts(t, 2, deliveryWithin)
	if string(ds[1].Body) != string(first.Body) {
		t.Errorf("redelivery differs from the failed delivery:\n first %s\n again %s", first.Body, ds[1].Body)
	}
	advance(t, "PT10M")
	advance(t, "PT10M")
	if n := len(sk.deliveries()); n != 2 {
		t.Errorf("%d POSTs after the 202, want 2 (an accepted notification is not redelivered): %s", n, sk.dump())
	}
}

// C11 #114: reauthorize.
func TestC11_114_Reauthorize(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		sk := newSink(t)
		t0 := nowOn(t, f.s)
		sub := f.mustSubscribe("D1ra", subBody(userRes(f.U2), sk.URL, t0.Add(50*time.Minute)))
		id := sub.str("id")
		r := f.post(f.p("/subscriptions/%s/reauthorize", id), "D1ra", nil)
		wantStatus(t, r, http.StatusNoContent)
		if len(r.Body) != 0 {
			t.Errorf("%s: 204 with a body", r)
		}
		// It does not extend the expiry.
		g := f.get(f.p("/subscriptions/%s", id), "D1ra")
		if g.str("expirationDateTime") != sub.str("expirationDateTime") {
			t.Errorf("reauthorize changed expirationDateTime: %s -> %s", sub.str("expirationDateTime"), g.str("expirationDateTime"))
		}
		// The creator without Presence.Read.All cannot reauthorize.
		wantStatus(t, f.post(f.p("/subscriptions/%s/reauthorize", id), "D1r", nil), http.StatusForbidden)
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
