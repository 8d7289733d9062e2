package e2e

import (
	"testing"
)

// sdkHeaders are what msgraph-sdk-go sends with every request (DESIGN "What
// real Graph clients need"): a client-request-id, its SDK version, JSON
// accept, and gzip-compressed POST bodies.
func sdkHeaders(crid string) []reqOpt {
	return []reqOpt{
		withHeader("client-request-id", crid),
		withHeader("SdkVersion", "graph-go/1.80.0, graph-go-core/1.2.1"),
		withHeader("Accept", "application/json"),
		withHeader("User-Agent", "kiota-go/1.0"),
		contentType("application/json"),
		gzipped(),
	}
}

// A session of calls the way the Go SDK makes them: every POST gzipped,
// every answer echoing the client-request-id, every action an empty 200
// without a Content-Type (which the SDK would otherwise try to parse).
func TestGoSDKLikeClient(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		call := func(path, tok string, body any, crid string) *resp {
			t.Helper()
			r := f.post(path, tok, body, sdkHeaders(crid)...)
			if got := r.Header.Get("client-request-id"); got != crid {
				t.Errorf("%s: client-request-id %q, want %q", r, got, crid)
			}
			return r
		}
		crid := newGUID()
		wantEmptyOK(t, call(f.p("/users/%s/presence/setPresence", f.U1), "APPrw", setBody(f.A, "Busy", "InACall", "PT1H"), crid))
		wantEmptyOK(t, call(f.p("/users/%s/presence/setUserPreferredPresence", f.U1), "APPrw",
			map[string]any{"availability": "DoNotDisturb", "activity": "DoNotDisturb", "expirationDuration": "PT8H"}, newGUID()))
		wantEmptyOK(t, call(f.p("/users/%s/presence/setStatusMessage", f.U1), "APPrw", statusText("From the SDK", nil), newGUID()))
		r := call(f.p("/communications/getPresencesByUserId"), "APPr", map[string]any{"ids": []string{f.U1}}, newGUID())
		wantStatus(t, r, 200)
		if a, _ := r.get("value", 0, "availability"); a != "DoNotDisturb" {
			t.Errorf("availability %v, want DoNotDisturb", a)
		}
		if c, _ := r.get("value", 0, "statusMessage", "message", "content"); c != "From the SDK" {
			t.Errorf("status message %v", c)
		}
		// The SDK sends clearUserPreferredPresence with an empty JSON object.
		wantEmptyOK(t, call(f.p("/users/%s/presence/clearUserPreferredPresence", f.U1), "APPrw", map[string]any{}, newGUID()))
		wantEmptyOK(t, call(f.p("/users/%s/presence/clearPresence", f.U1), "APPrw", map[string]any{"sessionId": f.A}, newGUID()))
		f.wantPresence(f.U1, "Offline", "Offline")
		// Typed SDK errors need the envelope, gzipped request or not.
		e := call(f.p("/users/%s/presence/clearPresence", f.U1), "APPrw", map[string]any{"sessionId": f.A}, crid)
		wantError(t, e, 404, "NotFound", "")
		if got := e.str("error", "innerError", "client-request-id"); got != crid {
			t.Errorf("innerError.client-request-id = %q, want %q", got, crid)
		}
	})
}

// Streaming clients send bodies chunked, without a Content-Length.
func TestChunkedRequestBodies(t *testing.T) {
	f := newFixture(t)
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setPresence", f.U1), "APPrw", setBody(f.A, "Busy", "InACall", "PT1H"), chunked()))
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/setUserPreferredPresence", f.U1), "APPrw",
		map[string]any{"availability": "Away", "activity": "Away"}, chunked(), gzipped()))
	f.wantPresence(f.U1, "Away", "Away")
	// An empty chunked body, with and without a content type.
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/clearUserPreferredPresence", f.U1), "APPrw", "", chunked(), noContentType()))
	wantEmptyOK(t, f.post(f.p("/users/%s/presence/clearUserPreferredPresence", f.U1), "APPrw", "", chunked()))
	f.wantPresence(f.U1, "Busy", "InACall")
	r := f.post(f.p("/communications/getPresencesByUserId"), "APPr", map[string]any{"ids": []string{f.U1}}, chunked())
	wantStatus(t, r, 200)
}
