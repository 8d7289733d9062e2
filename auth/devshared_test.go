package auth

import (
	"context"
	"testing"

	presence "github.com/presenced/presenced"
)

// Nodes that share one development key (made by the first, read by the
// others) accept each other's tokens and publish the same JWKS.
func TestDevIssuerFromSharedPEM(t *testing.T) {
	pemKey, err := NewDevKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	n1, err := NewDevIssuerFromPEM("shared", pemKey)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := NewDevIssuerFromPEM("shared", pemKey)
	if err != nil {
		t.Fatal(err)
	}
	if n1.KeyID() != n2.KeyID() || string(n1.JWKS()) != string(n2.JWKS()) {
		t.Fatal("two issuers of one key differ")
	}
	const iss = "http://localhost:8080"
	tok, err := n1.Mint(TokenRequest{Tenant: testTenant, User: testUser, AppID: testApp, Issuer: iss, Scopes: []string{presence.ScopePresenceRead}})
	if err != nil {
		t.Fatal(err)
	}
	v := n2.Verifier(Config{Issuers: []string{iss}, Audiences: []string{DefaultAudience, GraphAppID}})
	defer v.Close()
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("node 2 refuses node 1's token: %v", err)
	}
	other, _ := NewDevKeyPEM()
	n3, err := NewDevIssuerFromPEM("other", other)
	if err != nil {
		t.Fatal(err)
	}
	v3 := n3.Verifier(Config{Issuers: []string{iss}, Audiences: []string{DefaultAudience, GraphAppID}})
	defer v3.Close()
	if _, err := v3.Verify(context.Background(), tok); err == nil {
		t.Fatal("an issuer of another key accepts the token")
	}
	if _, err := NewDevIssuerFromPEM("bad", []byte("not a key")); err == nil {
		t.Fatal("a non-PEM key was accepted")
	}
}
