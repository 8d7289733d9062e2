package graphapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/graphapi"
	"github.com/presenced/presenced/memstore"
	"github.com/presenced/presenced/notify"
)

// FuzzSubscriptionBodies sends arbitrary bodies to POST /subscriptions and
// PATCH /subscriptions/{id}, served by the real notifier with a receiver
// that answers the validation handshake: every answer must be a success or
// a Graph error, never a 5xx or a panic.
func FuzzSubscriptionBodies(f *testing.F) {
	auth := twoUsers{
		"good":    {Tenant: tenant, User: userU1, AppID: appA, Delegated: true, Scopes: []string{"Presence.Read.All"}},
		"patcher": {Tenant: tenant, User: presence.NewGUID(), AppID: appA, Delegated: true, Scopes: []string{"Presence.Read.All"}},
	}
	h := newNotifying(f, auth)
	rx, clock, srv := h.rx, h.clock, h.srv
	exp := clock.Now().Add(50 * time.Minute).Format(time.RFC3339)
	send := func(method, path, token string, body []byte) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		return rec
	}
	// The subscription a PATCH input goes to, of another user than the
	// POSTs': made anew for each such input and deleted after it, so that
	// no input sees what an earlier one did to it.
	target := []byte(`{"changeType":"updated","notificationUrl":"` + rx.URL + `/hook","resource":"/communications/presences/` + userU1 + `","expirationDateTime":"` + exp + `"}`)
	for _, s := range []string{
		`{"changeType":"updated","notificationUrl":"` + rx.URL + `/hook","resource":"/communications/presences/` + userU1 + `","expirationDateTime":"` + exp + `","clientState":"cs"}`,
		`{"changeType":"updated","notificationUrl":"` + rx.URL + `/hook","resource":"communications/presences?$filter=id in ('` + userU1 + `')","expirationDateTime":"` + exp + `"}`,
		`{"changeType":"created","notificationUrl":"http://x","resource":"/me/presence","expirationDateTime":"2020-01-01T00:00:00Z"}`,
		`{"includeResourceData":true,"encryptionCertificate":"AAAA","encryptionCertificateId":"1"}`,
		`{"expirationDateTime":"` + exp + `"}`, `{"":1}`, `{"clientState@odata.type":"#String"}`, `{}`, `[]`, `null`,
		`{"notificationUrl":"https://127.0.0.1:1/x?validationToken=1","vapidPublicKey":"k"}`,
	} {
		f.Add(false, []byte(s))
		f.Add(true, []byte(s))
	}
	f.Fuzz(func(t *testing.T, patch bool, body []byte) {
		del := func(id, token string) {
			t.Helper()
			if rec := send(http.MethodDelete, "/v1.0/subscriptions/"+id, token, nil); rec.Code != http.StatusNoContent {
				t.Fatalf("DELETE of a created subscription: %d %s", rec.Code, rec.Body)
			}
		}
		if patch {
			rec := send(http.MethodPost, "/v1.0/subscriptions", "patcher", target)
			if rec.Code != http.StatusCreated {
				t.Fatalf("creating the subscription to patch: %d %s", rec.Code, rec.Body)
			}
			id := createdID(rec.Body.Bytes())
			rec = send(http.MethodPatch, "/v1.0/subscriptions/"+id, "patcher", body)
			checkResponse(t, rec)
			del(id, "patcher")
			return
		}
		rec := send(http.MethodPost, "/v1.0/subscriptions", "good", body)
		checkResponse(t, rec)
		if rec.Code == http.StatusCreated {
			// Free the (user, app) slot for the next input.
			del(createdID(rec.Body.Bytes()), "good")
		}
	})
}

// twoUsers accepts each token it holds as its principal.
type twoUsers map[string]presence.Principal

func (a twoUsers) Verify(_ context.Context, raw string) (presence.Principal, error) {
	p, ok := a[raw]
	if !ok {
		return presence.Principal{}, presence.Errorf(presence.CodeInvalidAuthenticationToken, "Access token validation failure.")
	}
	return p, nil
}

// createdID is the id of the subscription a 201 answered.
func createdID(body []byte) string {
	var sub struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &sub)
	return sub.ID
}

// notifying is a graphapi server whose subscriptions are the real
// notifier's, over an in-memory service on a test clock, with a TLS
// receiver that answers every validation handshake.
type notifying struct {
	rx    *httptest.Server
	clock *presence.TestClock
	n     *notify.Notifier
	srv   *graphapi.Server
}

func newNotifying(tb testing.TB, auth graphapi.Authenticator) *notifying {
	tb.Helper()
	h := &notifying{clock: presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))}
	h.rx = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, r.URL.Query().Get("validationToken"))
	}))
	tb.Cleanup(h.rx.Close)
	svc := presence.NewService(memstore.New(), h.clock, nil)
	// Whatever host a notificationUrl names, the handshake goes to the
	// receiver: a fuzzed URL never makes a test resolve a name or leave
	// the loopback, and never waits for the 10 s validation timeout (which
	// Go's fuzzer would take for a hung worker).
	client := h.rx.Client()
	tr := client.Transport.(*http.Transport).Clone()
	rxAddr := h.rx.Listener.Addr().String()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, rxAddr)
	}
	client.Transport = tr
	n, err := notify.New(notify.Config{Service: svc, Client: client, Issuer: "https://presenced.test", ValidationTimeout: 2 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = n.Close() })
	h.n = n
	if h.srv, err = graphapi.NewServer(graphapi.Config{Service: svc, Subscriptions: n, Auth: auth, MaxBodyBytes: 64 << 10}); err != nil {
		tb.Fatal(err)
	}
	return h
}
