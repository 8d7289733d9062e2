package e2e

import (
	"net/http"
	"strings"
	"testing"
)

// corsDo sends a request with an Origin header (and more headers) to s
// and returns the answer's status and headers.
func corsDo(t *testing.T, s *server, method, path string, headers map[string]string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, s.base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode, res.Header
}

// CORS is off by default: no Access-Control headers, and a preflight is
// not answered as one.
func TestCORSOffByDefault(t *testing.T) {
	code, h := corsDo(t, srv, "OPTIONS", "/v1.0/me/presence", map[string]string{
		"Origin": "https://app.example", "Access-Control-Request-Method": "GET"})
	if h.Get("Access-Control-Allow-Origin") != "" || code == http.StatusNoContent {
		t.Errorf("without --cors-origins a preflight got %d %v", code, h)
	}
}

// --cors-origins: a listed origin's preflight is answered 204 with the
// methods and headers Graph clients send (Authorization, client-request-id),
// its requests get Allow-Origin and the exposed headers (request-id,
// client-request-id, Retry-After), and an unlisted origin gets nothing.
func TestCORSOrigins(t *testing.T) {
	s := startTestServer(t, hookedArgs(t, "--cors-origins", "https://app.example, http://localhost:5173"), nil)
	code, h := corsDo(t, s, "OPTIONS", "/v1.0/me/presence", map[string]string{
		"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization,client-request-id,content-type"})
	if code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Fatalf("preflight: %d %v", code, h)
	}
	for _, want := range []string{"authorization", "client-request-id", "content-type"} {
		if !strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), want) {
			t.Errorf("Access-Control-Allow-Headers %q lacks %s", h.Get("Access-Control-Allow-Headers"), want)
		}
	}
	if !strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("Access-Control-Allow-Methods %q lacks POST", h.Get("Access-Control-Allow-Methods"))
	}

	f := newFixture(t)
	code, h = corsDo(t, s, "GET", f.p("/users/%s/presence", f.U1), map[string]string{
		"Origin": "http://localhost:5173", "Authorization": "Bearer " + f.tok("APPr")})
	if code != http.StatusOK || h.Get("Access-Control-Allow-Origin") != "http://localhost:5173" {
		t.Errorf("GET from a listed origin: %d %v", code, h)
	}
	expose := strings.ToLower(h.Get("Access-Control-Expose-Headers"))
	for _, want := range []string{"request-id", "client-request-id", "retry-after"} {
		if !strings.Contains(expose, want) {
			t.Errorf("Access-Control-Expose-Headers %q lacks %s", expose, want)
		}
	}

	code, h = corsDo(t, s, "OPTIONS", "/v1.0/me/presence", map[string]string{
		"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
	if h.Get("Access-Control-Allow-Origin") != "" || code == http.StatusNoContent {
		t.Errorf("preflight from an unlisted origin: %d %v", code, h)
	}
}

// --cors-origins '*' (here from the environment) allows any origin.
func TestCORSAnyOrigin(t *testing.T) {
	s := startTestServer(t, hookedArgs(t), []string{"PRESENCED_CORS_ORIGINS=*"})
	code, h := corsDo(t, s, "OPTIONS", "/beta/communications/getPresencesByUserId", map[string]string{
		"Origin": "https://anything.example", "Access-Control-Request-Method": "POST"})
	if code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight with *: %d %v", code, h)
	}
}
