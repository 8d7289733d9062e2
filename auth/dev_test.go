package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	presence "github.com/presenced/presenced"
)

func TestDevIssuerKeyFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "state", "dev", "key.pem")
	first, err := NewDevIssuer(file)
	if err != nil {
		t.Fatalf("NewDevIssuer (create): %v", err)
	}
	info, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, want 0600", info.Mode().Perm())
	}
	second, err := NewDevIssuer(file)
	if err != nil {
		t.Fatalf("NewDevIssuer (load): %v", err)
	}
	if first.KeyID() != second.KeyID() {
		t.Fatalf("kid changed on reload: %q, %q", first.KeyID(), second.KeyID())
	}
	token, err := first.Mint(TokenRequest{Tenant: testTenant, AppID: testApp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := second.Verifier(Config{}).Verify(context.Background(), token); err != nil {
		t.Fatalf("reloaded issuer refuses the first one's token: %v", err)
	}
}

func TestDevIssuerBadKeyFile(t *testing.T) {
	dir := t.TempDir()
	rk, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(rk)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"not PEM":   "hello",
		"not key":   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("junk")})),
		"RSA key":   string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"wrong PEM": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
	}
	for name, content := range tests {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
			if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := NewDevIssuer(file); err == nil {
				t.Fatal("NewDevIssuer succeeded")
			}
		})
	}
}

func TestDevIssuerMint(t *testing.T) {
	d, err := NewDevIssuer("")
	if err != nil {
		t.Fatal(err)
	}
	const iss = "http://localhost:8080"
	v := d.Verifier(Config{Issuers: []string{iss}, Audiences: []string{DefaultAudience, GraphAppID}})
	defer v.Close()
	tenant, user, app := strings.ToLower(testTenant), strings.ToLower(testUser), strings.ToLower(testApp)
	tests := []struct {
		name string
		req  TokenRequest
		want presence.Principal
		err  string
	}{
		{"delegated", TokenRequest{Tenant: testTenant, User: testUser, AppID: testApp, Issuer: iss,
			Scopes: []string{presence.ScopePresenceRead, presence.ScopePresenceReadWrite}},
			presence.Principal{Tenant: tenant, User: user, AppID: app, Delegated: true,
				Scopes: []string{presence.ScopePresenceRead, presence.ScopePresenceReadWrite}}, ""},
		{"delegated without scopes", TokenRequest{Tenant: testTenant, User: testUser, AppID: testApp, Issuer: iss},
			presence.Principal{Tenant: tenant, User: user, AppID: app, Delegated: true}, ""},
		{"application", TokenRequest{Tenant: testTenant, AppID: testApp, Issuer: iss, Audience: GraphAppID,
			Roles: []string{presence.ScopePresenceReadWriteAll}},
			presence.Principal{Tenant: tenant, AppID: app, Roles: []string{presence.ScopePresenceReadWriteAll}}, ""},
		{"personal", TokenRequest{Tenant: presence.ConsumerTenant, User: testUser, AppID: testApp, Issuer: iss},
			presence.Principal{Tenant: presence.ConsumerTenant, User: user, AppID: app, Delegated: true, Personal: true}, ""},
		{"other issuer", TokenRequest{Tenant: testTenant, AppID: testApp, Issuer: "http://elsewhere"},
			presence.Principal{}, messageIssuer},
		{"other audience", TokenRequest{Tenant: testTenant, AppID: testApp, Issuer: iss, Audience: "api://x"},
			presence.Principal{}, messageAudience},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := d.Mint(tt.req)
			if err != nil {
				t.Fatalf("Mint: %v", err)
			}
			p, err := v.Verify(context.Background(), token)
			if tt.err != "" {
				wantTokenError(t, err, tt.err)
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if d := p.ExpiresAt - time.Now().Add(DefaultDevTTL).Unix(); d < -5 || d > 5 {
				t.Errorf("ExpiresAt is %ds off an hour from now", d)
			}
			tt.want.ExpiresAt = p.ExpiresAt
			if !reflect.DeepEqual(p, tt.want) {
				t.Fatalf("Principal = %+v, want %+v", p, tt.want)
			}
		})
	}
}

func TestDevIssuerMintClaims(t *testing.T) {
	d, err := NewDevIssuer("")
	if err != nil {
		t.Fatal(err)
	}
	token, err := d.Mint(TokenRequest{Tenant: testTenant, User: testUser, AppID: testApp,
		Scopes: []string{"a", "b"}, Issuer: "http://iss", TTL: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	c := jwt.MapClaims{}
	tok, _, err := jwt.NewParser().ParseUnverified(token, c)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["kid"] != d.KeyID() || tok.Header["alg"] != "ES256" {
		t.Errorf("header = %v", tok.Header)
	}
	for k, want := range map[string]any{
		"iss": "http://iss", "aud": DefaultAudience, "tid": strings.ToLower(testTenant),
		"oid": strings.ToLower(testUser), "azp": strings.ToLower(testApp), "scp": "a b",
	} {
		if c[k] != want {
			t.Errorf("claim %s = %v, want %v", k, c[k], want)
		}
	}
	if exp, nbf := c["exp"].(float64), c["nbf"].(float64); exp-nbf != 300 {
		t.Errorf("exp - nbf = %v, want 300", exp-nbf)
	}
	if _, ok := c["iat"]; !ok {
		t.Error("no iat")
	}
}

func TestDevIssuerMintInvalid(t *testing.T) {
	d, err := NewDevIssuer("")
	if err != nil {
		t.Fatal(err)
	}
	for name, req := range map[string]TokenRequest{
		"no tenant":       {AppID: testApp},
		"no app":          {Tenant: testTenant},
		"user not a GUID": {Tenant: testTenant, AppID: testApp, User: "alice"},
		"negative TTL":    {Tenant: testTenant, AppID: testApp, TTL: -time.Second},
	} {
		if _, err := d.Mint(req); err == nil {
			t.Errorf("%s: Mint succeeded", name)
		}
	}
}

func TestDevIssuerJWKS(t *testing.T) {
	d, err := NewDevIssuer("")
	if err != nil {
		t.Fatal(err)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(d.JWKS(), &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 1 || set.Keys[0]["kid"] != d.KeyID() || set.Keys[0]["d"] != "" {
		t.Fatalf("JWKS = %s", d.JWKS())
	}
	if len(d.KeyID()) != 43 {
		t.Errorf("kid %q is not a base64url SHA-256", d.KeyID())
	}
	// The published set verifies the issuer's tokens through NewVerifier.
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, d.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(context.Background(), Config{JWKSFile: file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	token, err := d.Mint(TokenRequest{Tenant: testTenant, AppID: testApp})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("Verify: %v", err)
	}
}

func TestDevVerifierRefusesOtherKeys(t *testing.T) {
	d, err := NewDevIssuer("")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewDevIssuer("")
	if err != nil {
		t.Fatal(err)
	}
	v := d.Verifier(Config{})
	token, err := other.Mint(TokenRequest{Tenant: testTenant, AppID: testApp})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), token)
	wantTokenError(t, err, messageInvalid)
	// Without a kid the key is tried, and the signature does not match.
	parts := strings.Split(token, ".")
	header := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{})
	hs, err := header.SigningString()
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), strings.Split(hs, ".")[0]+"."+parts[1]+"."+parts[2])
	wantTokenError(t, err, messageInvalid)
}
