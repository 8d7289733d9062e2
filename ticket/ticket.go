// Package ticket lets a browser authenticate where it cannot send an
// Authorization header (a WebSocket, an EventSource): with its bearer token
// it asks POST /presenced/tickets for a ticket, a random, single-use name
// for its verified principal that expires within a minute, and puts the
// ticket in the URL it opens. The bearer token itself never appears in a
// URL. Tickets live in a Store: in memory on one node, or in a shared store
// when several nodes serve the same clients.
package ticket

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	presence "github.com/presenced/presenced"
)

// MaxLifetime is how long a ticket is valid at most.
const MaxLifetime = 60 * time.Second

// Store keeps issued tickets until they are redeemed or expire.
// Implementations must be safe for concurrent use.
type Store interface {
	// Put keeps p under id until expires. It fails with
	// presence.CodeTooManyRequests when the store is full.
	Put(ctx context.Context, id string, p presence.Principal, expires time.Time) error
	// Take removes the ticket id and returns its principal, if it was there
	// and had not expired at now.
	Take(ctx context.Context, id string, now time.Time) (presence.Principal, bool, error)
}

// Memory is a Store in the memory of one process, bounded in size.
type Memory struct {
	mu      sync.Mutex
	max     int
	tickets map[string]memTicket
}

type memTicket struct {
	p       presence.Principal
	expires time.Time
}

// NewMemory returns a Memory holding at most max unexpired tickets (10,000
// for max <= 0).
func NewMemory(max int) *Memory {
	if max <= 0 {
		max = 10000
	}
	return &Memory{max: max, tickets: make(map[string]memTicket)}
}

// Put implements Store.
func (m *Memory) Put(_ context.Context, id string, p presence.Principal, expires time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.tickets) >= m.max {
		m.pruneLocked(expires.Add(-MaxLifetime))
	}
	if len(m.tickets) >= m.max {
		return presence.Errorf(presence.CodeTooManyRequests, "Too many tickets are outstanding; redeem or let some expire first.")
	}
	m.tickets[id] = memTicket{p: p, expires: expires}
	return nil
}

// Take implements Store.
func (m *Memory) Take(_ context.Context, id string, now time.Time) (presence.Principal, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tickets[id]
	if !ok {
		return presence.Principal{}, false, nil
	}
	delete(m.tickets, id)
	if !now.Before(t.expires) {
		return presence.Principal{}, false, nil
	}
	return t.p, true, nil
}

// Len returns how many tickets are kept, expired ones not yet pruned
// included.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tickets)
}

func (m *Memory) pruneLocked(now time.Time) {
	for id, t := range m.tickets {
		if !now.Before(t.expires) {
			delete(m.tickets, id)
		}
	}
}

// Authenticator turns a bearer token into a verified Principal.
type Authenticator interface {
	Verify(ctx context.Context, raw string) (presence.Principal, error)
}

// Issuer issues and redeems tickets on the service clock.
type Issuer struct {
	Store Store
	Clock presence.Clock
	// Lifetime is a ticket's lifetime (MaxLifetime when zero or more).
	Lifetime time.Duration
}

// Issue mints a ticket for p, which expires after the issuer's lifetime or
// with p's token, whichever comes first.
func (is *Issuer) Issue(ctx context.Context, p presence.Principal) (string, time.Time, error) {
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", time.Time{}, err
	}
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	life := is.Lifetime
	if life <= 0 || life > MaxLifetime {
		life = MaxLifetime
	}
	now := is.Clock.Now()
	expires := now.Add(life)
	if p.ExpiresAt > 0 {
		// The token's life is counted on the real clock (as its verifier
		// does), the ticket's on the service clock.
		if left := time.Until(time.Unix(p.ExpiresAt, 0)); left < life {
			expires = now.Add(max(left, 0))
		}
	}
	if err := is.Store.Put(ctx, id, p, expires); err != nil {
		return "", time.Time{}, err
	}
	return id, expires, nil
}

// errBadTicket is the answer to a ticket unknown, used or expired; it says
// no more, so that it tells an attacker nothing.
var errBadTicket = presence.Errorf(presence.CodeInvalidAuthenticationToken, "The ticket is invalid, used or expired.")

// Redeem takes the ticket and returns its principal; a ticket is good once.
func (is *Issuer) Redeem(ctx context.Context, id string) (presence.Principal, error) {
	if id == "" || len(id) > 64 {
		return presence.Principal{}, errBadTicket
	}
	p, ok, err := is.Store.Take(ctx, id, is.Clock.Now())
	if err != nil {
		return presence.Principal{}, err
	}
	if !ok {
		return presence.Principal{}, errBadTicket
	}
	return p, nil
}

// BearerToken returns the token of an "Authorization: Bearer" header, or an
// InvalidAuthenticationToken error.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h == "" || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", presence.Errorf(presence.CodeInvalidAuthenticationToken, "Access token is empty.")
	}
	return token, nil
}

// Authenticate returns the caller of r: from its bearer token, or, when it
// has none, from the ticket in its "ticket" query parameter.
func (is *Issuer) Authenticate(r *http.Request, auth Authenticator) (presence.Principal, error) {
	if r.Header.Get("Authorization") == "" {
		if t := r.URL.Query().Get("ticket"); t != "" {
			return is.Redeem(r.Context(), t)
		}
	}
	token, err := BearerToken(r)
	if err != nil {
		return presence.Principal{}, err
	}
	return auth.Verify(r.Context(), token)
}

// Handler serves POST /presenced/tickets: the caller's bearer token buys a
// ticket for the same principal, answered as
// {"ticket": "...", "expirationDateTime": "..."}.
func Handler(is *Issuer, auth Authenticator, writeError func(http.ResponseWriter, *http.Request, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := BearerToken(r)
		if err != nil {
			writeError(w, r, err)
			return
		}
		p, err := auth.Verify(r.Context(), token)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if p.Personal {
			writeError(w, r, presence.Errorf(presence.CodeForbidden, "Personal Microsoft accounts are not supported for presence."))
			return
		}
		id, expires, err := is.Issue(r.Context(), p)
		if err != nil {
			var pe *presence.Error
			if !errors.As(err, &pe) {
				err = presence.Errorf(presence.CodeInternal, "The ticket could not be issued.")
			}
			writeError(w, r, err)
			return
		}
		body, _ := json.Marshal(map[string]string{
			"ticket":             id,
			"expirationDateTime": expires.UTC().Format(presence.GraphTimeLayout),
		})
		h := w.Header()
		rid := presence.NewGUID()
		crid := r.Header.Get("client-request-id")
		if crid == "" {
			crid = rid
		}
		h.Set("request-id", rid)
		h.Set("client-request-id", crid)
		h.Set("OData-Version", "4.0")
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write(body)
	})
}
