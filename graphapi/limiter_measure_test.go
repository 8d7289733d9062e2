package graphapi

import (
	"context"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// TestMeasureLimiterHeap reports the heap that the throttling state of
// 100,000 (app, tenant) pairs holds, each having made one request under the
// default budget of 1500 per 30 s:
//
//	PRESENCED_MEASURE_HEAP=1 go test ./graphapi -run TestMeasureLimiterHeap -v -count=1
func TestMeasureLimiterHeap(t *testing.T) {
	if os.Getenv("PRESENCED_MEASURE_HEAP") == "" {
		t.Skip("set PRESENCED_MEASURE_HEAP=1 to measure")
	}
	const pairs = 100_000
	app := presence.NewGUID()
	tenants := make([]string, pairs)
	for i := range tenants {
		tenants[i] = presence.NewGUID()
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := NewMemoryLimiter()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := Budget{Limit: 1500, Window: throttleWindow}
	for i, tenant := range tenants {
		_, _, _ = l.Allow(context.Background(), app, tenant, now.Add(time.Duration(i)*time.Microsecond), b)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d pairs: heap grew %.1f MB, %s bytes per (app, tenant)", pairs, float64(grew)/1e6, strconv.FormatInt(grew/pairs, 10))
	runtime.KeepAlive(l)
}
