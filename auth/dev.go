package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presenced/presenced/internal/keyfile"
)

// DefaultDevTTL is the lifetime of a token minted with a zero TTL.
const DefaultDevTTL = time.Hour

// DevIssuer mints ES256 access tokens for development and tests, with a
// P-256 key that it loads from a file, creates in a file, or keeps in memory
// only. It is safe for concurrent use.
type DevIssuer struct {
	file string // where the key is kept; empty when in memory only
	key  *ecdsa.PrivateKey
	kid  string
	jwks []byte
	now  func() time.Time
}

// NewDevIssuer returns a DevIssuer whose key is in keyFile, a PEM "PRIVATE
// KEY" block (PKCS #8). When keyFile does not exist, it generates a key and
// writes it there with mode 0600, creating the directory; when keyFile is
// empty, the key is ephemeral and tokens die with the process.
func NewDevIssuer(keyFile string) (*DevIssuer, error) {
	var key *ecdsa.PrivateKey
	var err error
	switch {
	case keyFile == "":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		key, err = loadOrCreateKey(keyFile)
	}
	if err != nil {
		return nil, err
	}
	d, err := newDevIssuer(key)
	if err != nil {
		return nil, err
	}
	d.file = keyFile
	return d, nil
}

// LoadDevIssuer returns a DevIssuer whose key is in keyFile, which must
// exist: unlike NewDevIssuer it never creates a key. A missing file is an
// error wrapping fs.ErrNotExist.
func LoadDevIssuer(keyFile string) (*DevIssuer, error) {
	key, err := loadKey(keyFile)
	if err != nil {
		return nil, err
	}
	d, err := newDevIssuer(key)
	if err != nil {
		return nil, err
	}
	d.file = keyFile
	return d, nil
}

func newDevIssuer(key *ecdsa.PrivateKey) (*DevIssuer, error) {
	point, err := key.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("auth: dev key: %w", err)
	}
	// An uncompressed P-256 point: 0x04, then X and Y in 32 bytes each.
	x := base64.RawURLEncoding.EncodeToString(point[1:33])
	y := base64.RawURLEncoding.EncodeToString(point[33:65])
	// RFC 7638: the SHA-256 of the required members, in lexical order,
	// without white space.
	sum := sha256.Sum256([]byte(`{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`))
	kid := base64.RawURLEncoding.EncodeToString(sum[:])
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256",
	}}})
	if err != nil {
		return nil, fmt.Errorf("auth: dev JWKS: %w", err)
	}
	return &DevIssuer{key: key, kid: kid, jwks: jwks, now: time.Now}, nil
}

// loadOrCreateKey reads the P-256 key in file, or creates one there.
func loadOrCreateKey(file string) (*ecdsa.PrivateKey, error) {
	key, err := loadKey(file)
	if errors.Is(err, fs.ErrNotExist) {
		return createKey(file)
	}
	return key, err
}

// loadKey reads the P-256 key in file; a missing file is an error wrapping
// fs.ErrNotExist.
func loadKey(file string) (*ecdsa.PrivateKey, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("auth: reading dev key: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("auth: dev key %s: no PEM PRIVATE KEY block", file)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: dev key %s: %w", file, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("auth: dev key %s: not a P-256 ECDSA key", file)
	}
	return key, nil
}

// createKey generates a P-256 key and writes it to file, which must not
// exist yet: when another process has just created it, that key is used.
func createKey(file string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generating dev key: %w", err)
	}
	// Written whole or not at all: another process starting on the same
	// data directory must never read a half-written key.
	err = keyfile.CreatePEM(file, key)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateKey(file)
	}
	if err != nil {
		return nil, fmt.Errorf("auth: writing dev key: %w", err)
	}
	return key, nil
}

// KeyID returns the kid of the issuer's key: its RFC 7638 thumbprint.
func (d *DevIssuer) KeyID() string { return d.kid }

// JWKS returns the JSON Web Key Set holding the issuer's public key, for a
// /.well-known endpoint or a JWKS file.
func (d *DevIssuer) JWKS() []byte {
	return append([]byte(nil), d.jwks...)
}

// TokenRequest describes a token for DevIssuer.Mint.
type TokenRequest struct {
	// Tenant is the tid, a GUID.
	Tenant string
	// User is the oid of the signed-in user, a GUID; when set the token is
	// delegated (it carries scp), otherwise it is an application token.
	User string
	// AppID is the client id (azp), a GUID.
	AppID string
	// Scopes are the delegated scopes, written space-separated to scp.
	Scopes []string
	// Roles are the application roles, written to roles.
	Roles []string
	// Issuer is the iss claim; empty leaves it out.
	Issuer string
	// Audience is the aud claim; empty means DefaultAudience.
	Audience string
	// TTL is the token's lifetime; zero means DefaultDevTTL.
	TTL time.Duration
}

// Mint returns a signed token for req.
func (d *DevIssuer) Mint(req TokenRequest) (string, error) {
	if !isGUID(req.Tenant) {
		return "", fmt.Errorf("auth: tenant %q is not a GUID", req.Tenant)
	}
	if !isGUID(req.AppID) {
		return "", fmt.Errorf("auth: app id %q is not a GUID", req.AppID)
	}
	if req.User != "" && !isGUID(req.User) {
		return "", fmt.Errorf("auth: user %q is not a GUID", req.User)
	}
	if req.TTL < 0 {
		return "", fmt.Errorf("auth: negative token lifetime %v", req.TTL)
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = DefaultDevTTL
	}
	aud := req.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	now := d.now()
	c := jwt.MapClaims{
		"aud": aud,
		"tid": strings.ToLower(req.Tenant),
		"azp": strings.ToLower(req.AppID),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"exp": now.Add(ttl).Unix(),
		"ver": "2.0",
	}
	if req.Issuer != "" {
		c["iss"] = req.Issuer
	}
	if req.User != "" {
		c["oid"] = strings.ToLower(req.User)
		c["scp"] = strings.Join(req.Scopes, " ")
	}
	if len(req.Roles) > 0 {
		c["roles"] = req.Roles
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, c)
	t.Header["kid"] = d.kid
	s, err := t.SignedString(d.key)
	if err != nil {
		return "", fmt.Errorf("auth: signing dev token: %w", err)
	}
	return s, nil
}

// Verifier returns a Verifier that accepts the tokens of this issuer, with
// the Issuers, Audiences, Skew and CacheSize of cfg (its JWKS settings are
// ignored). It starts no goroutine; Close is still safe to call.
func (d *DevIssuer) Verifier(cfg Config) *Verifier {
	pub := &d.key.PublicKey
	v := newVerifier(cfg, func(context.Context) jwt.Keyfunc {
		return func(t *jwt.Token) (any, error) {
			if kid, ok := t.Header["kid"]; ok && kid != d.kid {
				return nil, fmt.Errorf("%w: kid %v is not the development key's (%s)", errUnknownKey, kid, d.kid)
			}
			return pub, nil
		}
	}, nil)
	v.devKey = "its development key (kid " + d.kid + ")"
	if d.file != "" {
		v.devKey = d.file + " (kid " + d.kid + ")"
	}
	return v
}
