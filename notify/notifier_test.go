package notify

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
)

const (
	tTenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
	tApp    = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	tUser1  = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	tUser2  = "66825e03-7ef5-42da-9069-724602c31f6b"
)

// sink is a TLS webhook receiver that echoes handshakes and records
// notification bodies; status decides its answer to deliveries.
type sink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
	status int
}

func newSink(t *testing.T) *sink {
	s := &sink{status: http.StatusAccepted}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, tok)
			return
		}
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.bodies = append(s.bodies, body)
		w.WriteHeader(s.status)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.bodies)
}

func (s *sink) answer(status int) {
	s.mu.Lock()
	s.status = status
	s.mu.Unlock()
}

type harness struct {
	t     *testing.T
	clock *presence.TestClock
	svc   *presence.Service
	n     *Notifier
	sink  *sink
}

func newHarness(t *testing.T) *harness {
	clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
	svc := presence.NewService(memstore.New(), clock, nil)
	sk := newSink(t)
	n, err := New(Config{Service: svc, Client: sk.srv.Client(), Issuer: "https://presenced.test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return &harness{t: t, clock: clock, svc: svc, n: n, sink: sk}
}

func (h *harness) subscribe(users ...string) presence.Subscription {
	h.t.Helper()
	p := presence.Principal{Tenant: tTenant, User: tUser1, AppID: tApp, Delegated: true, Scopes: []string{"Presence.Read.All"}}
	str := func(s string) *string { return &s }
	resource := "communications/presences/" + users[0]
	if len(users) > 1 {
		resource = "communications/presences?$filter=id in ('" + users[0] + "','" + users[1] + "')"
	}
	sub, err := h.n.Create(context.Background(), p, presence.SubscriptionRequest{
		ChangeType: str("updated"), NotificationURL: str(h.sink.srv.URL + "/hook"), Resource: str(resource),
		ExpirationDateTime: str(h.clock.Now().Add(time.Hour).Format(time.RFC3339)), ClientState: str("cs"),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return sub
}

func (h *harness) set(user, av, ac string) {
	h.t.Helper()
	d := time.Hour
	if _, err := h.svc.Do(context.Background(), presence.Key{Tenant: tTenant, User: user},
		&presence.SetPresence{CallerApp: tApp, SessionID: tApp, Availability: av, Activity: ac, Expiration: &d}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	h.clock.Advance(d)
	if _, err := h.svc.Fire(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	if err := h.n.Flush(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) outbox(user string) []presence.Notice {
	box, err := h.svc.Outbox(context.Background(), presence.Key{Tenant: tTenant, User: user})
	if err != nil {
		h.t.Fatal(err)
	}
	return box
}

func TestDeliverRetryAndTrim(t *testing.T) {
	h := newHarness(t)
	h.subscribe(tUser1)
	h.sink.answer(http.StatusInternalServerError)
	h.set(tUser1, "Busy", "InACall")
	h.advance(0)
	if h.sink.count() != 1 || len(h.outbox(tUser1)) != 1 {
		t.Fatalf("after a failed delivery: %d posts, outbox %v", h.sink.count(), h.outbox(tUser1))
	}
	h.advance(9 * time.Second) // the first retry waits 10 s
	if h.sink.count() != 1 {
		t.Fatalf("retried before the backoff: %d posts", h.sink.count())
	}
	h.sink.answer(http.StatusAccepted)
	h.advance(time.Second)
	if h.sink.count() != 2 {
		t.Fatalf("no retry after the backoff: %d posts", h.sink.count())
	}
	h.advance(0)
	if box := h.outbox(tUser1); len(box) != 0 {
		t.Fatalf("delivered notice still in the outbox: %v", box)
	}
	h.advance(time.Minute)
	if h.sink.count() != 2 {
		t.Fatalf("delivered twice: %d posts", h.sink.count())
	}
}

func TestDeliverGivesUpAfterFourHours(t *testing.T) {
	h := newHarness(t)
	h.n.cfg.MaxLifetime = 24 * time.Hour
	h.subscribe(tUser1)
	h.sink.answer(http.StatusServiceUnavailable)
	h.set(tUser1, "Busy", "InACall")
	h.advance(0)
	for i := 0; i < 40; i++ { // 10 min steps: the backoff is capped there
		h.advance(10 * time.Minute)
	}
	posts := h.sink.count()
	if len(h.outbox(tUser1)) != 0 {
		t.Fatalf("a notice failing for 4 hours is still pending")
	}
	h.advance(time.Hour)
	if h.sink.count() != posts {
		t.Fatalf("delivered after it was dropped")
	}
}

func TestSlowEndpointRules(t *testing.T) {
	for _, tt := range []struct {
		name       string
		slow       int
		wantPosts  int
		wantQueued bool
	}{
		{"fast", 0, 1, false},
		{"ten percent slow is delayed", 10, 0, true},
		{"fifteen percent slow is dropped", 15, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			sub := h.subscribe(tUser1)
			h.n.d.mu.Lock()
			h.n.d.endpoints[sub.NotificationURL] = &endpoint{count: 100, slow: tt.slow, since: h.clock.Now()}
			h.n.d.mu.Unlock()
			h.set(tUser1, "Busy", "InACall")
			h.advance(0)
			if h.sink.count() != tt.wantPosts || (len(h.outbox(tUser1)) > 0) != tt.wantQueued {
				t.Fatalf("%d posts, outbox %v", h.sink.count(), h.outbox(tUser1))
			}
		})
	}
}

func TestBulkSubscriptionOrderAndDelete(t *testing.T) {
	h := newHarness(t)
	sub := h.subscribe(tUser1, tUser2)
	h.set(tUser2, "Busy", "InACall")
	h.set(tUser2, "Away", "Away")
	h.set(tUser1, "Busy", "InAConferenceCall")
	h.advance(0)
	var resources []string
	for _, b := range h.sink.bodies {
		for _, v := range b["value"].([]any) {
			resources = append(resources, v.(map[string]any)["resource"].(string))
		}
	}
	if len(resources) != 3 {
		t.Fatalf("resources %v", resources)
	}
	p := presence.Principal{Tenant: tTenant, User: tUser1, AppID: tApp, Delegated: true, Scopes: []string{"Presence.Read.All"}}
	per := map[string]int{}
	for _, r := range resources {
		per[r]++
	}
	if per["communications/presences/"+tUser2] != 2 || per["communications/presences/"+tUser1] != 1 {
		t.Fatalf("resources %v", resources)
	}
	if err := h.n.Delete(context.Background(), p, sub.ID); err != nil {
		t.Fatal(err)
	}
	posts := h.sink.count()
	h.set(tUser2, "Busy", "InACall")
	h.advance(time.Minute)
	if h.sink.count() != posts {
		t.Fatalf("delivered after delete: %d posts, then %d", posts, h.sink.count())
	}
	if h.n.Watching(presence.Key{Tenant: tTenant, User: tUser2}) {
		t.Fatal("a deleted subscription still watches its users")
	}
}

// TestRotatedCertificateEncrypts checks 4.4's certificate rotation: after a
// PATCH changes encryptionCertificate and encryptionCertificateId, rich
// notifications are encrypted for the new certificate, under its id and
// thumbprint.
func TestRotatedCertificateEncrypts(t *testing.T) {
	h := newHarness(t)
	keyB := mustRSA(2048)
	keys := map[string]*rsa.PrivateKey{"a": rsa2048(), "b": keyB}
	certA := base64.StdEncoding.EncodeToString(receiverCert(t))
	certB := base64.StdEncoding.EncodeToString(makeCert(t, 2, &keyB.PublicKey, keyB))
	p := presence.Principal{Tenant: tTenant, User: tUser1, AppID: tApp, Delegated: true, Scopes: []string{"Presence.Read.All"}}
	str := func(s string) *string { return &s }
	rich := true
	sub, err := h.n.Create(context.Background(), p, presence.SubscriptionRequest{
		ChangeType: str("updated"), NotificationURL: str(h.sink.srv.URL + "/hook"), Resource: str("communications/presences/" + tUser1),
		ExpirationDateTime:  str(h.clock.Now().Add(time.Hour).Format(time.RFC3339)),
		IncludeResourceData: &rich, EncryptionCertificate: &certA, EncryptionCertificateID: str("a"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// check decrypts the last notification and returns its certificate id.
	check := func(wantActivity string) string {
		t.Helper()
		h.sink.mu.Lock()
		last := h.sink.bodies[len(h.sink.bodies)-1]
		h.sink.mu.Unlock()
		raw, _ := json.Marshal(last["value"].([]any)[0].(map[string]any)["encryptedContent"])
		var ec EncryptedContent
		if err := json.Unmarshal(raw, &ec); err != nil {
			t.Fatal(err)
		}
		plain, err := receive(keys, ec)
		if err != nil {
			t.Fatalf("certificate %q: %v", ec.EncryptionCertificateID, err)
		}
		var data struct{ Activity string }
		if err := json.Unmarshal(plain, &data); err != nil || data.Activity != wantActivity {
			t.Fatalf("decrypted %s, want activity %s", plain, wantActivity)
		}
		want, err := ParseEncryptionCertificate(map[string]string{"a": certA, "b": certB}[ec.EncryptionCertificateID])
		if err != nil || ec.EncryptionCertificateThumbprint != want.Thumbprint {
			t.Fatalf("thumbprint %s of certificate %q, want %v (%v)", ec.EncryptionCertificateThumbprint, ec.EncryptionCertificateID, want, err)
		}
		return ec.EncryptionCertificateID
	}
	h.set(tUser1, "Busy", "InACall")
	h.advance(0)
	if id := check("InACall"); id != "a" {
		t.Fatalf("before the rotation: certificate %q, want a", id)
	}
	if _, err := h.n.Update(context.Background(), p, sub.ID, presence.SubscriptionRequest{
		EncryptionCertificate: &certB, EncryptionCertificateID: str("b"),
	}); err != nil {
		t.Fatal(err)
	}
	h.set(tUser1, "Away", "Away")
	h.advance(0)
	if id := check("Away"); id != "b" {
		t.Fatalf("after the rotation: certificate %q, want b", id)
	}
	// The deliverer keeps the parsed certificate only while the
	// subscription lives.
	if err := h.n.Delete(context.Background(), p, sub.ID); err != nil {
		t.Fatal(err)
	}
	h.n.d.mu.Lock()
	defer h.n.d.mu.Unlock()
	if len(h.n.d.certs) != 0 {
		t.Errorf("certificates kept after the delete: %v", h.n.d.certs)
	}
}
