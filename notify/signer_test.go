package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ephemeralSigner is shared by the tests that do not care about the key.
var ephemeralSigner = sync.OnceValues(func() (*Signer, error) { return NewSigner("") })

func testSigner(t *testing.T) *Signer {
	t.Helper()
	s, err := ephemeralSigner()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type jwk struct {
	Kty, Use, Alg, Kid, N, E string
}

// parseJWKS reads the one RSA key in a JWK Set with the standard library
// only, as a receiver without a JOSE library would.
func parseJWKS(t *testing.T, b []byte) (jwk, *rsa.PublicKey) {
	t.Helper()
	var set struct{ Keys []jwk }
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatalf("JWKS %s: %v", b, err)
	}
	if len(set.Keys) != 1 {
		t.Fatalf("JWKS has %d keys, want 1: %s", len(set.Keys), b)
	}
	k := set.Keys[0]
	if k.Kty != "RSA" || k.Use != "sig" || k.Alg != "RS256" || k.Kid == "" {
		t.Errorf("JWK %+v: want kty RSA, use sig, alg RS256 and a kid", k)
	}
	n, err := base64.RawURLEncoding.DecodeString(k.N)
	if err != nil {
		t.Fatalf("n: %v", err)
	}
	e, err := base64.RawURLEncoding.DecodeString(k.E)
	if err != nil {
		t.Fatalf("e: %v", err)
	}
	if len(e) == 0 || len(e) > 4 || e[0] == 0 || n[0] == 0 {
		t.Fatalf("n or e not minimal big-endian: n[0]=%d e=%x", n[0], e)
	}
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	return k, pub
}

// verify parses tok as a receiver would, at instant at.
func verify(t *testing.T, jwks []byte, tok, appID, issuer string, at time.Time) (jwt.MapClaims, error) {
	t.Helper()
	k, pub := parseJWKS(t, jwks)
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(tok, claims, func(tok *jwt.Token) (any, error) {
		if kid, _ := tok.Header["kid"].(string); kid != k.Kid {
			t.Errorf("token kid %q, JWKS kid %q", kid, k.Kid)
		}
		return pub, nil
	}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(appID), jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithTimeFunc(func() time.Time { return at }))
	return claims, err
}

func TestValidationToken(t *testing.T) {
	s := testSigner(t)
	const (
		app    = "a0b1c2d3-0000-4000-8000-000000000001"
		tenant = "84bd8158-6d4d-4958-8b9f-9d6445542f95"
		iss    = "https://presenced.example.com"
	)
	now := time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)
	tok, err := s.ValidationToken(app, tenant, iss, now, 0)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := verify(t, s.JWKS(), tok, app, iss, now)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"aud": app, "iss": iss, "tid": tenant, "appid": PublisherAppID,
		"iat": float64(now.Add(-5 * time.Minute).Unix()),
		"nbf": float64(now.Add(-5 * time.Minute).Unix()),
		"exp": float64(now.Add(time.Hour).Unix()),
	}
	for name, v := range want {
		if claims[name] != v {
			t.Errorf("%s = %v (%T), want %v", name, claims[name], claims[name], v)
		}
	}
	if len(claims) != len(want) {
		t.Errorf("claims %v, want exactly %v", claims, want)
	}

	// Header: RS256, the kid, typ JWT, as Microsoft's tokens.
	parts := strings.Split(tok, ".")
	var header map[string]string
	if err := json.Unmarshal(mustB64URL(t, parts[0]), &header); err != nil {
		t.Fatal(err)
	}
	if header["alg"] != "RS256" || header["typ"] != "JWT" || header["kid"] != s.KeyID() {
		t.Errorf("header %v", header)
	}
	// aud is a string, not an array, as in Microsoft's tokens.
	if !strings.Contains(string(mustB64URL(t, parts[1])), `"aud":"`+app+`"`) {
		t.Errorf("payload %s: aud is not a plain string", mustB64URL(t, parts[1]))
	}

	// Lifetime as seen by a receiver.
	for _, tt := range []struct {
		at time.Time
		ok bool
	}{
		{now.Add(-4 * time.Minute), true},
		{now.Add(59 * time.Minute), true},
		{now.Add(-6 * time.Minute), false},
		{now.Add(61 * time.Minute), false},
	} {
		if _, err := verify(t, s.JWKS(), tok, app, iss, tt.at); (err == nil) != tt.ok {
			t.Errorf("verified at now%+v: %v, want ok=%v", tt.at.Sub(now), err, tt.ok)
		}
	}
	// Another application's receiver refuses it.
	if _, err := verify(t, s.JWKS(), tok, "b0b1c2d3-0000-4000-8000-000000000002", iss, now); err == nil {
		t.Error("token accepted for another audience")
	}
}

func mustB64URL(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestValidationTokenTTL(t *testing.T) {
	s := testSigner(t)
	now := time.Unix(1_800_000_000, 0)
	tok, err := s.ValidationToken("app", "tenant", "https://x", now, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := verify(t, s.JWKS(), tok, "app", "https://x", now)
	if err != nil {
		t.Fatal(err)
	}
	if exp, _ := claims["exp"].(float64); exp != float64(now.Add(10*time.Minute).Unix()) {
		t.Errorf("exp = %v, want now + 10m", claims["exp"])
	}
}

func TestValidationTokenInvalid(t *testing.T) {
	s := testSigner(t)
	now := time.Now()
	for _, tt := range []struct {
		name             string
		app, tenant, iss string
		ttl              time.Duration
	}{
		{"no app", "", "t", "https://x", 0},
		{"no tenant", "a", "", "https://x", 0},
		{"no issuer", "a", "t", "", 0},
		{"negative ttl", "a", "t", "https://x", -time.Second},
	} {
		if tok, err := s.ValidationToken(tt.app, tt.tenant, tt.iss, now, tt.ttl); err == nil {
			t.Errorf("%s: got %s", tt.name, tok)
		}
	}
}

// TestRSAThumbprint checks the kid against the example of RFC 7638, 3.1.
func TestRSAThumbprint(t *testing.T) {
	const n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(mustB64URL(t, n)), E: 65537}
	kid, gotN, gotE := rsaThumbprint(pub)
	if kid != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("kid = %s", kid)
	}
	if gotN != n || gotE != "AQAB" {
		t.Errorf("n, e = %s, %s", gotN, gotE)
	}
}

func TestSignerKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "keys")
	file := filepath.Join(dir, "signing.pem")
	created, err := NewSigner(file)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(dir); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("key directory: %v, %v; want mode 0700", di.Mode().Perm(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("key directory holds %d entries, want only the key", len(entries))
	}

	loaded, err := NewSigner(file)
	if err != nil {
		t.Fatal(err)
	}
	if loaded.KeyID() != created.KeyID() {
		t.Errorf("kid after reload %s, want %s", loaded.KeyID(), created.KeyID())
	}
	// A token from before the restart verifies against the JWKS after it.
	now := time.Now()
	tok, err := created.ValidationToken("app", "tenant", "https://x", now, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := verify(t, loaded.JWKS(), tok, "app", "https://x", now); err != nil {
		t.Error(err)
	}

	// The same key in PKCS #1 loads too.
	block, _ := pem.Decode(mustRead(t, file))
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := filepath.Join(dir, "pkcs1.pem")
	writeFile(t, pkcs1, pem.EncodeToMemory(&pem.Block{
		Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k.(*rsa.PrivateKey))}))
	s1, err := NewSigner(pkcs1)
	if err != nil {
		t.Fatal(err)
	}
	if s1.KeyID() != created.KeyID() {
		t.Errorf("PKCS #1 kid %s, want %s", s1.KeyID(), created.KeyID())
	}
}

func TestSignerKeyFileConcurrentCreate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "signing.pem")
	var wg sync.WaitGroup
	var signers [2]*Signer
	var errs [2]error
	for i := range signers {
		wg.Go(func() { signers[i], errs[i] = NewSigner(file) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if signers[0].KeyID() != signers[1].KeyID() {
		t.Errorf("two processes starting at once got different keys")
	}
}

func TestSignerKeyFileBad(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalPKCS8PrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	small, err := x509.MarshalPKCS8PrivateKey(rsa1024())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"EC key":      pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}),
		"EC as PKCS1": pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: ecDER}),
		"RSA 1024":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: small}),
		"certificate": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: receiverCert(t)}),
		"not PEM":     []byte("hello"),
		"empty":       nil,
	} {
		file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		writeFile(t, file, data)
		if _, err := NewSigner(file); err == nil {
			t.Errorf("%s: NewSigner succeeded", name)
		}
		if got := mustRead(t, file); string(got) != string(data) {
			t.Errorf("%s: key file was rewritten", name)
		}
	}
	if _, err := NewSigner(dir); err == nil {
		t.Error("NewSigner(a directory) succeeded")
	}
}

func mustRead(t *testing.T, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t *testing.T, file string, data []byte) {
	t.Helper()
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
}
