package e2e

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presenced/presenced/auth/authtest"
)

// Tokens signed RS256 and ES256 are both accepted, for every fixture.
func TestTokenAlgorithms(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			f := newFixture(t)
			f.alg = alg
			wantStatus(t, f.get(f.p("/me/presence"), "D1r"), 200)
			wantStatus(t, f.get(f.p("/users/%s/presence", f.U2), "D1ra"), 200)
			wantStatus(t, f.get(f.p("/users/%s/presence", f.U2), "APPr"), 200)
			f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
			wantEmptyOK(t, f.post(f.p("/me/presence/setStatusMessage"), "D1rw", statusText(alg, nil)))
			f.wantPresence(f.U1, "Busy", "InACall")
			// A token verified once is still checked per request's path rules.
			wantError(t, f.get(f.p("/users/%s/presence", f.U2), "D1r"), 403, "Forbidden", "")
		})
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// compactJWS builds header.payload and signs it with sign (nil: no signature).
func compactJWS(t *testing.T, header, claims map[string]any, sign func(input []byte) []byte) string {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := b64(h) + "." + b64(c)
	var sig []byte
	if sign != nil {
		sig = sign([]byte(input))
	}
	return input + "." + b64(sig)
}

// 5.2 and conformance "operator interface": every bad token is 401
// InvalidAuthenticationToken with WWW-Authenticate.
func TestTokenFailures(t *testing.T) {
	f := newFixture(t)
	good := f.tokClaims("D1ra")
	with := func(changes map[string]any) map[string]any {
		c := map[string]any{}
		for k, v := range good {
			c[k] = v
		}
		for k, v := range changes {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return c
	}
	now := time.Now()
	stranger := authtest.NewKeySet(t) // never published
	otherRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs256 := func(key *rsa.PrivateKey) func([]byte) []byte {
		return func(in []byte) []byte {
			sum := sha256.Sum256(in)
			sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
			if err != nil {
				t.Fatal(err)
			}
			return sig
		}
	}
	valid := keys.Mint("RS256", good)
	parts := strings.Split(valid, ".")
	tamperedClaims, _ := json.Marshal(with(map[string]any{"oid": f.U2}))

	for _, c := range []struct {
		name, header string
	}{
		{"expired", "Bearer " + keys.Mint("RS256", with(map[string]any{"exp": now.Add(-time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix(), "iat": now.Add(-2 * time.Hour).Unix()}))},
		{"expired ES256", "Bearer " + keys.Mint("ES256", with(map[string]any{"exp": now.Add(-time.Hour).Unix(), "nbf": now.Add(-2 * time.Hour).Unix()}))},
		{"not valid yet", "Bearer " + keys.Mint("RS256", with(map[string]any{"nbf": now.Add(time.Hour).Unix(), "exp": now.Add(2 * time.Hour).Unix()}))},
		{"wrong audience", "Bearer " + keys.Mint("RS256", with(map[string]any{"aud": "api://someone-else"}))},
		{"wrong issuer", "Bearer " + keys.Mint("ES256", with(map[string]any{"iss": "https://evil.example/"}))},
		{"unknown key RS256", "Bearer " + stranger.Mint("RS256", good)},
		{"unknown key ES256", "Bearer " + stranger.Mint("ES256", good)},
		{"unknown key under a trusted kid", "Bearer " + compactJWS(t, map[string]any{"alg": "RS256", "typ": "JWT", "kid": keys.KeyID("RS256")}, good, rs256(otherRSA))},
		{"alg none", "Bearer " + compactJWS(t, map[string]any{"alg": "none", "typ": "JWT"}, good, nil)},
		{"alg none with a kid", "Bearer " + compactJWS(t, map[string]any{"alg": "none", "typ": "JWT", "kid": keys.KeyID("RS256")}, good, nil)},
		{"HS256 keyed with the public JWKS", "Bearer " + compactJWS(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": keys.KeyID("RS256")}, good, func(in []byte) []byte {
			m := hmac.New(sha256.New, keys.JWKS())
			m.Write(in)
			return m.Sum(nil)
		})},
		{"tampered claims", "Bearer " + parts[0] + "." + b64(tamperedClaims) + "." + parts[2]},
		{"signature stripped", "Bearer " + parts[0] + "." + parts[1] + "."},
		{"garbage", "Bearer abc"},
		{"three garbage segments", "Bearer a.b.c"},
		{"empty bearer", "Bearer "},
		{"Basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("user:pass"))},
		{"token without scheme", valid},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := f.in(t)
			for _, path := range []string{f.p("/me/presence"), f.p("/users/%s/presence", f.U1), "/beta/users/" + f.U1 + "/presence"} {
				r := srv.do(t, "GET", path, "", nil, withHeader("Authorization", c.header))
				wantError(t, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "")
			}
			r := srv.do(t, "POST", f.p("/users/%s/presence/setPresence", f.U1), "", setBody(f.A, "Busy", "InACall", "PT1H"),
				withHeader("Authorization", c.header))
			wantError(t, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "")
		})
	}
	// The good token still works, and nothing was written.
	r := srv.do(t, "GET", f.p("/users/%s/presence", f.U1), valid, nil)
	wantStatus(t, r, 200)
	if r.str("availability") != "Offline" {
		t.Errorf("after only rejected writes: %s", r)
	}
	// "Bearer" is case-insensitive.
	wantStatus(t, srv.do(t, "GET", f.p("/me/presence"), "", nil, withHeader("Authorization", "bearer "+valid)), 200)
}

// Conformance: --jwks-url is refetched when a token names an unknown kid, so
// a key published after start-up is accepted; a key never published is not.
// This runs on a server of its own, whose refetch budget is untouched.
func TestJWKSRotation(t *testing.T) {
	j := newJWKSServer(keys.JWKS())
	t.Cleanup(j.Close)
	s := startTestServer(t, []string{
		"--data", filepath.Join(t.TempDir(), "data"),
		"--jwks-url", j.URL(),
		"--issuer", issuer,
		"--audience", audience,
	}, nil)
	f := newFixture(t)
	f.s = s
	wantStatus(t, f.get(f.p("/me/presence"), "D1r"), 200)
	before := j.fetches.Load()
	if before < 1 {
		t.Errorf("the JWKS was fetched %d times at start-up, want at least once", before)
	}

	rotated := authtest.NewKeySet(t)
	j.add(rotated.JWKS())
	for _, alg := range []string{"ES256", "RS256"} {
		r := s.do(t, "GET", f.p("/me/presence"), rotated.Mint(alg, f.tokClaims("D1r")), nil)
		wantStatus(t, r, 200)
		if r.str("id") != f.U1 {
			t.Errorf("rotated key %s: %s", alg, r)
		}
	}
	if after := j.fetches.Load(); after <= before {
		t.Errorf("JWKS fetches %d -> %d: the unknown kid did not cause a refetch", before, after)
	}
	// The old keys are still published and accepted.
	wantStatus(t, f.get(f.p("/me/presence"), "D1r"), 200)
	// A key that was never published.
	wantError(t, s.do(t, "GET", f.p("/me/presence"), authtest.NewKeySet(t).Mint("RS256", f.tokClaims("D1r")), nil),
		401, "InvalidAuthenticationToken", "")
}

// 1.0 "Authentication": the claim forms of Entra ID tokens: v1 (appid) and
// v2 (azp) app ids for either token type, several scopes in scp, and acct=1
// marking a personal account.
func TestTokenClaimForms(t *testing.T) {
	f := newFixture(t)
	t.Run("application token with azp", func(t *testing.T) {
		f := f.in(t)
		c := f.tokClaims("APPrw")
		delete(c, "appid")
		c["azp"] = f.A
		c["ver"] = "2.0"
		tok := keys.Mint("RS256", c)
		u := newGUID()
		wantEmptyOK(t, srv.do(t, "POST", f.p("/users/%s/presence/setPresence", u), tok, setBody(f.A, "Busy", "InACall", "PT1H")))
		f.wantPresence(u, "Busy", "InACall")
		// It is app A's session: APPrw (appid A) clears it.
		wantEmptyOK(t, f.clear(u, "APPrw"))
	})
	t.Run("delegated token with appid", func(t *testing.T) {
		f := f.in(t)
		c := f.tokClaims("D1rw")
		delete(c, "azp")
		c["appid"] = f.A
		c["ver"] = "1.0"
		tok := keys.Mint("ES256", c)
		wantEmptyOK(t, srv.do(t, "POST", f.p("/me/presence/setPresence"), tok, setBody(f.A, "Away", "Away", "PT1H")))
		f.wantPresence(f.U1, "Away", "Away")
	})
	t.Run("several scopes", func(t *testing.T) {
		f := f.in(t)
		c := f.tokClaims("D1r")
		c["scp"] = "openid profile User.Read Presence.Read.All offline_access"
		r := srv.do(t, "GET", f.p("/users/%s/presence", f.U2), keys.Mint("RS256", c), nil)
		wantStatus(t, r, 200)
	})
	t.Run("several roles", func(t *testing.T) {
		f := f.in(t)
		c := f.tokClaims("APPx")
		c["roles"] = []string{"User.Read.All", "Presence.ReadWrite.All"}
		u := newGUID()
		wantEmptyOK(t, srv.do(t, "POST", f.p("/users/%s/presence/setPresence", u), keys.Mint("RS256", c), setBody(f.A, "Busy", "InACall", "PT1H")))
	})
	t.Run("acct=1 is a personal account", func(t *testing.T) {
		f := f.in(t)
		c := f.tokClaims("D1rw")
		c["acct"] = 1
		tok := keys.Mint("RS256", c)
		wantError(t, srv.do(t, "GET", f.p("/me/presence"), tok, nil), 403, "", "")
		wantError(t, srv.do(t, "POST", f.p("/me/presence/setPresence"), tok, setBody(f.A, "Busy", "InACall", "PT1H")), 403, "", "")
	})
	t.Run("MSA everywhere", func(t *testing.T) {
		f := f.in(t)
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"GET", f.p("/users/%s/presence", f.U1), nil},
			{"POST", f.p("/communications/getPresencesByUserId"), map[string]any{"ids": []string{f.U1}}},
			{"POST", f.p("/me/presence/clearPresence"), map[string]any{"sessionId": f.A}},
			{"POST", f.p("/me/presence/setUserPreferredPresence"), map[string]any{"availability": "Away", "activity": "Away"}},
			{"POST", f.p("/me/presence/clearUserPreferredPresence"), nil},
		} {
			wantError(t, srv.do(t, c.method, c.path, f.tok("MSA"), c.body), 403, "", "")
		}
	})
}
