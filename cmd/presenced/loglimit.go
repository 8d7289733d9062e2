package main

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Log-flood protection: at most logBurst records of one message at
// warning level or above per logWindow; the rest are counted and reported
// in one record when the next window opens. A failing disk or store then
// costs a few lines a minute, not one a request.
const (
	logWindow = 10 * time.Second
	logBurst  = 5
	// logKeys bounds the messages tracked; beyond it the table starts over.
	logKeys = 1024
)

type logWindowState struct {
	start   time.Time
	n       int
	dropped int
}

type logLimitState struct {
	mu  sync.Mutex
	per map[string]*logWindowState
	now func() time.Time
}

// limitedHandler is a slog.Handler that rate-limits records at warning
// level and above, by message.
type limitedHandler struct {
	slog.Handler
	st *logLimitState
}

func newLimitedHandler(h slog.Handler) slog.Handler {
	return &limitedHandler{Handler: h, st: &logLimitState{per: map[string]*logWindowState{}, now: time.Now}}
}

// Handle passes r on unless its message has had its burst in this window.
func (h *limitedHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return h.Handler.Handle(ctx, r)
	}
	st := h.st
	now := st.now()
	st.mu.Lock()
	w := st.per[r.Message]
	if w == nil {
		if len(st.per) >= logKeys {
			clear(st.per)
		}
		w = &logWindowState{start: now}
		st.per[r.Message] = w
	}
	dropped := 0
	if now.Sub(w.start) >= logWindow {
		dropped = w.dropped
		*w = logWindowState{start: now}
	}
	w.n++
	pass := w.n <= logBurst
	if !pass {
		w.dropped++
	}
	st.mu.Unlock()
	if dropped > 0 {
		sum := slog.NewRecord(now, r.Level, "log lines suppressed (at most 5 of one message every 10s)", 0)
		sum.AddAttrs(slog.String("message", r.Message), slog.Int("suppressed", dropped))
		_ = h.Handler.Handle(ctx, sum)
	}
	if !pass {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs keeps the limits shared with h.
func (h *limitedHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &limitedHandler{Handler: h.Handler.WithAttrs(as), st: h.st}
}

// WithGroup keeps the limits shared with h.
func (h *limitedHandler) WithGroup(name string) slog.Handler {
	return &limitedHandler{Handler: h.Handler.WithGroup(name), st: h.st}
}
