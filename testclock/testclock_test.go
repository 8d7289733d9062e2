package testclock_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/testclock"
)

var t0 = time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)

// A durable clock resumes from the last instant it reached, not from the
// start instant it is opened with.
func TestOpenResumes(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c, resumed, err := testclock.Open(dir, t0)
	if err != nil || resumed {
		t.Fatalf("Open on an empty directory: resumed %v, %v", resumed, err)
	}
	if _, err := c.Advance(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	at := t0.Add(3 * time.Hour)
	if _, err := c.Set(ctx, at); err != nil {
		t.Fatal(err)
	}
	// Reopened later in real time, or earlier: either way it resumes.
	for _, start := range []time.Time{t0.Add(-time.Hour), t0.Add(24 * time.Hour)} {
		c2, resumed, err := testclock.Open(dir, start)
		if err != nil || !resumed {
			t.Fatalf("reopen: resumed %v, %v", resumed, err)
		}
		if !c2.Now().Equal(at) {
			t.Errorf("reopened at %v, want %v", c2.Now(), at)
		}
	}
}

// Set refuses an instant before now with a BadRequest error and leaves the
// clock (and its file) where they were; Advance refuses a negative
// duration.
func TestForwardOnly(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c, _, err := testclock.Open(dir, t0)
	if err != nil {
		t.Fatal(err)
	}
	var e *presence.Error
	if _, err := c.Set(ctx, t0.Add(-time.Second)); !errors.As(err, &e) || e.Code != presence.CodeBadRequest {
		t.Errorf("Set before now: %v, want a BadRequest error", err)
	}
	if _, err := c.Advance(ctx, -time.Second); !errors.As(err, &e) || e.Code != presence.CodeBadRequest {
		t.Errorf("Advance(-1s): %v, want a BadRequest error", err)
	}
	if now, err := c.Set(ctx, t0); err != nil || !now.Equal(t0) {
		t.Errorf("Set(now) = %v, %v; want no change", now, err)
	}
	c2, _, err := testclock.Open(dir, t0.Add(time.Hour))
	if err != nil || !c2.Now().Equal(t0) {
		t.Errorf("reopened at %v (%v), want %v", c2.Now(), err, t0)
	}
}

// A clock file that does not hold an instant is an error naming the file,
// never a silent restart at the real time.
func TestOpenCorrupt(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, testclock.FileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := testclock.Open(dir, t0); err == nil {
		t.Fatal("Open accepted a corrupt clock file")
	}
}

// A clock in memory moves the same way and keeps nothing.
func TestMemory(t *testing.T) {
	c := testclock.New(t0)
	now, err := c.Advance(context.Background(), 5*time.Minute)
	if err != nil || !now.Equal(t0.Add(5*time.Minute)) || !c.Now().Equal(now) {
		t.Fatalf("Advance = %v, %v", now, err)
	}
}
