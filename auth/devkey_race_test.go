package auth

import (
	"path/filepath"
	"sync"
	"testing"
)

// TestDevKeyCreatedConcurrently starts several issuers on one fresh key
// file at once, as `presenced` and `presenced token` started together on a
// new data directory do: none may read a half-written file, and all must
// end up with the same key.
func TestDevKeyCreatedConcurrently(t *testing.T) {
	for round := range 20 {
		file := filepath.Join(t.TempDir(), "dev-signing-key.pem")
		var wg sync.WaitGroup
		issuers := make([]*DevIssuer, 6)
		errs := make([]error, len(issuers))
		for i := range issuers {
			wg.Go(func() { issuers[i], errs[i] = NewDevIssuer(file) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, issuer %d: %v", round, i, err)
			}
			if !issuers[i].key.Equal(issuers[0].key) {
				t.Fatalf("round %d: issuers %d and 0 hold different keys", round, i)
			}
		}
	}
}
