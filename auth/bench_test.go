package auth

import (
	"context"
	"testing"

	"github.com/presenced/presenced/auth/authtest"
)

// BenchmarkVerifyCached measures a token already verified: the hot path.
func BenchmarkVerifyCached(b *testing.B) {
	ks := authtest.NewKeySet(b)
	v := fileVerifier(b, ks, testConfig())
	token := ks.Mint("RS256", delegatedClaims())
	ctx := context.Background()
	if _, err := v.Verify(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(token)))
	for b.Loop() {
		if _, err := v.Verify(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCachedParallel measures cache hits from all cores at once.
func BenchmarkVerifyCachedParallel(b *testing.B) {
	ks := authtest.NewKeySet(b)
	v := fileVerifier(b, ks, testConfig())
	tokens := make([]string, 64)
	for i := range tokens {
		tokens[i] = ks.Mint("ES256", delegatedClaims())
		if _, err := v.Verify(context.Background(), tokens[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		i := 0
		for pb.Next() {
			if _, err := v.Verify(ctx, tokens[i%len(tokens)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// BenchmarkVerifyUncached measures a full verification (parse, signature,
// claims) without the cache, for comparison.
func BenchmarkVerifyUncached(b *testing.B) {
	ks := authtest.NewKeySet(b)
	v := fileVerifier(b, ks, testConfig())
	ctx := context.Background()
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			token := ks.Mint(alg, delegatedClaims())
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := v.verify(ctx, token); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
