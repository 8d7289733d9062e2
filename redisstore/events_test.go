package redisstore

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
	"github.com/presenced/presenced/internal/redistest"
)

func TestEventRoundTrip(t *testing.T) {
	k := presence.Key{Tenant: presence.NewGUID(), User: "not-a-guid"}
	ev := RemoteEvent{Key: k, Origin: "node-1", Watched: true, Events: []presence.Event{
		{Key: k, At: time.Unix(1700000000, 123).UTC(),
			Before: presence.View{Pair: presence.Pair{Availability: "Available", Activity: "Available"}, Seq: 1},
			After:  presence.View{Pair: presence.Pair{Availability: "Away", Activity: "Away"}, Seq: 2}},
		{Key: k, At: time.Unix(-5, 0).UTC(), After: presence.View{Seq: 1 << 40}},
	}}
	got, err := decodeEvent(appendEvent(nil, &ev))
	if err != nil || !reflect.DeepEqual(got, ev) {
		t.Fatalf("round trip: %+v, %v\nwant %+v", got, err, ev)
	}
}

func FuzzDecodeEvent(f *testing.F) {
	k := presence.Key{Tenant: "t", User: "u"}
	f.Add(appendEvent(nil, &RemoteEvent{Key: k, Origin: "n", Events: []presence.Event{{Key: k, At: time.Unix(1, 0)}}}))
	f.Add([]byte{1, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		ev, err := decodeEvent(p)
		if err != nil {
			return
		}
		// What decodes encodes to bytes that decode the same.
		again, err := decodeEvent(appendEvent(nil, &ev))
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("%x: decoded %+v, re-decoded %+v, %v", p, ev, again, err)
		}
	})
}

func TestChanges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	k := presence.Key{Tenant: "t", User: "u"}
	app := presence.NewGUID()
	var st presence.State
	set := &presence.SetPresence{CallerApp: app, SessionID: app, Availability: "Available", Activity: "Available"}
	if err := set.Validate(&presence.Env{}); err != nil {
		t.Fatal(err)
	}
	if _, err := presence.Step(k, &st, set, t0); err != nil {
		t.Fatal(err)
	}
	before := st.Clone()
	// Later, a command: the clock's changes come first, then its own.
	busy := &presence.SetPresence{CallerApp: app, SessionID: app, Availability: "Busy", Activity: "InACall"}
	if err := busy.Validate(&presence.Env{}); err != nil {
		t.Fatal(err)
	}
	if _, err := presence.Step(k, &st, busy, t0.Add(4*time.Minute+30*time.Second)); err != nil {
		t.Fatal(err)
	}
	ch2 := st.Clone()
	got := changes(k, &before, &ch2)
	// Replay with the domain for the reference.
	ref := before.Clone()
	want, err := presence.Step(k, &ref, busy, t0.Add(4*time.Minute+30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Events) {
		t.Fatalf("changes = %+v\nStep's events = %+v", got, want.Events)
	}
	for i := range got {
		w := want.Events[i]
		if got[i].At != w.At || got[i].Before.Pair != w.Before.Pair || got[i].After.Pair != w.After.Pair ||
			got[i].Before.Seq != w.Before.Seq || got[i].After.Seq != w.After.Seq {
			t.Errorf("change %d = %+v, Step's %+v", i, got[i], w)
		}
	}
}

func TestQuietEvent(t *testing.T) {
	k := presence.Key{Tenant: "t", User: "u"}
	ev := RemoteEvent{Key: k, Origin: "n", Quiet: true, Watched: true}
	if got, err := decodeEvent(appendEvent(nil, &ev)); err != nil || !reflect.DeepEqual(got, ev) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	at := time.Unix(1700000000, 0).UTC()
	base := presence.State{Sessions: []presence.Session{{ID: "app", Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}, ExpiresAt: at}}}
	for _, tc := range []struct {
		name  string
		edit  func(*presence.State)
		quiet bool
	}{
		{"a session renewed", func(s *presence.State) { s.Sessions[0].ExpiresAt, s.Sessions[0].RefreshedAt = at.Add(time.Hour), at }, false},
		{"nothing", func(*presence.State) {}, false},
		{"a status message", func(s *presence.State) { s.Status = &presence.StatusMessage{Content: "hi"} }, true},
		{"a work location", func(s *presence.State) { s.Work = &presence.WorkState{TimeZone: "UTC"} }, true},
		{"a session's pair", func(s *presence.State) { s.Sessions[0].Pair.Activity = "Busy" }, true},
		{"another session", func(s *presence.State) { s.Sessions = append(s.Sessions, presence.Session{ID: "b"}) }, true},
		{"calendar busy", func(s *presence.State) { s.CalendarBusy = true }, true},
	} {
		after := base
		after.Sessions = slices.Clone(base.Sessions)
		tc.edit(&after)
		if got := quietChange(&base, &after); got != tc.quiet {
			t.Errorf("%s: quiet %v, want %v", tc.name, got, tc.quiet)
		}
	}
}

// Following is nil until Events is called, then once every partition's
// channel is subscribed; it is an error again when Events has ended.
func TestFollowing(t *testing.T) {
	srv := redistest.Start(t)
	s := open(t, srv.URL(), Options{Prefix: "follow" + presence.NewGUID()[:8], NodeID: "a"})
	if err := s.Following(); err != nil {
		t.Fatalf("before Events: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Events(ctx, func(RemoteEvent) {})
	}()
	waitFor(t, 10*time.Second, "every partition followed", func() bool { return s.Following() == nil })
	cancel()
	<-done
	if err := s.Following(); !errors.Is(err, presence.ErrUnavailable) {
		t.Fatalf("after Events ended: %v, want ErrUnavailable", err)
	}
}
