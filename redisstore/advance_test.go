package redisstore

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

// An advance announced through one store reaches the holders listening on
// the others: each extends and answers, and Announce reports the live
// holders that did not answer, leaving out itself, expired records and
// claimed ones.
func TestHolderAdvances(t *testing.T) {
	url := redistest.Start(t).URL()
	prefix := "advances" + presence.NewGUID()[:8]
	a := open(t, url, Options{Prefix: prefix, NodeID: "a"}).Holders()
	b := open(t, url, Options{Prefix: prefix, NodeID: "b"}).Holders()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t0 := time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)
	until := t0.Add(time.Hour)

	for h, exp := range map[string]time.Duration{"a.1": 20 * time.Second, "b.1": 20 * time.Second, "silent.1": 20 * time.Second, "expired.1": -time.Second, "claimed.1": -time.Second} {
		if err := a.Register(ctx, h, t0.Add(exp)); err != nil {
			t.Fatal(err)
		}
	}
	// claimed.1 is claimed (and its claim outlives t0); expired.1 is not.
	if c, err := a.Claim(ctx, t0.Add(-500*time.Millisecond), t0.Add(time.Minute), 1); err != nil || len(c) != 1 {
		t.Fatalf("claim: %v, %v", c, err)
	}
	var mu sync.Mutex
	var heard []time.Time
	go b.Listen(ctx, func(_ context.Context, u time.Time) string {
		mu.Lock()
		defer mu.Unlock()
		heard = append(heard, u)
		if alive, err := b.Renew(ctx, "b.1", u.Add(15*time.Second)); !alive || err != nil {
			t.Errorf("renewing b.1 for the advance: %v, %v", alive, err)
		}
		return "b.1"
	})
	// Wait until b listens: an announcement before the subscription is lost.
	var missing []string
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; {
		missing, err = a.Announce(ctx, t0, until, "a.1", 300*time.Millisecond)
		mu.Lock()
		n := len(heard)
		mu.Unlock()
		if err != nil || n > 0 || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"silent.1"}; !slices.Equal(missing, want) {
		t.Errorf("missing %v, want %v (not a.1, which announced, nor the expired or claimed records)", missing, want)
	}
	mu.Lock()
	if len(heard) == 0 || !heard[len(heard)-1].Equal(until) {
		t.Errorf("b heard %v, want the advance to %v", heard, until)
	}
	mu.Unlock()
	// b's record now outlives the advance: a claim at the new time leaves it.
	claimed, err := a.Claim(ctx, until, until.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range claimed {
		names = append(names, c.Holder)
	}
	if slices.Contains(names, "b.1") || !slices.Contains(names, "silent.1") {
		t.Errorf("claimed %v after the advance, want silent.1 and not b.1", names)
	}

	// With nobody else alive there is nobody to miss.
	if missing, err := a.Announce(ctx, until.Add(time.Hour), until.Add(2*time.Hour), "a.1", time.Second); err != nil || len(missing) != 0 {
		t.Errorf("an announcement with no other live holder: %v, %v", missing, err)
	}
}

// FuzzParseAdvance: an announcement read from the channel parses or is
// refused, never a panic, and what parses prints back the same.
func FuzzParseAdvance(f *testing.F) {
	f.Add("0f9d1f3e-0000-4000-8000-000000000001 1893488400000")
	f.Add(" 1")
	f.Add("x -5")
	f.Add("x 99999999999999999999")
	f.Fuzz(func(t *testing.T, msg string) {
		id, until, err := parseAdvance(msg)
		if err != nil {
			return
		}
		if id == "" || len(id) > 64 {
			t.Fatalf("%q parsed with id %q", msg, id)
		}
		if _, again, err := parseAdvance(id + " " + millis(until)); err != nil || !again.Equal(until) {
			t.Fatalf("%q: %v does not print back: %v, %v", msg, until, again, err)
		}
	})
}
