package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLimitedHandler(t *testing.T) {
	var buf bytes.Buffer
	h := newLimitedHandler(slog.NewTextHandler(&buf, nil)).(*limitedHandler)
	now := time.Unix(1000, 0)
	h.st.now = func() time.Time { return now }
	log := slog.New(h).With("k", "v")
	for range 1000 {
		log.Error("disk full")
		log.Info("a request")
	}
	if n := strings.Count(buf.String(), "disk full"); n != logBurst {
		t.Fatalf("%d error lines in one window, want %d", n, logBurst)
	}
	if n := strings.Count(buf.String(), "a request"); n != 1000 {
		t.Fatalf("%d info lines, want all 1000", n)
	}
	now = now.Add(logWindow)
	log.Error("disk full")
	if !strings.Contains(buf.String(), "suppressed=995") {
		t.Fatalf("no count of the suppressed lines:\n%s", buf.String()[buf.Len()-400:])
	}
}
