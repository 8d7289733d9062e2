package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"fmt"

	"github.com/presenced/presenced/internal/keyfile"
)

// NewDevKeyPEM generates a development issuer key for NewDevIssuerFromPEM,
// as a PEM "PRIVATE KEY" block: the first of several nodes makes it and
// stores it where every node reads it, so each accepts the tokens minted
// for any of them.
func NewDevKeyPEM() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("auth: generating dev key: %w", err)
	}
	return keyfile.EncodePEM(key)
}

// NewDevIssuerFromPEM returns a DevIssuer whose key is the P-256 key in
// data, a PEM "PRIVATE KEY" block; name says where it came from, for errors.
func NewDevIssuerFromPEM(name string, data []byte) (*DevIssuer, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("auth: dev key %s: no PEM PRIVATE KEY block", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("auth: dev key %s: %w", name, err)
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("auth: dev key %s: not a P-256 ECDSA key", name)
	}
	return newDevIssuer(key)
}
