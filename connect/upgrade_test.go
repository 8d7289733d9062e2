package connect

import (
	"context"
	"strings"
	"testing"
	"time"
)

// A client that sends its messages right after the handshake may have them
// read by net/http before the upgrade: they must reach the WebSocket
// through the smaller buffers it is given.
func TestMessagesSentWithTheHandshakeSurvive(t *testing.T) {
	h := newHarness(t, time.Second, 5*time.Second)
	for i := range 30 {
		ws := h.dial(t, userA)
		write(t, ws, map[string]any{"type": "hello", "device": "d"})
		write(t, ws, map[string]any{"type": "ping", "id": "x"})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for j, want := range []string{`"ready"`, `"pong"`} {
			_, data, err := ws.Read(ctx)
			if err != nil || !strings.Contains(string(data), want) {
				t.Fatalf("connection %d, message %d: %s %v, want a %s", i, j, data, err, want)
			}
		}
		cancel()
		_ = ws.CloseNow()
	}
}
