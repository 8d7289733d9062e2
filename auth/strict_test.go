package auth

import (
	"context"
	"testing"

	"github.com/presenced/presenced/auth/authtest"
)

// A token naming critical header extensions is refused: presenced
// understands none (RFC 7515 4.1.11).
func TestCritHeaderRefused(t *testing.T) {
	ks := authtest.NewKeySet(t)
	v := fileVerifier(t, ks, testConfig())
	if _, err := v.Verify(context.Background(), ks.Mint("ES256", appClaims())); err != nil {
		t.Fatalf("a plain token: %v", err)
	}
	for _, crit := range []any{[]string{"exp"}, []string{"urn:example:unknown"}, []string{}} {
		tok := ks.MintWithHeader("ES256", map[string]any{"crit": crit, "urn:example:unknown": true}, appClaims())
		_, err := v.Verify(context.Background(), tok)
		wantTokenError(t, err, messageInvalid)
	}
}
