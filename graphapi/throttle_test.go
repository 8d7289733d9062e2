package graphapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/memstore"
)

var budget3 = Budget{Limit: 3, Window: throttleWindow}

func allowAt(t *testing.T, l Limiter, app string, at time.Time, b Budget) (int, bool) {
	t.Helper()
	wait, ok, err := l.Allow(context.Background(), app, "tenant", at, b)
	if err != nil {
		t.Fatal(err)
	}
	if ok {
		return 0, true
	}
	return retrySeconds(wait), false
}

// TestLimiterWindow checks the sliding window: limit admissions in any 30 s,
// a Retry-After that counts to the oldest admission leaving the window, and
// buckets of their own per (app, tenant).
func TestLimiterWindow(t *testing.T) {
	l := NewMemoryLimiter()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if _, ok := allowAt(t, l, "app", t0.Add(time.Duration(i)*time.Second), budget3); !ok {
			t.Fatalf("request %d refused within the limit", i)
		}
	}
	if retry, ok := allowAt(t, l, "app", t0.Add(10*time.Second), budget3); ok || retry != 20 {
		t.Fatalf("4th request in the window: ok=%v retry=%d, want refused with Retry-After 20", ok, retry)
	}
	if _, ok := allowAt(t, l, "other-app", t0.Add(10*time.Second), budget3); !ok {
		t.Fatal("another application shares the bucket")
	}
	if _, ok := allowAt(t, l, "app", t0.Add(30*time.Second+time.Millisecond), budget3); !ok {
		t.Fatal("refused once the oldest admission left the window")
	}
	// Two were admitted since t0+1 and t0+2 (their slots leave at t0+31 and
	// t0+32), and one now: full until t0+31.
	if retry, ok := allowAt(t, l, "app", t0.Add(30*time.Second+500*time.Millisecond), budget3); ok || retry != 1 {
		t.Fatalf("full again: ok=%v retry=%d, want refused with Retry-After 1", ok, retry)
	}
}

// TestLimiterBurstAtOneInstant: a burst made at one instant, at any
// fraction of a second, is refused with Retry-After 30, 20 ten seconds
// later, and admitted once the window has passed (C12 #117).
func TestLimiterBurstAtOneInstant(t *testing.T) {
	for _, frac := range []time.Duration{0, time.Nanosecond, 123 * time.Millisecond, 999 * time.Millisecond} {
		l := NewMemoryLimiter()
		t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(frac)
		b := Budget{Limit: 5, Window: throttleWindow}
		for range 5 {
			if _, ok := allowAt(t, l, "app", t0, b); !ok {
				t.Fatal("refused within the limit")
			}
		}
		for _, c := range []struct {
			at    time.Duration
			retry int
		}{{0, 30}, {time.Millisecond, 30}, {10 * time.Second, 20}, {29 * time.Second, 1}} {
			if retry, ok := allowAt(t, l, "app", t0.Add(c.at), b); ok || retry != c.retry {
				t.Errorf("frac %v, at +%v: ok=%v retry=%d, want Retry-After %d", frac, c.at, ok, retry, c.retry)
			}
		}
		if _, ok := allowAt(t, l, "app", t0.Add(30*time.Second), b); !ok {
			t.Errorf("frac %v: refused a window after the burst", frac)
		}
	}
}

// TestLimiterShortWindow: the window's length is the budget's.
func TestLimiterShortWindow(t *testing.T) {
	l := NewMemoryLimiter()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := Budget{Limit: 2, Window: 2 * time.Second}
	allowAt(t, l, "app", t0, b)
	allowAt(t, l, "app", t0, b)
	if retry, ok := allowAt(t, l, "app", t0.Add(100*time.Millisecond), b); ok || retry != 2 {
		t.Fatalf("ok=%v retry=%d, want Retry-After 2", ok, retry)
	}
	if _, ok := allowAt(t, l, "app", t0.Add(2*time.Second), b); !ok {
		t.Fatal("refused after the 2 s window")
	}
}

// TestLimiterReclaimsIdleBuckets checks that the buckets of (app, tenant)
// pairs idle for a whole window are dropped, so memory does not grow with
// every pair ever seen.
func TestLimiterReclaimsIdleBuckets(t *testing.T) {
	l := NewMemoryLimiter()
	b := Budget{Limit: 50, Window: throttleWindow}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5000 {
		allowAt(t, l, fmt.Sprintf("app-%d", i), t0, b)
	}
	if n := l.Buckets(); n != 5000 {
		t.Fatalf("%d buckets after 5000 pairs, want 5000", n)
	}
	// A window later, requests from 1000 new pairs land on every shard
	// (a shard is missed with probability (63/64)^1000, about 1e-7), and
	// each shard's first request sweeps it.
	later := t0.Add(throttleWindow + time.Second)
	for i := range 1000 {
		allowAt(t, l, fmt.Sprintf("new-%d", i), later, b)
	}
	if n := l.Buckets(); n != 1000 {
		t.Fatalf("%d buckets after the old pairs went idle, want the 1000 active ones", n)
	}
	if _, ok := allowAt(t, l, "app-1", later.Add(2*time.Second), b); !ok {
		t.Fatal("a reclaimed pair is refused")
	}
}

// failingLimiter cannot decide.
type failingLimiter struct{}

func (failingLimiter) Allow(context.Context, string, string, time.Time, Budget) (time.Duration, bool, error) {
	return 0, false, errors.New("limiter store unreachable")
}

type oneToken struct{ p presence.Principal }

func (o oneToken) Verify(context.Context, string) (presence.Principal, error) { return o.p, nil }

// TestLimiterErrorIs503: a limiter that fails answers 503 in Graph's
// envelope, with Retry-After.
func TestLimiterErrorIs503(t *testing.T) {
	svc := presence.NewService(memstore.New(), presence.NewTestClock(time.Now()), nil)
	p := presence.Principal{Tenant: presence.NewGUID(), AppID: presence.NewGUID(), Roles: []string{"Presence.Read.All"}}
	srv, err := NewServer(Config{Service: svc, Auth: oneToken{p}, RateLimit: 10, Limiter: failingLimiter{}})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "/v1.0/users/"+presence.NewGUID()+"/presence", nil)
	req.Header.Set("Authorization", "Bearer x")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || !strings.Contains(rec.Body.String(), `"code":"serviceNotAvailable"`) {
		t.Fatalf("got %d %v %s, want 503 serviceNotAvailable with Retry-After", rec.Code, rec.Header(), rec.Body)
	}
}
