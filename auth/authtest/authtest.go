// Package authtest mints signed JWT access tokens for tests, with keys of its
// own and the JSON Web Key Set that verifies them.
package authtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// KeySet is an RS256 key and an ES256 key, each with a kid (its RFC 7638
// thumbprint). It is safe for concurrent use.
type KeySet struct {
	tb   testing.TB
	rsa  *rsa.PrivateKey
	ec   *ecdsa.PrivateKey
	kids map[string]string // alg -> kid
	jwks []byte
}

// NewKeySet generates a fresh RSA 2048 and P-256 key pair, so two KeySets
// never share a key or a kid.
func NewKeySet(tb testing.TB) *KeySet {
	tb.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("authtest: generating RSA key: %v", err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("authtest: generating P-256 key: %v", err)
	}
	point, err := ek.PublicKey.Bytes()
	if err != nil {
		tb.Fatalf("authtest: encoding P-256 key: %v", err)
	}
	n := b64(rk.PublicKey.N.Bytes())
	e := b64(big.NewInt(int64(rk.PublicKey.E)).Bytes())
	x, y := b64(point[1:33]), b64(point[33:65])
	rkid := thumbprint(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`)
	ekid := thumbprint(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`)
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "n": n, "e": e, "kid": rkid, "use": "sig", "alg": "RS256"},
		{"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": ekid, "use": "sig", "alg": "ES256"},
	}})
	if err != nil {
		tb.Fatalf("authtest: encoding JWKS: %v", err)
	}
	return &KeySet{
		tb:   tb,
		rsa:  rk,
		ec:   ek,
		kids: map[string]string{"RS256": rkid, "ES256": ekid},
		jwks: jwks,
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func thumbprint(canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return b64(sum[:])
}

// JWKS returns the public JSON Web Key Set of both keys.
func (k *KeySet) JWKS() []byte {
	return append([]byte(nil), k.jwks...)
}

// KeyID returns the kid of the key for alg, "RS256" or "ES256".
func (k *KeySet) KeyID(alg string) string {
	k.tb.Helper()
	kid, ok := k.kids[alg]
	if !ok {
		k.tb.Fatalf("authtest: unsupported alg %q (want RS256 or ES256)", alg)
	}
	return kid
}

// Mint returns a token with claims, signed with the key for alg ("RS256" or
// "ES256") and with that key's kid in its header. The claims are written as
// given: nothing is added.
func (k *KeySet) Mint(alg string, claims map[string]any) string {
	k.tb.Helper()
	var method jwt.SigningMethod
	var key any
	switch alg {
	case "RS256":
		method, key = jwt.SigningMethodRS256, k.rsa
	case "ES256":
		method, key = jwt.SigningMethodES256, k.ec
	default:
		k.tb.Fatalf("authtest: unsupported alg %q (want RS256 or ES256)", alg)
	}
	t := jwt.NewWithClaims(method, jwt.MapClaims(claims))
	t.Header["kid"] = k.kids[alg]
	s, err := t.SignedString(key)
	if err != nil {
		k.tb.Fatalf("authtest: signing: %v", err)
	}
	return s
}

// ServeJWKS serves the JWKS over HTTP until the test ends and returns its
// URL.
func (k *KeySet) ServeJWKS() string {
	k.tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(k.jwks)
	}))
	k.tb.Cleanup(srv.Close)
	return srv.URL
}
