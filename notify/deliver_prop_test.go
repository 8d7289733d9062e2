package notify

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
	"pgregory.net/rapid"
)

// countingSink is a webhook receiver of rich notifications that records,
// per user, the sequence numbers it accepted, in the order they came; it
// answers 500 while failing.
type countingSink struct {
	srv     *httptest.Server
	mu      sync.Mutex
	failing bool
	got     map[string][]string
	bad     []string // notifications that did not decrypt
}

func newCountingSink(t *testing.T) *countingSink {
	s := &countingSink{got: map[string][]string{}}
	keys := map[string]*rsa.PrivateKey{"k1": rsa2048()}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.URL.Query().Get("validationToken"); tok != "" {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, tok)
			return
		}
		var body struct {
			Value []struct {
				ResourceData struct {
					ID string `json:"id"`
				} `json:"resourceData"`
				EncryptedContent EncryptedContent `json:"encryptedContent"`
			} `json:"value"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.failing {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		for _, v := range body.Value {
			var data struct {
				ID             string `json:"id"`
				SequenceNumber string `json:"sequenceNumber"`
			}
			plain, err := receive(keys, v.EncryptedContent)
			if err == nil {
				err = json.Unmarshal(plain, &data)
			}
			if err != nil || data.ID != v.ResourceData.ID {
				s.bad = append(s.bad, v.ResourceData.ID)
				continue
			}
			s.got[data.ID] = append(s.got[data.ID], data.SequenceNumber)
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *countingSink) setFailing(f bool) {
	s.mu.Lock()
	s.failing = f
	s.mu.Unlock()
}

// sequence returns the sequence numbers accepted for user, in arrival
// order, and the notifications that did not decrypt.
func (s *countingSink) sequence(user string) (seqs, bad []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got[user]), slices.Clone(s.bad)
}

// TestDeliveryProperties drives the deliverer's steps by hand in random
// interleavings: changes of two subscribed users (by the API and by the
// clock's fades), drains (some with a trim ending between the outbox read
// and the queueing), deliveries, trims, a receiver that fails and heals,
// and clock advances that bring retries due. Once the receiver is healthy
// and everything due has run, the rich notifications accepted for each
// user must carry the sequence number of each of its changes exactly once
// and in order, every outbox must be empty, and the deliverer must hold
// nothing for anyone.
func TestDeliveryProperties(t *testing.T) {
	users := []string{tUser1, tUser2}
	rapid.Check(t, func(rt *rapid.T) {
		ctx := context.Background()
		clock := presence.NewTestClock(time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC))
		svc := presence.NewService(memstore.New(), clock, nil)
		sk := newCountingSink(t)
		n, err := New(Config{Service: svc, Client: sk.srv.Client(), Issuer: "https://presenced.test", MaxLifetime: 48 * time.Hour})
		if err != nil {
			rt.Fatal(err)
		}
		defer n.Close()
		events, cancel := svc.Subscribe(1 << 16)
		defer cancel()
		p := presence.Principal{Tenant: tTenant, User: tUser1, AppID: tApp, Delegated: true, Scopes: []string{"Presence.Read.All"}}
		str := func(s string) *string { return &s }
		rich, cert := true, base64.StdEncoding.EncodeToString(receiverCert(t))
		if _, err := n.Create(ctx, p, presence.SubscriptionRequest{
			ChangeType: str("updated"), NotificationURL: str(sk.srv.URL + "/hook"),
			Resource:            str("communications/presences?$filter=id in ('" + tUser1 + "','" + tUser2 + "')"),
			ExpirationDateTime:  str(clock.Now().Add(47 * time.Hour).Format(time.RFC3339)),
			IncludeResourceData: &rich, EncryptionCertificate: &cert, EncryptionCertificateID: str("k1"),
		}); err != nil {
			rt.Fatal(err)
		}
		start := clock.Now()
		d := n.d
		pairs := [][2]string{{"Available", "Available"}, {"Busy", "InACall"}, {"Away", "Away"}}

		rt.Repeat(map[string]func(*rapid.T){
			"change": func(rt *rapid.T) {
				u := rapid.SampledFrom(users).Draw(rt, "user")
				pr := rapid.SampledFrom(pairs).Draw(rt, "pair")
				exp := time.Hour
				if _, err := svc.Do(ctx, presence.Key{Tenant: tTenant, User: u},
					&presence.SetPresence{CallerApp: tApp, SessionID: tApp, Availability: pr[0], Activity: pr[1], Expiration: &exp}); err != nil {
					rt.Fatal(err)
				}
			},
			"drain": func(rt *rapid.T) {
				if rapid.Bool().Draw(rt, "trimInside") {
					d.afterOutboxRead = func() { d.afterOutboxRead = nil; d.trimAll(ctx) }
				}
				d.drain(ctx)
				d.afterOutboxRead = nil
			},
			"deliver": func(rt *rapid.T) {
				for _, q := range d.due(true) {
					d.deliver(ctx, q)
				}
			},
			"trim": func(rt *rapid.T) { d.trimAll(ctx) },
			"receiver": func(rt *rapid.T) {
				sk.setFailing(rapid.Bool().Draw(rt, "failing"))
			},
			"advance": func(rt *rapid.T) {
				if clock.Now().Sub(start) > 40*time.Hour {
					return
				}
				clock.Advance(rapid.SampledFrom([]time.Duration{time.Second, 10 * time.Second, 3 * time.Minute, 11 * time.Minute}).Draw(rt, "by"))
				if _, err := svc.Fire(ctx); err != nil {
					rt.Fatal(err)
				}
			},
		})

		// Heal, and let every retry come due (backoffs are at most 10 min).
		sk.setFailing(false)
		for range 3 {
			clock.Advance(10 * time.Minute)
			if _, err := svc.Fire(ctx); err != nil {
				rt.Fatal(err)
			}
			if err := n.Flush(ctx); err != nil {
				rt.Fatal(err)
			}
		}
		want := map[string][]string{}
		for more := true; more; {
			select {
			case ev := <-events:
				want[ev.Key.User] = append(want[ev.Key.User], ev.After.SequenceNumber())
			default:
				more = false
			}
		}
		for _, u := range users {
			got, bad := sk.sequence(u)
			if len(bad) > 0 {
				rt.Fatalf("notifications that do not decrypt, of users %v", bad)
			}
			if !slices.Equal(got, want[u]) {
				rt.Fatalf("user %s: accepted sequence numbers %v, want each change's once and in order: %v", u, got, want[u])
			}
			box, err := svc.Outbox(ctx, presence.Key{Tenant: tTenant, User: u})
			if err != nil {
				rt.Fatal(err)
			}
			if len(box) != 0 {
				rt.Fatalf("user %s: outbox %v after every delivery", u, box)
			}
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.depth != 0 || len(d.boxes) != 0 {
			rt.Fatalf("deliverer still holds %d queued notices and %d boxes", d.depth, len(d.boxes))
		}
	})
}
