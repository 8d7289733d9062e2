package graphapi

import (
	"fmt"
	"testing"
	"time"
)

// TestLimiterWindow checks the sliding window: limit admissions in any 30 s,
// a Retry-After that counts to the oldest admission leaving the window, and
// buckets of their own per (app, tenant).
func TestLimiterWindow(t *testing.T) {
	l := newLimiter(3)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 {
		if ok, _ := l.allow("app", "tenant", t0.Add(time.Duration(i)*time.Second)); !ok {
			t.Fatalf("request %d refused within the limit", i)
		}
	}
	if ok, retry := l.allow("app", "tenant", t0.Add(10*time.Second)); ok || retry != 20 {
		t.Fatalf("4th request in the window: ok=%v retry=%d, want refused with Retry-After 20", ok, retry)
	}
	if ok, _ := l.allow("other-app", "tenant", t0.Add(10*time.Second)); !ok {
		t.Fatal("another application shares the bucket")
	}
	if ok, _ := l.allow("app", "tenant", t0.Add(30*time.Second+time.Millisecond)); !ok {
		t.Fatal("refused once the oldest admission left the window")
	}
}

// TestLimiterReclaimsIdleBuckets checks that the buckets of (app, tenant)
// pairs idle for a whole window are dropped, so memory does not grow with
// every pair ever seen.
func TestLimiterReclaimsIdleBuckets(t *testing.T) {
	l := newLimiter(50)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5000 {
		l.allow(fmt.Sprintf("app-%d", i), "tenant", t0)
	}
	if n := l.buckets(); n != 5000 {
		t.Fatalf("%d buckets after 5000 pairs, want 5000", n)
	}
	// A window later, requests from 1000 new pairs land on every shard
	// (a shard is missed with probability (63/64)^1000, about 1e-7), and
	// each shard's first request sweeps it.
	later := t0.Add(throttleWindow + time.Second)
	for i := range 1000 {
		l.allow(fmt.Sprintf("new-%d", i), "tenant", later)
	}
	if n := l.buckets(); n != 1000 {
		t.Fatalf("%d buckets after the old pairs went idle, want the 1000 active ones", n)
	}
	if ok, _ := l.allow("app-1", "tenant", later.Add(2*time.Second)); !ok {
		t.Fatal("a reclaimed pair is refused")
	}
}
