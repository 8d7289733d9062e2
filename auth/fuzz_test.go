package auth

import (
	"context"
	"errors"
	"strings"
	"testing"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/auth/authtest"
)

func FuzzVerify(f *testing.F) {
	ks := authtest.NewKeySet(f)
	v := fileVerifier(f, ks, testConfig())
	valid := map[string]bool{}
	for _, alg := range []string{"RS256", "ES256"} {
		for _, c := range []map[string]any{appClaims(), delegatedClaims()} {
			token := ks.Mint(alg, c)
			valid[token] = true
			f.Add(token)
		}
	}
	es := strings.Split(ks.Mint("ES256", appClaims()), ".")
	for _, seed := range []string{
		"", ".", "..", "a.b.c", "a.b.", "Bearer x.y.z", "eyJhbGciOiJub25lIn0.e30.",
		"eyJhbGciOiJIUzI1NiJ9.eyJ0aWQiOjF9.c2ln",
		es[0] + ".e30." + es[2],
		es[0] + "." + es[1] + ".",
		es[0] + ".bnVsbA." + es[2], // payload null
		strings.Repeat("A", 100),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Verify(context.Background(), raw)
		if err == nil {
			if !valid[raw] {
				t.Fatalf("Verify accepted %q as %+v", raw, p)
			}
			return
		}
		var pe *presence.Error
		if !errors.As(err, &pe) || pe.Code != presence.CodeInvalidAuthenticationToken || pe.Message == "" {
			t.Fatalf("Verify(%q) = %v (%T), want an InvalidAuthenticationToken *presence.Error", raw, err, err)
		}
	})
}
