package graphapi

import (
	"net/http"
	"slices"
	"strings"
)

// CORS headers: what a browser may send (Graph's own request headers and
// the ones the official SDKs add) and what its scripts may read.
const (
	corsAllowMethods  = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
	corsAllowHeaders  = "Authorization, Content-Type, Content-Encoding, client-request-id, return-client-request-id, SdkVersion, Prefer, ConsistencyLevel, Cache-Control, Last-Event-ID"
	corsExposeHeaders = "request-id, client-request-id, Retry-After, Location, WWW-Authenticate"
	corsMaxAge        = "600"
)

// CORS lets browser scripts from origins call next: a request with an
// Origin header that is one of origins (or any, when origins holds "*")
// gets Access-Control-Allow-Origin and the exposed headers, and a preflight
// (OPTIONS with Access-Control-Request-Method) from such an origin is
// answered 204 here with the methods and headers allowed, without a token.
// Requests from other origins pass through untouched, so the browser keeps
// their answers from the script. With no origins, CORS returns next.
func CORS(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	anyOrigin := slices.Contains(origins, "*")
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		allowed[strings.TrimSuffix(strings.ToLower(o), "/")] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || !(anyOrigin || allowed[strings.ToLower(origin)]) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		if anyOrigin {
			h.Set("Access-Control-Allow-Origin", "*")
		} else {
			h.Set("Access-Control-Allow-Origin", origin)
		}
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}
		h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		next.ServeHTTP(w, r)
	})
}
