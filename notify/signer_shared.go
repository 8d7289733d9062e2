package notify

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"

	"github.com/presenced/presenced/internal/keyfile"
)

// NewSignerKeyPEM generates a signing key for NewSignerFromPEM, as a PEM
// "PRIVATE KEY" block: the first of several nodes makes it and stores it
// where every node reads it, so all sign with one key and publish one JWKS.
func NewSignerKeyPEM() ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, signerKeyBits)
	if err != nil {
		return nil, fmt.Errorf("notify: generating signing key: %w", err)
	}
	return keyfile.EncodePEM(key)
}

// NewSignerFromPEM returns a Signer whose key is the PEM in data, with the
// rules of NewSigner's key file; name says where the key came from, for
// errors.
func NewSignerFromPEM(name string, data []byte) (*Signer, error) {
	key, err := parseSignerKey(name, data)
	if err != nil {
		return nil, err
	}
	return newSigner(key)
}
