package testhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	presence "github.com/presenced/presenced"
)

// hook is one entry of the index at GET /_test/.
type hook struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Body   string `json:"body,omitempty"`
	Effect string `json:"effect"`
}

// hookIndex lists every hook; GET /_test/ answers it. A new hook gets a
// line here and a row in the README's table.
func hookIndex() []hook {
	return []hook{
		{"GET", "/_test/", "", "this index"},
		{"GET", "/_test/clock", "", `the service clock: {"now":"<RFC 3339>"}`},
		{"POST", "/_test/clock/advance", `{"by":"PT5M"}`, "move the clock forward by an ISO 8601 duration; what falls due fires before the answer"},
		{"PUT", "/_test/clock", `{"now":"2030-01-01T09:00:00Z"}`, "move the clock forward to an instant (an earlier one is refused with 400)"},
		{"PUT", "/_test/limits", `{"presencePer30s":5,"windowSeconds":30}`, "change the presence request budget per (app, tenant), and optionally the window (1-3600 s, default 30)"},
		{"POST", "/_test/reset", `{"tenantId":"<tid>"}`, "forget every user, subscription and delivery of a tenant (no body or {}: of every tenant)"},
		{"GET", "/_test/tenants/{tid}/state", "", "every user's stored state, visible presence and next change instant, keyed by user id"},
		{"PUT", "/_test/tenants/{tid}/users/{uid}/clientSessions/{sid}", `{"availability":"Available","activity":"Available","expirationDuration":"P8D"}`, "create or refresh a simulated Teams-client session (no fade)"},
		{"DELETE", "/_test/tenants/{tid}/users/{uid}/clientSessions/{sid}", "", "end a simulated client session (404 if none)"},
		{"PUT", "/_test/tenants/{tid}/users/{uid}/outOfOffice", `{"isOutOfOffice":true,"message":"On leave"}`, "the out-of-office overlay"},
		{"PUT", "/_test/tenants/{tid}/users/{uid}/calendarBusy", `{"active":true}`, "the in-a-meeting overlay"},
		{"PUT", "/_test/tenants/{tid}/users/{uid}/presenceEnabled", `{"enabled":false}`, "a user not enabled for presence (PresenceUnknown)"},
		{"PUT", "/_test/tenants/{tid}/users/{uid}/workPlan", `{"recurrences":[],"occurrences":[],"timeZone":"Tokyo Standard Time"}`, "replace the user's whole work plan (Graph's workPlanRecurrence and workPlanOccurrence shapes) and optionally the time zone whose midnight ends a day"},
	}
}

// afterMove makes what the clock's move made due happen: the scheduler's
// fades and expiries, on every node's users (FireAll), then (AfterAdvance)
// deliveries and lifecycles.
func afterMove(ctx context.Context, cfg Config) error {
	if _, err := cfg.Service.FireAll(ctx); err != nil {
		return err
	}
	if cfg.AfterAdvance != nil {
		return cfg.AfterAdvance(ctx)
	}
	return nil
}

// registerMore adds the hooks of the emulator's controls: setting the
// clock to an instant, resetting tenants, and dumping a tenant's state.
func registerMore(mux *http.ServeMux, cfg Config, h func(func(http.ResponseWriter, *http.Request) error) http.HandlerFunc) {
	mux.Handle("PUT /_test/clock", h(func(w http.ResponseWriter, r *http.Request) error {
		var body struct {
			Now *string `json:"now"`
		}
		if err := decode(r, &body); err != nil {
			return err
		}
		if body.Now == nil {
			return presence.Errorf(presence.CodeBadRequest, "The member 'now' (an RFC 3339 instant such as 2030-01-01T09:00:00Z) is required.")
		}
		t, err := time.Parse(time.RFC3339Nano, *body.Now)
		if err != nil {
			return presence.Errorf(presence.CodeBadRequest, "The member 'now' must be an RFC 3339 instant such as 2030-01-01T09:00:00Z, got '%s'.", *body.Now)
		}
		if err := clockReach(t); err != nil {
			return err
		}
		if cfg.BeforeAdvance != nil && t.After(cfg.Clock.Now()) {
			if err := cfg.BeforeAdvance(r.Context(), t); err != nil {
				return err
			}
		}
		now, err := cfg.Clock.Set(r.Context(), t)
		if err != nil {
			return err
		}
		if err := afterMove(r.Context(), cfg); err != nil {
			return err
		}
		return writeNow(w, now)
	}))
	mux.Handle("POST /_test/reset", h(func(w http.ResponseWriter, r *http.Request) error {
		tenant, err := resetTenant(r)
		if err != nil {
			return err
		}
		if cfg.ResetSubscriptions != nil {
			if err := cfg.ResetSubscriptions(r.Context(), tenant); err != nil {
				return err
			}
		}
		if _, err := cfg.Service.Reset(r.Context(), tenant); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}))
	mux.Handle("GET /_test/tenants/{tid}/state", h(func(w http.ResponseWriter, r *http.Request) error {
		tid, ok := presence.CanonicalGUID(r.PathValue("tid"))
		if !ok {
			return presence.Errorf(presence.CodeBadRequest, "Invalid tenant identifier '%s'.", r.PathValue("tid"))
		}
		users := map[string]userDump{}
		now, err := cfg.Service.States(r.Context(), tid, func(u presence.UserState) error {
			d := userDump{
				Availability:   u.View.Availability,
				Activity:       u.View.Activity,
				SequenceNumber: u.View.SequenceNumber(),
				Stored:         u.State,
			}
			if !u.NextChange.IsZero() {
				t := u.NextChange.UTC()
				d.NextChange = &t
			}
			users[u.Key.User] = d
			return nil
		})
		if err != nil {
			return err
		}
		return writeJSON(w, map[string]any{"tenantId": tid, "now": now.UTC(), "users": users})
	}))
}

// clockLimitYear is the first year the test clock may not reach. The
// instants at which users' changes fall due are ordered by their Unix
// nanoseconds, which end in April 2262: past that every instant would look
// the same, a change not yet due would look due, and firing would never
// end (the fuzz campaign found an advance that never answered). The limit
// keeps decades for what falls due after now, and every instant within
// what RFC 3339 and JSON can write.
const clockLimitYear = 2200

// clockReach refuses a move of the test clock to t at or past
// clockLimitYear.
func clockReach(t time.Time) error {
	if t.Year() >= clockLimitYear || t.Year() < 1 {
		return presence.Errorf(presence.CodeBadRequest, "The test clock stays between the years 1 and %d; %s is outside.", clockLimitYear-1, t.UTC().Format(time.RFC3339))
	}
	return nil
}

// userDump is one user in GET /_test/tenants/{tid}/state.
type userDump struct {
	Availability   string `json:"availability"`
	Activity       string `json:"activity"`
	SequenceNumber string `json:"sequenceNumber"`
	// NextChange is when the visible presence next changes by itself;
	// null when it never will.
	NextChange *time.Time     `json:"nextChangeDateTime"`
	Stored     presence.State `json:"stored"`
}

// resetTenant reads POST /_test/reset's body: none or {} names every
// tenant, {"tenantId":"<GUID>"} one.
func resetTenant(r *http.Request) (string, error) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return "", presence.Errorf(presence.CodeBadRequest, "Unable to read the request body.")
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		return "", nil
	}
	var body struct {
		TenantID *string `json:"tenantId"`
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if err := decode(r, &body); err != nil {
		return "", err
	}
	if body.TenantID == nil {
		return "", nil
	}
	tid, ok := presence.CanonicalGUID(*body.TenantID)
	if !ok {
		return "", presence.Errorf(presence.CodeBadRequest, "Invalid tenant identifier '%s'.", *body.TenantID)
	}
	return tid, nil
}

func writeJSON(w http.ResponseWriter, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(body)
	return err
}
