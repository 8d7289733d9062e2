package graphapi

import (
	"net/http"
	"slices"
	"strings"

	presence "github.com/presenced/presenced"
)

// routeTable is the whole Graph API on one screen. Paths are relative to
// /v1.0 or /beta; literal segments match case-insensitively; {id} captures a
// segment. Every presence address (/me/presence, /users/{id}/presence,
// /communications/presences/{id}) takes every action, by its short and its
// microsoft.graph-qualified name.
func (s *Server) routeTable() []route {
	rs := []route{
		{method: "GET", path: "communications/presences", name: "listPresences", handle: s.listPresences, throttled: true},
		{method: "POST", path: "communications/getPresencesByUserId", name: "getPresencesByUserId", handle: s.getPresencesByUserID, throttled: true},
		{method: "POST", path: "communications/microsoft.graph.getPresencesByUserId", name: "getPresencesByUserId", handle: s.getPresencesByUserID, throttled: true},
		{method: "POST", path: "$batch", name: "batch", handle: s.batch},
	}
	if s.subs != nil {
		rs = append(rs,
			route{method: "POST", path: "subscriptions", name: "createSubscription", handle: s.createSubscription, throttled: true},
			route{method: "GET", path: "subscriptions", name: "listSubscriptions", handle: s.listSubscriptions},
			route{method: "GET", path: "subscriptions/{id}", name: "getSubscription", handle: s.getSubscription},
			route{method: "PATCH", path: "subscriptions/{id}", name: "updateSubscription", handle: s.updateSubscription, throttled: true},
			route{method: "DELETE", path: "subscriptions/{id}", name: "deleteSubscription", handle: s.deleteSubscription},
			route{method: "POST", path: "subscriptions/{id}/reauthorize", name: "reauthorizeSubscription", handle: s.reauthorizeSubscription, throttled: true},
			route{method: "POST", path: "subscriptions/{id}/microsoft.graph.reauthorize", name: "reauthorizeSubscription", handle: s.reauthorizeSubscription, throttled: true},
		)
	}
	for alias, path := range map[string]string{aliasMe: "me/presence", aliasUsers: "users/{id}/presence", aliasCommunications: "communications/presences/{id}"} {
		rs = append(rs, route{method: "GET", path: path, alias: alias, name: "getPresence", handle: s.getPresence, throttled: true})
		for name, h := range map[string]handler{
			"setPresence":                s.action("setPresence", false, []string{"sessionId", "availability", "activity", "expirationDuration"}, buildSetPresence),
			"clearPresence":              s.action("clearPresence", false, []string{"sessionId"}, buildClearPresence),
			"setUserPreferredPresence":   s.action("setUserPreferredPresence", false, []string{"availability", "activity", "expirationDuration"}, buildSetPreferred),
			"clearUserPreferredPresence": s.action("clearUserPreferredPresence", true, nil, buildClearPreferred),
			"setStatusMessage":           s.action("setStatusMessage", false, []string{"statusMessage"}, buildSetStatusMessage),
		} {
			for _, seg := range []string{name, "microsoft.graph." + name} {
				rs = append(rs, route{method: "POST", path: path + "/" + seg, alias: alias, name: name, handle: h, throttled: true})
			}
		}
	}
	rs = append(rs, s.workLocationRoutes()...)
	return compileRoutes(rs)
}

// ownRouteTable is what presenced adds beyond Graph, under /presenced/
// (paths relative to it), authorized with the same tokens.
func (s *Server) ownRouteTable() []route {
	return compileRoutes([]route{
		{method: "GET", path: "stream", name: "presenceStream", handle: s.stream, throttled: true},
	})
}

// compileRoutes splits the routes' paths into segments.
func compileRoutes(rs []route) []route {
	for i := range rs {
		rs[i].segments = strings.Split(rs[i].path, "/")
		rs[i].hasID = slices.Contains(rs[i].segments, "{id}")
	}
	return rs
}

// handler serves one route; it returns errors for the one error adapter.
type handler func(w http.ResponseWriter, r *http.Request, c *call) error

// The three addresses of a user's presence.
const (
	aliasMe             = "me"
	aliasUsers          = "users"
	aliasCommunications = "communications"
)

type route struct {
	method string
	alias  string
	path   string
	name   string
	handle handler
	// throttled: counts against the (app, tenant) budget; presence
	// requests, and the subscription writes that make presenced call out
	throttled bool
	segments  []string
	hasID     bool // the path has an {id} segment
	allow     string
}

// call is what a handler knows about its request beyond *http.Request.
type call struct {
	version string
	alias   string
	// id is the {id} segment of the path, and hasID whether the route has one.
	id        string
	hasID     bool
	principal presence.Principal
	// outer is the $batch request this one runs inside, if any.
	outer *call
}

var errMethod = presence.Errorf(presence.CodeMethodNotAllowed, "Specified HTTP method is not allowed for the request target.")

// match finds the route of method and path among routes and returns its
// {id} segment. A path that matches with another method gives errMethod
// and the route with its Allow header filled in.
func match(routes []route, method, path string) (*route, string, error) {
	path = strings.TrimSuffix(path, "/")
	var allowed []string
	for i := range routes {
		rt := &routes[i]
		id, ok := matchSegments(rt.segments, path)
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, id, nil
		}
		if !slices.Contains(allowed, rt.method) {
			allowed = append(allowed, rt.method)
		}
	}
	if len(allowed) > 0 {
		return &route{allow: strings.Join(allowed, ", ")}, "", errMethod
	}
	last := path[strings.LastIndexByte(path, '/')+1:]
	return nil, "", presence.Errorf(presence.CodeNotFound, "Resource not found for the segment '%s'.", last)
}

// matchSegments matches path, segment by segment, against a pattern whose
// literal segments compare case-insensitively and whose "{id}" segment
// captures; it allocates nothing.
func matchSegments(pattern []string, path string) (id string, ok bool) {
	rest := path
	for i, p := range pattern {
		seg, tail, found := strings.Cut(rest, "/")
		if found != (i < len(pattern)-1) {
			return "", false
		}
		if p == "{id}" {
			if seg == "" {
				return "", false
			}
			id = seg
		} else if !strings.EqualFold(p, seg) {
			return "", false
		}
		rest = tail
	}
	return id, true
}

// target resolves the user a presence route addresses: the signed-in user for
// /me, else the {id} segment, which must be a GUID.
func (c *call) target() (string, error) {
	raw, ok := c.id, c.hasID
	if !ok {
		return c.principal.Me()
	}
	id, ok := presence.CanonicalGUID(raw)
	if !ok {
		return "", presence.Errorf(presence.CodeBadRequest, "Invalid object identifier '%s'.", raw)
	}
	return id, nil
}
