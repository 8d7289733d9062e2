package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/auth/authtest"
)

const (
	testTenant = "72F988BF-86F1-41AF-91AB-2D7CD011DB47"
	testUser   = "4E6B3A9C-1F1B-4B8E-9E0B-5D2A9D3C7F10"
	testApp    = "0D9B8C7A-6E5F-4A3B-9C2D-1E0F9A8B7C6D"
	testIssuer = "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"
)

// appClaims returns the claims of a valid application token.
func appClaims() map[string]any {
	now := time.Now()
	return map[string]any{
		"iss":   testIssuer,
		"aud":   DefaultAudience,
		"tid":   testTenant,
		"azp":   testApp,
		"oid":   "11111111-2222-3333-4444-555555555555",
		"roles": []string{"Presence.ReadWrite.All"},
		"iat":   now.Add(-time.Minute).Unix(),
		"nbf":   now.Add(-time.Minute).Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
}

// delegatedClaims returns the claims of a valid delegated token.
func delegatedClaims() map[string]any {
	c := appClaims()
	delete(c, "roles")
	c["oid"] = testUser
	c["scp"] = "Presence.Read Presence.ReadWrite"
	return c
}

// with returns a copy of c with the changes applied; a nil value deletes.
func with(c map[string]any, changes map[string]any) map[string]any {
	out := make(map[string]any, len(c))
	for k, v := range c {
		out[k] = v
	}
	for k, v := range changes {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
	}
	return out
}

func testConfig() Config {
	return Config{Issuers: []string{testIssuer}, Audiences: []string{DefaultAudience, GraphAppID}}
}

// fileVerifier returns a Verifier reading ks's JWKS from a file.
func fileVerifier(t testing.TB, ks *authtest.KeySet, cfg Config) *Verifier {
	t.Helper()
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, ks.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.JWKSFile = file
	v, err := NewVerifier(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// jwksServer serves a JWKS that the test can replace.
type jwksServer struct {
	*httptest.Server
	jwks    atomic.Pointer[[]byte]
	fetches atomic.Int32
}

func newJWKSServer(t testing.TB, jwks []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.jwks.Store(&jwks)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*s.jwks.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(jwks []byte) { s.jwks.Store(&jwks) }

// urlVerifier returns a Verifier fetching the JWKS from srv.
func urlVerifier(t testing.TB, srv *jwksServer, cfg Config) *Verifier {
	t.Helper()
	cfg.JWKSURL = srv.URL
	cfg.HTTPClient = srv.Client()
	v, err := NewVerifier(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("NewVerifier: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// wantTokenError checks that err is a rejection with message.
func wantTokenError(t *testing.T, err error, message string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %q", message)
	}
	var pe *presence.Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), not a *presence.Error", err, err)
	}
	if pe.Code != presence.CodeInvalidAuthenticationToken || pe.Message != message {
		t.Fatalf("err = %q %q, want %q %q", pe.Code, pe.Message, presence.CodeInvalidAuthenticationToken, message)
	}
}

var wantApp = presence.Principal{
	Tenant: strings.ToLower(testTenant),
	AppID:  strings.ToLower(testApp),
	Roles:  []string{"Presence.ReadWrite.All"},
}

func TestVerifyValid(t *testing.T) {
	ks := authtest.NewKeySet(t)
	srv := newJWKSServer(t, ks.JWKS())
	verifiers := map[string]*Verifier{
		"file": fileVerifier(t, ks, testConfig()),
		"url":  urlVerifier(t, srv, testConfig()),
	}
	for source, v := range verifiers {
		for _, alg := range []string{"RS256", "ES256"} {
			t.Run(source+"/"+alg, func(t *testing.T) {
				c := appClaims()
				p, err := v.Verify(context.Background(), ks.Mint(alg, c))
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				want := wantApp
				want.ExpiresAt = c["exp"].(int64)
				if !reflect.DeepEqual(p, want) {
					t.Fatalf("Principal = %+v, want %+v", p, want)
				}
			})
		}
	}
}

func TestKeyRotation(t *testing.T) {
	old, next := authtest.NewKeySet(t), authtest.NewKeySet(t)
	srv := newJWKSServer(t, old.JWKS())
	v := urlVerifier(t, srv, testConfig())
	ctx := context.Background()

	if _, err := v.Verify(ctx, old.Mint("RS256", appClaims())); err != nil {
		t.Fatalf("token of the first key: %v", err)
	}
	srv.set(next.JWKS())
	for _, alg := range []string{"RS256", "ES256"} {
		if _, err := v.Verify(ctx, next.Mint(alg, appClaims())); err != nil {
			t.Fatalf("%s token of the new key: %v", alg, err)
		}
	}
	if got := srv.fetches.Load(); got != 2 {
		t.Errorf("JWKS fetched %d times, want 2 (start, then the unknown kid)", got)
	}
	// The old key is gone, and another unknown kid within the rate limit
	// fails at once rather than waiting for the next allowed fetch.
	start := time.Now()
	_, err := v.Verify(ctx, old.Mint("ES256", appClaims()))
	wantTokenError(t, err, messageInvalid)
	if d := time.Since(start); d > time.Second {
		t.Errorf("refusing an unknown kid took %v", d)
	}
}

func TestWrongAlgorithm(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(appClaims()))
	hs.Header["kid"] = ks.KeyID("RS256")
	hsToken, err := hs.SignedString([]byte("a secret of at least thirty-two bytes"))
	if err != nil {
		t.Fatal(err)
	}
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims(appClaims()))
	none.Header["kid"] = ks.KeyID("ES256")
	noneToken, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// An RS256 header on an ES256 signature, and the other way round.
	es := strings.Split(ks.Mint("ES256", appClaims()), ".")
	rs := strings.Split(ks.Mint("RS256", appClaims()), ".")
	other := strings.Split(ks.Mint("RS256", with(appClaims(), map[string]any{"tid": testUser})), ".")
	tests := map[string]string{
		"HS256":             hsToken,
		"none":              noneToken,
		"RS256 header, EC":  rs[0] + "." + es[1] + "." + es[2],
		"ES256 header, RSA": es[0] + "." + rs[1] + "." + rs[2],
		"foreign key":       authtest.NewKeySet(t).Mint("ES256", appClaims()),
		"changed claims":    rs[0] + "." + other[1] + "." + rs[2],
	}
	for name, token := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), token)
			wantTokenError(t, err, messageInvalid)
		})
	}
}

func TestLifetime(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	now := time.Now()
	tests := []struct {
		name    string
		changes map[string]any
		want    string // "" accepts
	}{
		{"expired beyond skew", map[string]any{"exp": now.Add(-3 * time.Minute).Unix()}, messageExpiredNbf},
		{"expired within skew", map[string]any{"exp": now.Add(-time.Minute).Unix()}, ""},
		{"not yet valid beyond skew", map[string]any{"nbf": now.Add(5 * time.Minute).Unix()}, messageNotYetValid},
		{"not yet valid within skew", map[string]any{"nbf": now.Add(time.Minute).Unix()}, ""},
		{"no exp", map[string]any{"exp": nil}, messageInvalid},
		{"no nbf", map[string]any{"nbf": nil}, ""},
		{"fractional exp", map[string]any{"exp": float64(now.Add(time.Hour).Unix()) + 0.5}, ""},
		{"exp as a string", map[string]any{"exp": strconv.FormatInt(now.Add(time.Hour).Unix(), 10)}, messageMalformed},
		{"nbf as a string", map[string]any{"nbf": strconv.FormatInt(now.Add(-time.Hour).Unix(), 10)}, messageMalformed},
		{"exp as a bool", map[string]any{"exp": true}, messageMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), ks.Mint("ES256", with(appClaims(), tt.changes)))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantTokenError(t, err, tt.want)
		})
	}
}

func TestIssuerAudience(t *testing.T) {
	ks := authtest.NewKeySet(t)
	multi := testConfig()
	multi.Issuers = []string{"https://sts.windows.net/" + TenantIDPlaceholder + "/", "https://login.microsoftonline.com/" + TenantIDPlaceholder + "/v2.0"}
	verifiers := map[string]*Verifier{
		"strict": fileVerifier(t, ks, testConfig()),
		"multi":  fileVerifier(t, ks, multi),
		"open":   fileVerifier(t, ks, Config{}),
	}
	tests := []struct {
		name    string
		changes map[string]any
		want    map[string]string // verifier -> message; missing accepts
	}{
		{"valid", nil, nil},
		{"wrong issuer", map[string]any{"iss": "https://evil.example/"},
			map[string]string{"strict": messageIssuer, "multi": messageIssuer}},
		{"no issuer", map[string]any{"iss": nil},
			map[string]string{"strict": messageIssuer, "multi": messageIssuer}},
		{"v1 issuer", map[string]any{"iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/"},
			map[string]string{"strict": messageIssuer}},
		{"issuer of another tenant", map[string]any{"iss": "https://sts.windows.net/00000000-0000-0000-0000-000000000000/"},
			map[string]string{"strict": messageIssuer, "multi": messageIssuer}},
		{"issuer with a longer tenant", map[string]any{"iss": "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47x/"},
			map[string]string{"strict": messageIssuer, "multi": messageIssuer}},
		{"placeholder itself", map[string]any{"iss": "https://sts.windows.net/{tenantid}/"},
			map[string]string{"strict": messageIssuer, "multi": messageIssuer}},
		{"graph app id audience", map[string]any{"aud": GraphAppID}, nil},
		{"audience list", map[string]any{"aud": []string{"api://other", DefaultAudience}}, nil},
		{"wrong audience", map[string]any{"aud": "api://other"},
			map[string]string{"strict": messageAudience, "multi": messageAudience}},
		{"no audience", map[string]any{"aud": nil},
			map[string]string{"strict": messageAudience, "multi": messageAudience}},
		{"wrong audience and issuer", map[string]any{"aud": "api://other", "iss": "https://evil.example/"},
			map[string]string{"strict": messageAudience, "multi": messageAudience}},
	}
	for _, tt := range tests {
		for name, v := range verifiers {
			t.Run(tt.name+"/"+name, func(t *testing.T) {
				_, err := v.Verify(context.Background(), ks.Mint("RS256", with(appClaims(), tt.changes)))
				want, reject := tt.want[name]
				if !reject {
					if err != nil {
						t.Fatalf("Verify: %v", err)
					}
					return
				}
				wantTokenError(t, err, want)
			})
		}
	}
}

func TestClaimsMapping(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	exp := time.Now().Add(time.Hour).Unix()
	tenant, user, app := strings.ToLower(testTenant), strings.ToLower(testUser), strings.ToLower(testApp)
	tests := []struct {
		name   string
		claims map[string]any
		want   presence.Principal
		err    string
	}{
		{"delegated", delegatedClaims(), presence.Principal{
			Tenant: tenant, User: user, AppID: app, Delegated: true,
			Scopes: []string{"Presence.Read", "Presence.ReadWrite"},
		}, ""},
		{"delegated with roles", with(delegatedClaims(), map[string]any{"roles": []string{"Admin"}}), presence.Principal{
			Tenant: tenant, User: user, AppID: app, Delegated: true,
			Scopes: []string{"Presence.Read", "Presence.ReadWrite"}, Roles: []string{"Admin"},
		}, ""},
		{"delegated scp array", with(delegatedClaims(), map[string]any{"scp": []string{"Presence.Read"}}), presence.Principal{
			Tenant: tenant, User: user, AppID: app, Delegated: true, Scopes: []string{"Presence.Read"},
		}, ""},
		{"delegated empty scp", with(delegatedClaims(), map[string]any{"scp": ""}), presence.Principal{
			Tenant: tenant, User: user, AppID: app, Delegated: true,
		}, ""},
		{"application", appClaims(), presence.Principal{
			Tenant: tenant, AppID: app, Roles: []string{"Presence.ReadWrite.All"},
		}, ""},
		{"application without roles", with(appClaims(), map[string]any{"roles": nil}), presence.Principal{
			Tenant: tenant, AppID: app,
		}, ""},
		{"v1 appid", with(appClaims(), map[string]any{"azp": nil, "appid": testApp}), presence.Principal{
			Tenant: tenant, AppID: app, Roles: []string{"Presence.ReadWrite.All"},
		}, ""},
		{"azp wins over appid", with(appClaims(), map[string]any{"appid": "99999999-9999-9999-9999-999999999999"}), presence.Principal{
			Tenant: tenant, AppID: app, Roles: []string{"Presence.ReadWrite.All"},
		}, ""},
		{"consumer tenant", with(delegatedClaims(), map[string]any{"tid": presence.ConsumerTenant}), presence.Principal{
			Tenant: presence.ConsumerTenant, User: user, AppID: app, Delegated: true, Personal: true,
			Scopes: []string{"Presence.Read", "Presence.ReadWrite"},
		}, ""},
		{"acct number", with(delegatedClaims(), map[string]any{"acct": 1}), presence.Principal{
			Tenant: tenant, User: user, AppID: app, Delegated: true, Personal: true,
			Scopes: []string{"Presence.Read", "Presence.ReadWrite"},
		}, ""},
		{"acct string", with(delegatedClaims(), map[string]any{"acct": "1"}), presence.Principal{
			Tenant: tenant, User: user, AppID: app, Delegated: true, Personal: true,
			Scopes: []string{"Presence.Read", "Presence.ReadWrite"},
		}, ""},
		{"acct zero", with(delegatedClaims(), map[string]any{"acct": 0}), presence.Principal{
			Tenant: tenant, User: user, AppID: app, Delegated: true,
			Scopes: []string{"Presence.Read", "Presence.ReadWrite"},
		}, ""},
		{"no tid", with(appClaims(), map[string]any{"tid": nil}), presence.Principal{}, messageInvalid},
		{"tid not a GUID", with(appClaims(), map[string]any{"tid": "contoso.com"}), presence.Principal{}, messageInvalid},
		{"no azp or appid", with(appClaims(), map[string]any{"azp": nil}), presence.Principal{}, messageInvalid},
		{"azp not a GUID", with(appClaims(), map[string]any{"azp": "my-app"}), presence.Principal{}, messageInvalid},
		{"delegated without oid", with(delegatedClaims(), map[string]any{"oid": nil}), presence.Principal{}, messageInvalid},
		{"delegated oid not a GUID", with(delegatedClaims(), map[string]any{"oid": "alice"}), presence.Principal{}, messageInvalid},
		{"tid of the wrong type", with(appClaims(), map[string]any{"tid": 42}), presence.Principal{}, messageMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := with(tt.claims, map[string]any{"exp": exp})
			p, err := v.Verify(context.Background(), ks.Mint("ES256", c))
			if tt.err != "" {
				wantTokenError(t, err, tt.err)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			tt.want.ExpiresAt = exp
			if !reflect.DeepEqual(p, tt.want) {
				t.Fatalf("Principal = %+v, want %+v", p, tt.want)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	valid := ks.Mint("ES256", appClaims())
	parts := strings.Split(valid, ".")
	tests := map[string]struct{ token, want string }{
		"empty":            {"", messageEmpty},
		"one part":         {"abc", messageMalformed},
		"two parts":        {"abc.def", messageMalformed},
		"four parts":       {valid + ".x", messageMalformed},
		"empty header":     {"." + parts[1] + "." + parts[2], messageMalformed},
		"empty payload":    {parts[0] + ".." + parts[2], messageMalformed},
		"padding":          {parts[0] + "=." + parts[1] + "." + parts[2], messageMalformed},
		"bearer prefix":    {"Bearer " + valid, messageMalformed},
		"space":            {valid + " ", messageMalformed},
		"header not JSON":  {"abc." + parts[1] + "." + parts[2], messageMalformed},
		"payload not JSON": {parts[0] + ".abc." + parts[2], messageMalformed},
		"too long":         {strings.Repeat("a", maxTokenLen) + "." + parts[1] + "." + parts[2], messageInvalid},
		"no signature":     {parts[0] + "." + parts[1] + ".", messageInvalid},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tt.token)
			wantTokenError(t, err, tt.want)
		})
	}
}

func TestTokenErrorUnwrap(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	_, err := v.Verify(context.Background(), ks.Mint("RS256", with(appClaims(), map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})))
	var pe *presence.Error
	if !errors.As(err, &pe) || pe.Message != messageExpiredNbf {
		t.Fatalf("errors.As(%v) = %v", err, pe)
	}
	if !errors.Is(err, &presence.Error{Code: presence.CodeInvalidAuthenticationToken}) {
		t.Errorf("errors.Is(%v, InvalidAuthenticationToken) = false", err)
	}
	if !errors.Is(err, jwt.ErrTokenExpired) {
		t.Errorf("errors.Is(%v, jwt.ErrTokenExpired) = false", err)
	}
	if got := presence.ErrorCode(err); got != presence.CodeInvalidAuthenticationToken {
		t.Errorf("ErrorCode = %q", got)
	}
	var te *TokenError
	if !errors.As(err, &te) || te.Cause == nil {
		t.Errorf("errors.As(*TokenError) = %v", te)
	}
	if s := err.Error(); !strings.Contains(s, messageExpiredNbf) || !strings.Contains(s, "expired") {
		t.Errorf("Error() = %q, want the message and the cause", s)
	}
	_, err = v.Verify(context.Background(), "")
	if want := "InvalidAuthenticationToken: " + messageEmpty; err == nil || err.Error() != want {
		t.Errorf("Error() = %v, want %q", err, want)
	}
	if !errors.As(err, &pe) || pe.Message != messageEmpty {
		t.Fatalf("errors.As(%v) = %v", err, pe)
	}
}

// countKeys makes v count its key look-ups, that is its signature checks.
func countKeys(v *Verifier) *atomic.Int32 {
	var n atomic.Int32
	keys := v.keys
	v.keys = func(ctx context.Context) jwt.Keyfunc {
		kf := keys(ctx)
		return func(t *jwt.Token) (any, error) {
			n.Add(1)
			return kf(t)
		}
	}
	return &n
}

func TestCache(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	checks := countKeys(v)
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	v.now = func() time.Time { return time.Unix(0, clock.Load()) }
	ctx := context.Background()

	exp := time.Unix(0, clock.Load()).Add(10 * time.Second).Truncate(time.Second)
	token := ks.Mint("RS256", with(delegatedClaims(), map[string]any{"exp": exp.Unix()}))
	first, err := v.Verify(ctx, token)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	second, err := v.Verify(ctx, token)
	if err != nil {
		t.Fatalf("Verify again: %v", err)
	}
	if !reflect.DeepEqual(first, second) {
		t.Fatalf("cached Principal = %+v, want %+v", second, first)
	}
	// Appending to a returned slice must not reach the cache.
	_ = append(second.Scopes, "Presence.ReadWrite.All")
	if third, _ := v.Verify(ctx, token); !reflect.DeepEqual(third, first) {
		t.Fatalf("cache changed by a caller: %+v", third)
	}
	if n := checks.Load(); n != 1 {
		t.Fatalf("signature checked %d times, want 1", n)
	}

	// Still served within the skew after exp...
	clock.Store(exp.Add(v.skew).UnixNano())
	if _, err := v.Verify(ctx, token); err != nil {
		t.Fatalf("Verify at exp+skew: %v", err)
	}
	if n := checks.Load(); n != 1 {
		t.Fatalf("signature checked %d times, want 1", n)
	}
	// ...but not two seconds later.
	clock.Store(exp.Add(v.skew + 2*time.Second).UnixNano())
	_, err = v.Verify(ctx, token)
	wantTokenError(t, err, messageExpiredNbf)
	if n := v.cache.len(); n != 0 {
		t.Errorf("cache holds %d tokens after the only one expired", n)
	}
}

func TestCacheConcurrentFirstUse(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	checks := countKeys(v)
	token := ks.Mint("RS256", appClaims())
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), token); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Verify: %v", err)
	}
	if n := checks.Load(); n != 1 {
		t.Errorf("signature checked %d times, want 1", n)
	}
}

func TestCacheConcurrentRejections(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	token := ks.Mint("RS256", with(appClaims(), map[string]any{"aud": "api://other"}))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			_, err := v.Verify(context.Background(), token)
			var pe *presence.Error
			if !errors.As(err, &pe) || pe.Message != messageAudience {
				t.Errorf("Verify = %v", err)
			}
		})
	}
	wg.Wait()
	if n := v.cache.len(); n != 0 {
		t.Errorf("cache holds %d rejected tokens", n)
	}
}

func TestCacheBounded(t *testing.T) {
	d, err := NewDevIssuer("")
	if err != nil {
		t.Fatal(err)
	}
	v := d.Verifier(Config{CacheSize: cacheShards})
	for i := range 300 {
		token, err := d.Mint(TokenRequest{Tenant: testTenant, AppID: testApp, TTL: time.Duration(i+1) * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := v.Verify(context.Background(), token); err != nil {
			t.Fatalf("Verify: %v", err)
		}
	}
	if n := v.cache.len(); n > cacheShards {
		t.Errorf("cache holds %d tokens, limit %d", n, cacheShards)
	}
}

func TestCacheEvictsExpiredFirst(t *testing.T) {
	c := newCache(cacheShards) // one entry per shard
	now := time.Now()
	s := &c.shards[0]
	s.put(1, "expired", presence.Principal{User: "a"}, now.Add(-time.Second), now)
	s.put(2, "fresh", presence.Principal{User: "b"}, now.Add(time.Hour), now)
	if _, ok := s.entries[1]; ok || len(s.entries) != 1 || s.bytes != len("fresh") {
		t.Fatalf("entries = %v, bytes = %d", s.entries, s.bytes)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		file := filepath.Join(dir, name)
		if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	tests := map[string]Config{
		"no keys":          {},
		"missing file":     {JWKSFile: filepath.Join(dir, "missing.json")},
		"not JSON":         {JWKSFile: write("bad.json", "{")},
		"empty set":        {JWKSFile: write("empty.json", `{"keys":[]}`)},
		"only unsupported": {JWKSFile: write("unsupported.json", `{"keys":[{"kty":"XYZ","kid":"1"}]}`)},
		"bad URL":          {JWKSURL: "::not a url"},
	}
	for name, cfg := range tests {
		t.Run(name, func(t *testing.T) {
			v, err := NewVerifier(context.Background(), cfg, nil)
			if err == nil {
				v.Close()
				t.Fatal("NewVerifier succeeded")
			}
		})
	}
}

func TestURLAndFile(t *testing.T) {
	fromURL, fromFile := authtest.NewKeySet(t), authtest.NewKeySet(t)
	srv := newJWKSServer(t, fromURL.JWKS())
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, fromFile.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.JWKSFile = file
	v := urlVerifier(t, srv, cfg)
	for name, ks := range map[string]*authtest.KeySet{"url": fromURL, "file": fromFile} {
		if _, err := v.Verify(context.Background(), ks.Mint("ES256", appClaims())); err != nil {
			t.Errorf("key from %s: %v", name, err)
		}
	}
}

func TestURLUnreachableAtStart(t *testing.T) {
	ks := authtest.NewKeySet(t)
	srv := newJWKSServer(t, []byte("not JSON"))
	v := urlVerifier(t, srv, testConfig())
	srv.set(ks.JWKS())
	// The first unknown kid refetches the set.
	if _, err := v.Verify(context.Background(), ks.Mint("RS256", appClaims())); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestVerifyCancelledWhileWaiting(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	token := ks.Mint("RS256", appClaims())
	release := make(chan struct{})
	entered := make(chan struct{})
	keys := v.keys
	v.keys = func(ctx context.Context) jwt.Keyfunc {
		close(entered)
		<-release
		return keys(ctx)
	}
	done := make(chan error)
	go func() {
		_, err := v.Verify(context.Background(), token)
		done <- err
	}()
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := v.Verify(ctx, token)
	wantTokenError(t, err, messageInvalid)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want one wrapping context.Canceled", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("first Verify: %v", err)
	}
}

func TestVerifyRetriesWhenFirstCallerGivesUp(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	token := ks.Mint("ES256", appClaims())
	entered := make(chan struct{})
	release := make(chan struct{})
	var calls atomic.Int32
	keys := v.keys
	v.keys = func(ctx context.Context) jwt.Keyfunc {
		if calls.Add(1) == 1 {
			close(entered)
			<-release
			return func(*jwt.Token) (any, error) { return nil, context.Canceled }
		}
		return keys(ctx)
	}
	first := make(chan error)
	go func() {
		_, err := v.Verify(context.Background(), token)
		first <- err
	}()
	<-entered
	second := make(chan error)
	go func() {
		_, err := v.Verify(context.Background(), token)
		second <- err
	}()
	// Let the second caller start waiting for the first (if it has not yet,
	// it verifies on its own once the first is done: the same outcome).
	time.Sleep(10 * time.Millisecond)
	close(release)
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first Verify = %v, want context.Canceled", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("second Verify = %v, want it to verify on its own", err)
	}
}

// TestVerifyUncached: a connection's token is verified like any other
// (refused when bad), served from the cache when a request put it there,
// and never added to the cache itself.
func TestVerifyUncached(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	checks := countKeys(v)
	ctx := context.Background()
	token := ks.Mint("RS256", delegatedClaims())
	want, err := v.Verify(context.Background(), ks.Mint("RS256", delegatedClaims()))
	if err != nil {
		t.Fatal(err)
	}
	v.cache = newCache(DefaultCacheSize) // forget that one
	for range 2 {
		p, err := v.VerifyUncached(ctx, token)
		if err != nil {
			t.Fatalf("VerifyUncached: %v", err)
		}
		if p.User != want.User || p.Tenant != want.Tenant {
			t.Fatalf("VerifyUncached = %+v, want the user of %+v", p, want)
		}
	}
	if n := v.cache.len(); n != 0 {
		t.Fatalf("the cache holds %d tokens after VerifyUncached only", n)
	}
	if n := checks.Load(); n != 3 {
		t.Fatalf("signature checked %d times, want 3 (one per uncached verification)", n)
	}
	if _, err := v.Verify(ctx, token); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyUncached(ctx, token); err != nil {
		t.Fatal(err)
	}
	if n := checks.Load(); n != 4 {
		t.Fatalf("signature checked %d times, want 4 (the cached token is served from the cache)", n)
	}
	_, err = v.VerifyUncached(ctx, token[:len(token)-4]+"AAAA")
	if err == nil {
		t.Fatal("a token with a bad signature was accepted")
	}
}
