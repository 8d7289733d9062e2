package console

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// BenchmarkListUsers measures a page of GET /presenced/users on a store of
// 100,000 users in 10 tenants: the cost of scanning the whole store.
func BenchmarkListUsers(b *testing.B) {
	f := newFixture(nil)
	d := time.Hour
	for i := range 100_000 {
		tenant := devTenant
		if i%10 != 0 {
			tenant = fmt.Sprintf("%08x-0000-4000-8000-000000000000", i%10)
		}
		key := presence.Key{Tenant: tenant, User: fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)}
		if _, err := f.svc.Do(context.Background(), key, &presence.SetPresence{CallerApp: devApp, SessionID: devApp,
			Availability: "Available", Activity: "Available", Expiration: &d}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("GET", "/presenced/users?$top=50", nil)
		req.Header.Set("Authorization", "Bearer reader")
		rec := httptest.NewRecorder()
		f.mux.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}
