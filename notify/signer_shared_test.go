package notify

import "testing"

// Nodes that share one signing key publish one JWKS, so a receiver that
// validates validationTokens does not care which node sent a notification.
func TestSignerFromSharedPEM(t *testing.T) {
	data, err := NewSignerKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewSignerFromPEM("shared", data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSignerFromPEM("shared", data)
	if err != nil {
		t.Fatal(err)
	}
	if a.KeyID() != b.KeyID() || string(a.JWKS()) != string(b.JWKS()) {
		t.Fatal("two signers of one key differ")
	}
	if _, err := NewSignerFromPEM("bad", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")); err == nil {
		t.Fatal("a broken key was accepted")
	}
}
