package graphapi

import (
	"net/http"
	"strings"

	presence "github.com/presenced/presenced"
)

// workLocationRoutes are the four work-location actions on every presence
// address, and the work plan under /me/settings and /users/{id}/settings.
func (s *Server) workLocationRoutes() []route {
	var rs []route
	actions := []struct {
		name  string
		h     handler
		empty bool
	}{
		{"setManualLocation", s.setLocation("setManualLocation", false), false},
		{"setAutomaticLocation", s.setLocation("setAutomaticLocation", true), false},
		{"clearAutomaticLocation", s.clearLocation("clearAutomaticLocation", false), true},
		{"clearLocation", s.clearLocation("clearLocation", true), true},
	}
	for alias, path := range map[string]string{aliasMe: "me/presence", aliasUsers: "users/{id}/presence", aliasCommunications: "communications/presences/{id}"} {
		for _, a := range actions {
			for _, seg := range []string{a.name, "microsoft.graph." + a.name} {
				rs = append(rs, route{method: "POST", path: path + "/" + seg, alias: alias, name: a.name, handle: a.h, throttled: true})
			}
		}
	}
	for alias, base := range map[string]string{aliasMe: "me/settings/workHoursAndLocations", aliasUsers: "users/{id}/settings/workHoursAndLocations"} {
		add := func(method, suffix, name string, h handler) {
			rs = append(rs, route{method: method, path: base + suffix, alias: alias, name: name, handle: h})
		}
		add("GET", "", "getWorkHoursAndLocations", s.getWorkHoursAndLocations)
		add("PATCH", "", "updateWorkHoursAndLocations", s.updateWorkHoursAndLocations)
		add("GET", "/recurrences", "listWorkPlanRecurrences", s.listRecurrences)
		add("POST", "/recurrences", "createWorkPlanRecurrence", s.createRecurrence)
		add("GET", "/recurrences/{id}", "getWorkPlanRecurrence", s.getRecurrence)
		add("PUT", "/recurrences/{id}", "replaceWorkPlanRecurrence", s.replaceRecurrence)
		add("DELETE", "/recurrences/{id}", "deleteWorkPlanRecurrence", s.deleteRecurrence)
		add("GET", "/occurrences", "listWorkPlanOccurrences", s.listOccurrences)
		add("POST", "/occurrences", "createWorkPlanOccurrence", s.createOccurrence)
		add("GET", "/occurrences/{id}", "getWorkPlanOccurrence", s.getOccurrence)
		add("POST", "/occurrences/setCurrentLocation", "setCurrentLocation", s.setCurrentLocation)
		add("POST", "/occurrences/microsoft.graph.setCurrentLocation", "setCurrentLocation", s.setCurrentLocation)
		add("PUT", "/occurrences/{id}", "replaceWorkPlanOccurrence", s.replaceOccurrence)
		add("DELETE", "/occurrences/{id}", "deleteWorkPlanOccurrence", s.deleteOccurrence)
		// Last: the function call segment, occurrencesView(...), matched by
		// its handler.
		add("GET", "/{id}", "occurrencesView", s.occurrencesView)
	}
	return rs
}

// locationTarget resolves and authorizes the user of a work-location action:
// v1.0 refuses application tokens, beta lets Presence.ReadWrite.All set any
// user of the tenant.
func locationTarget(c *call) (string, error) {
	user, err := c.target()
	if err != nil {
		return "", err
	}
	return user, c.principal.CanSetLocation(user, c.version == "beta")
}

// setLocation serves setManualLocation and setAutomaticLocation.
func (s *Server) setLocation(op string, automatic bool) handler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		user, err := locationTarget(c)
		if err != nil {
			return err
		}
		o, err := readBody(r, op, false)
		if err != nil {
			return err
		}
		cmd, err := buildSetLocation(o, automatic)
		if err != nil {
			return err
		}
		if _, err := s.svc.Do(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user}, cmd); err != nil {
			return err
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
}

// buildSetLocation reads the body of setManualLocation or
// setAutomaticLocation.
func buildSetLocation(o *object, automatic bool) (*presence.SetLocation, error) {
	if err := o.only("workLocationType", "placeId"); err != nil {
		return nil, err
	}
	cmd := &presence.SetLocation{Automatic: automatic, HasType: o.has("workLocationType")}
	if err := o.strs("workLocationType", &cmd.Type, "placeId", &cmd.PlaceID); err != nil {
		return nil, err
	}
	return cmd, nil
}

// clearLocation serves clearAutomaticLocation and clearLocation: 200 on
// v1.0, 204 on beta (section 1.10).
func (s *Server) clearLocation(op string, manual bool) handler {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		user, err := locationTarget(c)
		if err != nil {
			return err
		}
		o, err := readBody(r, op, true)
		if err != nil {
			return err
		}
		if err := o.only(); err != nil {
			return err
		}
		if _, err := s.svc.Do(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user}, presence.ClearLocation{Manual: manual}); err != nil {
			return err
		}
		if c.version == "beta" {
			w.WriteHeader(http.StatusNoContent)
			return nil
		}
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
		return nil
	}
}

// planTarget resolves the user of a work-plan route and the {id} of the item
// it names, if any (withKey), and authorizes the caller.
func planTarget(r *http.Request, c *call, withKey, write bool) (user, key string, err error) {
	if c.alias == aliasMe {
		if user, err = c.principal.Me(); err != nil {
			return "", "", err
		}
		if withKey {
			key = c.id
		}
	} else {
		// /{version}/users/{user}/settings/...: the user is the third
		// segment; a route's last {id} is the item.
		segs := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
		raw := ""
		if len(segs) > 2 {
			raw = segs[2]
		}
		g, ok := presence.CanonicalGUID(raw)
		if !ok {
			return "", "", presence.Errorf(presence.CodeBadRequest, "Invalid object identifier '%s'.", raw)
		}
		user = g
		if withKey {
			key = c.id
		}
	}
	return user, key, c.principal.CanUseWorkPlan(user, write)
}
