// Package testhooks serves the /_test/ controls that make presenced a
// deterministic Graph emulator: the test clock, the throttling budget, and
// the signals Microsoft's service takes from elsewhere (Teams clients,
// out-of-office, calendar, licensing). It is mounted only with --test-hooks.
package testhooks

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/graphapi"
)

// Config is what the hooks control.
type Config struct {
	Service *presence.Service
	// Clock is the service clock the hooks move (the Service's own).
	Clock Clock
	// SetRateLimit changes the presence budget per 30 s per (app, tenant).
	SetRateLimit func(n int)
	// SetThrottleWindow, if set, changes the throttling window (30 s).
	SetThrottleWindow func(d time.Duration)
	// AfterAdvance, if set, runs after the clock moved and the scheduler
	// fired, so that what the clock made due elsewhere (webhook retries,
	// subscription lifetimes) happens before the answer too.
	AfterAdvance func(ctx context.Context) error
	// BeforeAdvance, if set, runs before the clock moves to until, so that
	// what is renewed while time passes (the leases of open client
	// connections) is renewed past it.
	BeforeAdvance func(ctx context.Context, until time.Time) error
	// WriteError answers an error in Graph's envelope.
	WriteError func(w http.ResponseWriter, r *http.Request, err error)
	// ResetSubscriptions, if set, forgets the subscriptions and deliveries
	// of a tenant (of every tenant when it is empty); POST /_test/reset
	// calls it before forgetting the users.
	ResetSubscriptions func(ctx context.Context, tenant string) error
}

// Clock is the test clock: it moves only through the hooks, forward only.
// Advance and Set return once the new instant is durable (when the clock
// is), so a restart never resumes before an instant a caller was told.
type Clock interface {
	Now() time.Time
	Advance(ctx context.Context, d time.Duration) (time.Time, error)
	Set(ctx context.Context, t time.Time) (time.Time, error)
}

// NewHandler returns the /_test/ handler.
func NewHandler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	h := func(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if err := fn(w, r); err != nil {
				cfg.WriteError(w, r, err)
			}
		}
	}
	mux.Handle("GET /_test/clock", h(func(w http.ResponseWriter, r *http.Request) error {
		return writeNow(w, cfg.Clock.Now())
	}))
	mux.Handle("POST /_test/clock/advance", h(func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			By *string `json:"by"`
		}
		if err := decode(r, &body); err != nil {
			return err
		}
		if body.By == nil {
			return presence.Errorf(presence.CodeBadRequest, "The member 'by' (an ISO 8601 duration) is required.")
		}
		d, err := presence.ParseDuration(*body.By)
		if err != nil {
			return err
		}
		if err := clockReach(cfg.Clock.Now().Add(d)); err != nil {
			return err
		}
		if cfg.BeforeAdvance != nil && d > 0 {
			if err := cfg.BeforeAdvance(r.Context(), cfg.Clock.Now().Add(d)); err != nil {
				return err
			}
		}
		now, err := cfg.Clock.Advance(r.Context(), d)
		if err != nil {
			return err
		}
		if err := afterMove(r.Context(), cfg); err != nil {
			return err
		}
		return writeNow(w, now)
	}))
	registerMore(mux, cfg, h)
	mux.Handle("PUT /_test/limits", h(func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			PresencePer30s *int `json:"presencePer30s"`
			// WindowSeconds shortens (or restores) the window, so that a
			// test can wait one out in real time.
			WindowSeconds *int `json:"windowSeconds"`
		}
		if err := decode(r, &body); err != nil {
			return err
		}
		if body.WindowSeconds != nil && (*body.WindowSeconds < 1 || *body.WindowSeconds > 3600 || cfg.SetThrottleWindow == nil) {
			return presence.Errorf(presence.CodeBadRequest, "The member 'windowSeconds' must be a number of seconds from 1 to 3600.")
		}
		if (body.PresencePer30s == nil && body.WindowSeconds == nil) || (body.PresencePer30s != nil && *body.PresencePer30s < 0) {
			return presence.Errorf(presence.CodeBadRequest, "The member 'presencePer30s' must be a number of requests, 0 or more.")
		}
		if body.WindowSeconds != nil {
			cfg.SetThrottleWindow(time.Duration(*body.WindowSeconds) * time.Second)
		}
		if body.PresencePer30s != nil {
			cfg.SetRateLimit(*body.PresencePer30s)
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	user := "/_test/tenants/{tid}/users/{uid}/"
	do := func(w http.ResponseWriter, r *http.Request, cmd presence.Command) error {
		key, err := keyOf(r)
		if err != nil {
			return err
		}
		if _, err := cfg.Service.Do(r.Context(), key, cmd); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	mux.Handle("PUT "+user+"clientSessions/{sid}", h(func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Availability       string  `json:"availability"`
			Activity           string  `json:"activity"`
			ExpirationDuration *string `json:"expirationDuration"`
		}
		if err := decode(r, &body); err != nil {
			return err
		}
		cmd := &presence.SetClientSession{ID: r.PathValue("sid"), Availability: body.Availability, Activity: body.Activity, Expiration: 8 * 24 * time.Hour}
		if body.ExpirationDuration != nil {
			d, err := presence.ParseDuration(*body.ExpirationDuration)
			if err != nil {
				return err
			}
			cmd.Expiration = d
		}
		return do(w, r, cmd)
	}))
	mux.Handle("PUT "+user+"workPlan", h(func(w http.ResponseWriter, r *http.Request) error {
		data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			return presence.Errorf(presence.CodeBadRequest, "A JSON body is required.")
		}
		cmd, err := graphapi.ParseWorkPlan(data)
		if err != nil {
			return err
		}
		return do(w, r, cmd)
	}))
	mux.Handle("DELETE "+user+"clientSessions/{sid}", h(func(w http.ResponseWriter, r *http.Request) error {
		return do(w, r, presence.EndClientSession{ID: r.PathValue("sid")})
	}))
	mux.Handle("PUT "+user+"outOfOffice", h(func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			IsOutOfOffice bool    `json:"isOutOfOffice"`
			Message       *string `json:"message"`
		}
		if err := decode(r, &body); err != nil {
			return err
		}
		return do(w, r, presence.SetOutOfOffice{OutOfOfficeSettings: presence.OutOfOfficeSettings{IsOutOfOffice: body.IsOutOfOffice, Message: body.Message}})
	}))
	mux.Handle("PUT "+user+"calendarBusy", h(func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Active bool `json:"active"`
		}
		if err := decode(r, &body); err != nil {
			return err
		}
		return do(w, r, presence.SetCalendarBusy{Active: body.Active})
	}))
	mux.Handle("PUT "+user+"presenceEnabled", h(func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Enabled *bool `json:"enabled"`
		}
		if err := decode(r, &body); err != nil {
			return err
		}
		if body.Enabled == nil {
			return presence.Errorf(presence.CodeBadRequest, "The member 'enabled' is required.")
		}
		return do(w, r, presence.SetPresenceEnabled{Enabled: *body.Enabled})
	}))
	mux.Handle("GET /_test/{$}", h(func(w http.ResponseWriter, r *http.Request) error {
		return writeJSON(w, map[string]any{"hooks": hookIndex()})
	}))
	mux.Handle("/_test/", h(func(w http.ResponseWriter, r *http.Request) error {
		return presence.Errorf(presence.CodeNotFound, "No test hook at %s %s.", r.Method, r.URL.Path)
	}))
	return mux
}

func keyOf(r *http.Request) (presence.Key, error) {
	tid, ok := presence.CanonicalGUID(r.PathValue("tid"))
	if !ok {
		return presence.Key{}, presence.Errorf(presence.CodeBadRequest, "Invalid tenant identifier '%s'.", r.PathValue("tid"))
	}
	uid, ok := presence.CanonicalGUID(r.PathValue("uid"))
	if !ok {
		return presence.Key{}, presence.Errorf(presence.CodeBadRequest, "Invalid object identifier '%s'.", r.PathValue("uid"))
	}
	return presence.Key{Tenant: tid, User: uid}, nil
}

// decode reads a JSON body (1 MiB at most) into v, refusing unknown members.
// The hooks are for tests and shells, so the body's content type is not
// checked.
func decode(r *http.Request, v any) error {
	const msg = "Unable to read JSON request payload: the body must be a JSON object."
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return presence.Errorf(presence.CodeBadRequest, "A JSON body is required.")
		}
		if strings.Contains(err.Error(), "unknown field") {
			return presence.Errorf(presence.CodeBadRequest, "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return presence.Errorf(presence.CodeBadRequest, msg)
	}
	return nil
}

func writeNow(w http.ResponseWriter, now time.Time) error {
	body, err := json.Marshal(map[string]string{"now": now.UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(body)
	return err
}
