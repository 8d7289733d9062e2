package notify

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/presenced/presenced/internal/keyfile"
)

// PublisherAppID is the appid claim of every validationToken: the application
// id of Microsoft Graph's change-notification publisher, which receivers
// check.
const PublisherAppID = "0bf30f3b-4a52-48df-9a82-234910c4a086"

// DefaultValidationTokenTTL is the lifetime of a validationToken minted with
// a zero TTL.
const DefaultValidationTokenTTL = time.Hour

// validationTokenSkew is how far before the instant of issue a
// validationToken's iat and nbf lie, for receivers whose clocks run behind
// ours. Entra ID backdates its tokens by the same five minutes.
const validationTokenSkew = 5 * time.Minute

// Sizes of the signing key.
const (
	signerKeyBits    = 2048
	maxSignerKeyBits = 4096
)

// Signer signs the validationTokens of rich notifications with presenced's
// own RSA key (RS256, as Microsoft's are); JWKS publishes the public half.
// It is safe for concurrent use.
type Signer struct {
	key  *rsa.PrivateKey
	kid  string
	jwks []byte
}

// NewSigner returns a Signer whose key is in keyFile, a PEM "PRIVATE KEY"
// (PKCS #8) or "RSA PRIVATE KEY" (PKCS #1) block holding an RSA key of 2048
// to 4096 bits. When keyFile does not exist, it generates a 2048-bit key and
// writes it there (PKCS #8, mode 0600), creating the directory; when keyFile
// is empty, the key is ephemeral and receivers must refetch the JWKS after a
// restart.
func NewSigner(keyFile string) (*Signer, error) {
	var key *rsa.PrivateKey
	var err error
	if keyFile == "" {
		key, err = rsa.GenerateKey(rand.Reader, signerKeyBits)
		if err != nil {
			err = fmt.Errorf("notify: generating signing key: %w", err)
		}
	} else {
		key, err = loadOrCreateSignerKey(keyFile)
	}
	if err != nil {
		return nil, err
	}
	return newSigner(key)
}

func newSigner(key *rsa.PrivateKey) (*Signer, error) {
	kid, n, e := rsaThumbprint(&key.PublicKey)
	jwks, err := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e,
	}}})
	if err != nil {
		return nil, fmt.Errorf("notify: signing JWKS: %w", err)
	}
	return &Signer{key: key, kid: kid, jwks: jwks}, nil
}

// rsaThumbprint returns the RFC 7638 thumbprint of pub, and its n and e in
// base64url as a JWK writes them.
func rsaThumbprint(pub *rsa.PublicKey) (kid, n, e string) {
	n = base64.RawURLEncoding.EncodeToString(pub.N.Bytes())
	e = base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
	// The SHA-256 of the required members, in lexical order, without white
	// space; base64url has nothing JSON would escape.
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:]), n, e
}

// loadOrCreateSignerKey reads the RSA key in file, or creates one there.
func loadOrCreateSignerKey(file string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return createSignerKey(file)
	}
	if err != nil {
		return nil, fmt.Errorf("notify: reading signing key: %w", err)
	}
	return parseSignerKey(file, data)
}

// parseSignerKey parses the PEM in data, read from file.
func parseSignerKey(file string, data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("notify: signing key %s: no PEM block", file)
	}
	var k any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("notify: signing key %s: PEM block %q, not PRIVATE KEY or RSA PRIVATE KEY",
			file, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("notify: signing key %s: %w", file, err)
	}
	key, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("notify: signing key %s: %T, not an RSA key", file, k)
	}
	if bits := key.N.BitLen(); bits < signerKeyBits || bits > maxSignerKeyBits {
		return nil, fmt.Errorf("notify: signing key %s: RSA key of %d bits, not %d to %d",
			file, bits, signerKeyBits, maxSignerKeyBits)
	}
	return key, nil
}

// createSignerKey generates an RSA key and writes it to file, which must not
// exist yet: when another process has just created it, that key is used.
func createSignerKey(file string) (*rsa.PrivateKey, error) {
	key, err := rsa.GenerateKey(rand.Reader, signerKeyBits)
	if err != nil {
		return nil, fmt.Errorf("notify: generating signing key: %w", err)
	}
	err = keyfile.CreatePEM(file, key)
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateSignerKey(file)
	}
	if err != nil {
		return nil, fmt.Errorf("notify: writing signing key: %w", err)
	}
	return key, nil
}

// KeyID returns the kid of the signing key: its RFC 7638 thumbprint.
func (s *Signer) KeyID() string { return s.kid }

// JWKS returns the JSON Web Key Set holding the signing key's public half,
// for GET /.well-known/jwks.json.
func (s *Signer) JWKS() []byte {
	return append([]byte(nil), s.jwks...)
}

// ValidationToken returns a validationToken for the notifications that one
// application (appID, the aud) receives from one tenant (tenantID, the tid),
// issued by issuer (the server's public URL) at now and valid for ttl (zero
// means DefaultValidationTokenTTL: exp is now+ttl). Its appid is
// PublisherAppID; its iat and nbf are five minutes before now, as Entra ID
// backdates its tokens, so that receivers whose clocks are a little behind
// (and check iat, as jwt.WithIssuedAt does) accept it.
func (s *Signer) ValidationToken(appID, tenantID, issuer string, now time.Time, ttl time.Duration) (string, error) {
	switch {
	case appID == "":
		return "", errors.New("notify: validation token: no app id")
	case tenantID == "":
		return "", errors.New("notify: validation token: no tenant id")
	case issuer == "":
		return "", errors.New("notify: validation token: no issuer")
	case ttl < 0:
		return "", fmt.Errorf("notify: validation token: negative lifetime %v", ttl)
	case ttl == 0:
		ttl = DefaultValidationTokenTTL
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"aud":   appID,
		"iss":   issuer,
		"tid":   tenantID,
		"appid": PublisherAppID,
		"iat":   now.Add(-validationTokenSkew).Unix(),
		"nbf":   now.Add(-validationTokenSkew).Unix(),
		"exp":   now.Add(ttl).Unix(),
	})
	tok.Header["kid"] = s.kid
	signed, err := tok.SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("notify: signing validation token: %w", err)
	}
	return signed, nil
}
