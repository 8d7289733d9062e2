package connect

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// An idle connection holds one goroutine, waiting in the wire on the
// smallest stack a goroutine has (2 KiB): the frames down to the read it
// waits in must stay small. (The race detector makes every frame larger:
// the check runs without it.)
func TestIdleConnectionHoldsOneSmallStack(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector enlarges stack frames")
	}
	h := newHarness(t, time.Hour, 2*time.Hour)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before, g0 := ms.StackInuse, runtime.NumGoroutine()
	const n = 500
	for i := range n {
		ws := h.dial(t, fmt.Sprintf("u%d", i))
		write(t, ws, map[string]any{"type": "hello", "device": "d"})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if _, _, err := ws.Read(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		stack := float64(ms.StackInuse-before) / n
		goroutines := float64(runtime.NumGoroutine()-g0) / n
		if stack <= 2300 && goroutines <= 1.01 {
			t.Logf("%.0f bytes of goroutine stack and %.2f goroutines per idle connection", stack, goroutines)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%.0f bytes of goroutine stack and %.2f goroutines per idle connection, want at most 2300 bytes and 1 goroutine", stack, goroutines)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
