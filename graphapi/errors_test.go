package graphapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// A store that cannot serve (Redis down, disk full) is a 503 in Graph's
// envelope with a Retry-After, not a 500.
func TestWriteErrorUnavailable(t *testing.T) {
	rec := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/v1.0/me/presence", nil)
	writeError(rec, r, slog.New(slog.DiscardHandler), time.Now(), presence.Unavailable(errors.New("connection refused")))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
	if rec.Header().Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	var env struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
		t.Fatal(err)
	}
	if env.Error.Code != string(presence.CodeUnavailable) || env.Error.Message == "" {
		t.Fatalf("envelope %+v", env.Error)
	}
}

func TestStatusLabel(t *testing.T) {
	for _, st := range []int{200, 201, 204, 400, 404, 429, 503} {
		if got := statusLabel(st); got != strconv.Itoa(st) {
			t.Errorf("statusLabel(%d) = %q", st, got)
		}
	}
}
