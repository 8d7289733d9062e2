package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// TestPresencedTargetURL checks the target of a scenario run against
// --url: the server there (its URL's trailing slash dropped) with --data
// as its data dir, returned only once its /readyz answers 200.
func TestPresencedTargetURL(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) <= 3 {
			http.Error(w, "loading", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	b := &bench{cfg: Config{URL: srv.URL + "/", DataDir: "/some/data", Connections: 2}}
	tg, dataDir, err := b.presencedTarget(context.Background(), "timers", false)
	if err != nil {
		t.Fatal(err)
	}
	if tg.base != srv.URL || tg.name != targetPresenced || !tg.metrics || dataDir != "/some/data" {
		t.Errorf("target %+v, data dir %q", tg, dataDir)
	}
	if n := calls.Load(); n != 4 {
		t.Errorf("/readyz asked %d times, want 4 (three 503s, then 200)", n)
	}
}
