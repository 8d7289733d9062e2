// Package console serves the presenced console: a live web page, embedded in
// the binary, that shows a tenant's presence, its sessions and timers, its
// subscriptions and their webhook deliveries, the service's health, and (with
// --test-hooks) drives the emulator; and the read endpoints under
// /presenced/ that the page uses.
//
// Every endpoint but the page itself and /presenced/config needs a bearer
// token. A Graph token sees its own tenant only, authorized like Graph's bulk
// read (Presence.Read.All, delegated or application). An operator credential
// (a secret configured with --console-operator-token-file, off unless
// configured) sees any tenant, chosen per request with the
// X-Presenced-Tenant header or the tenant query parameter.
package console

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	presence "github.com/presenced/presenced"
)

//go:embed static
var static embed.FS

// Authenticator turns a bearer token into a verified Principal.
type Authenticator interface {
	Verify(ctx context.Context, raw string) (presence.Principal, error)
}

// DevTokenRequest asks for a development token, with the rules and defaults
// of `presenced token`.
type DevTokenRequest struct {
	Tenant string
	AppID  string
	// User, when set, makes a delegated token with Scopes; otherwise an
	// application token with Roles.
	User   string
	Scopes []string
	Roles  []string
	TTL    time.Duration
}

// Config is what the console reads from.
type Config struct {
	Service *presence.Service
	// Store is the presence store: the user list scans it.
	Store presence.Store
	Auth  Authenticator
	// Subscriptions lists what a Graph token may see; nil hides them.
	Subscriptions presence.Subscriptions
	// TenantSubscriptions lists every subscription of a tenant, for the
	// operator.
	TenantSubscriptions func(ctx context.Context, tenant string) ([]presence.Subscription, error)
	// Deliveries returns a subscription's recent delivery attempts, newest
	// first.
	Deliveries func(ctx context.Context, subscription string) ([]presence.DeliveryAttempt, error)
	// Gatherer is the registry /metrics serves; health reads the same
	// figures from it.
	Gatherer prometheus.Gatherer
	// Node names this presenced (its --node-id); StoreKind is file,
	// memory, ...
	Node, StoreKind string
	// DevAuth reports development auth mode; MintDevToken mints a token
	// then (nil otherwise).
	DevAuth      bool
	MintDevToken func(DevTokenRequest) (string, error)
	// DevTenant and DevApp are the defaults of a development token.
	DevTenant, DevApp string
	// TestHooks reports that /_test/ is mounted.
	TestHooks bool
	// OperatorSecret is the operator credential; empty turns it off.
	OperatorSecret string
	// WriteError answers an error in Graph's envelope.
	WriteError func(w http.ResponseWriter, r *http.Request, err error)
	Logger     *slog.Logger
}

// Console is the console's handlers.
type Console struct {
	cfg      Config
	operator [32]byte // sha256 of the operator secret
	done     chan struct{}
	once     sync.Once
	started  time.Time
}

// New returns the console; mount it with Register.
func New(cfg Config) *Console {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, done: make(chan struct{}), started: time.Now()}
	if cfg.OperatorSecret != "" {
		c.operator = sha256.Sum256([]byte(cfg.OperatorSecret))
	}
	return c
}

// Register mounts the console's routes on mux: the page under
// /presenced/console/ and its read endpoints under /presenced/.
func (c *Console) Register(mux *http.ServeMux) {
	sub, _ := fs.Sub(static, "static")
	files := http.StripPrefix("/presenced/console/", http.FileServerFS(sub))
	mux.Handle("GET /presenced/console/", securityHeaders(files))
	mux.Handle("GET /presenced/console", http.RedirectHandler("/presenced/console/", http.StatusMovedPermanently))
	mux.Handle("GET /presenced/config", c.h(c.config, false))
	if c.cfg.DevAuth && c.cfg.MintDevToken != nil {
		mux.Handle("POST /presenced/dev/token", c.h(c.devToken, false))
	}
	mux.Handle("GET /presenced/whoami", c.h(c.whoami, true))
	mux.Handle("GET /presenced/tenants", c.h(c.tenants, true))
	mux.Handle("GET /presenced/users", c.h(c.listUsers, true))
	mux.Handle("GET /presenced/users/{id}", c.h(c.getUser, true))
	mux.Handle("GET /presenced/subscriptions", c.h(c.listSubscriptions, true))
	mux.Handle("GET /presenced/subscriptions/{id}/deliveries", c.h(c.deliveries, true))
	mux.Handle("GET /presenced/health", c.h(c.health, true))
	mux.Handle("GET /presenced/events", c.h(c.events, true))
}

// Close ends every event stream (the server calls it as it shuts down).
func (c *Console) Close() { c.once.Do(func() { close(c.done) }) }

// securityHeaders keeps the page from being framed or fed foreign scripts.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// viewer is who calls an endpoint: a Graph principal, or the operator
// looking at Tenant (empty until one is chosen).
type viewer struct {
	presence.Principal
	Operator bool
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, v viewer) error

// h wraps a handler: it authenticates the caller when auth is set, and
// answers errors in Graph's envelope.
func (c *Console) h(fn handlerFunc, auth bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		// The ids every Graph answer carries; an error's envelope repeats
		// them (WriteError sets its own pair).
		id := presence.NewGUID()
		hd.Set("Request-Id", id)
		if crid := r.Header.Get("Client-Request-Id"); crid != "" {
			hd.Set("Client-Request-Id", crid)
		} else {
			hd.Set("Client-Request-Id", id)
		}
		hd.Set("Odata-Version", "4.0")
		var v viewer
		if auth {
			var err error
			if v, err = c.authenticate(r); err != nil {
				c.cfg.WriteError(w, r, err)
				return
			}
		}
		if err := fn(w, r, v); err != nil {
			c.cfg.WriteError(w, r, err)
		}
	})
}

func (c *Console) authenticate(r *http.Request) (viewer, error) {
	h := r.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h == "" || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return viewer{}, presence.Errorf(presence.CodeInvalidAuthenticationToken, "Access token is empty.")
	}
	if c.cfg.OperatorSecret != "" {
		sum := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(sum[:], c.operator[:]) == 1 {
			v := viewer{Operator: true}
			tenant := r.Header.Get("X-Presenced-Tenant")
			if tenant == "" {
				tenant = r.URL.Query().Get("tenant")
			}
			if tenant != "" {
				t, ok := presence.CanonicalGUID(tenant)
				if !ok {
					return viewer{}, presence.Errorf(presence.CodeBadRequest, "Invalid tenant identifier '%s'.", tenant)
				}
				v.Tenant = t
			}
			return v, nil
		}
	}
	p, err := c.cfg.Auth.Verify(r.Context(), token)
	if err != nil {
		return viewer{}, err
	}
	return viewer{Principal: p}, nil
}

// mayReadTenant decides whether v may read the presence of every user of
// its tenant: the operator once a tenant is chosen, a Graph token with the
// bulk read's permissions.
func (v viewer) mayReadTenant() error {
	if v.Operator {
		if v.Tenant == "" {
			return presence.Errorf(presence.CodeBadRequest, "Choose a tenant with the X-Presenced-Tenant header or the tenant query parameter.")
		}
		return nil
	}
	return v.CanReadMany()
}

// writeJSON answers 200 with v as JSON.
func writeJSON(w http.ResponseWriter, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, err = w.Write(body)
	return err
}

// config tells the page what this presenced offers; it needs no token.
func (c *Console) config(w http.ResponseWriter, _ *http.Request, _ viewer) error {
	return writeJSON(w, map[string]any{
		"devAuth":   c.cfg.DevAuth,
		"testHooks": c.cfg.TestHooks,
		"operator":  c.cfg.OperatorSecret != "",
		"devTenant": c.cfg.DevTenant,
		"devApp":    c.cfg.DevApp,
		"now":       c.cfg.Service.Clock().Now(),
	})
}

// whoami describes the caller, so the page can say whose view it shows.
func (c *Console) whoami(w http.ResponseWriter, _ *http.Request, v viewer) error {
	out := map[string]any{"operator": v.Operator, "tenant": v.Tenant}
	if !v.Operator {
		out["user"] = v.User
		out["appId"] = v.AppID
		out["delegated"] = v.Delegated
		out["scopes"] = v.Scopes
		out["roles"] = v.Roles
		if v.ExpiresAt != 0 {
			out["expiresAt"] = time.Unix(v.ExpiresAt, 0).UTC()
		}
		out["mayReadTenant"] = v.CanReadMany() == nil
	} else {
		out["mayReadTenant"] = v.Tenant != ""
	}
	return writeJSON(w, out)
}
