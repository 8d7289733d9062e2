package presence_test

import (
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// The hot paths of the domain: every read computes a View, every write runs
// Step.
//
//	go test -run '^$' -bench 'ViewAt|Step' -benchmem .

const (
	benchApp  = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	benchApp2 = "5c7f0bb9-3a0e-4d4f-9d39-3f0f7d1b6a10"
)

var benchT0 = time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)

// benchStates are typical stored states, each read at an instant.
func benchStates() []struct {
	name string
	st   presence.State
	at   time.Time
} {
	oneSession := presence.State{
		Sessions: []presence.Session{{ID: benchApp, Pair: presence.Pair{Availability: "Busy", Activity: "InACall"},
			RefreshedAt: benchT0, ExpiresAt: benchT0.Add(time.Hour)}},
		Seq: 1, SeqAt: benchT0, Due: benchT0.Add(time.Hour),
	}
	// An Available session read 12 minutes on: two fades to count since
	// SeqAt, so ViewAt walks NextChange twice.
	faded := presence.State{
		Sessions: []presence.Session{{ID: benchApp, Pair: presence.Pair{Availability: "Available", Activity: "Available"},
			RefreshedAt: benchT0, ExpiresAt: benchT0.Add(time.Hour)}},
		Seq: 1, SeqAt: benchT0, Due: benchT0.Add(5 * time.Minute),
	}
	expiry := &presence.Expiry{DateTime: "2026-01-12T17:00:00", TimeZone: "UTC", At: benchT0.Add(8 * time.Hour)}
	busy := presence.State{
		Sessions: []presence.Session{
			{ID: benchApp, Pair: presence.Pair{Availability: "Available", Activity: "Available"}, RefreshedAt: benchT0, ExpiresAt: benchT0.Add(time.Hour)},
			{ID: benchApp2, Pair: presence.Pair{Availability: "Busy", Activity: "InACall"}, RefreshedAt: benchT0, ExpiresAt: benchT0.Add(2 * time.Hour)},
			{ID: "teams-client", Kind: presence.ClientSession, Pair: presence.Pair{Availability: "Away", Activity: "Away"}, RefreshedAt: benchT0, ExpiresAt: benchT0.Add(4 * time.Hour)},
		},
		Preferred: &presence.Preferred{Pair: presence.Pair{Availability: "DoNotDisturb", Activity: "DoNotDisturb"}, ExpiresAt: benchT0.Add(8 * time.Hour)},
		Status:    &presence.StatusMessage{Content: "In the lab", ContentType: "text", PublishedAt: benchT0, Expiry: expiry},
		Seq:       3, SeqAt: benchT0, Due: benchT0.Add(5 * time.Minute),
	}
	return []struct {
		name string
		st   presence.State
		at   time.Time
	}{
		{"one-session", oneSession, benchT0.Add(time.Minute)},
		{"faded-twice", faded, benchT0.Add(12 * time.Minute)},
		{"three-sessions-preferred-status", busy, benchT0.Add(time.Minute)},
	}
}

// BenchmarkViewAt measures computing what a reader sees: the visible pair
// and the version, counting the clock's changes since the state was
// written.
func BenchmarkViewAt(b *testing.B) {
	for _, bc := range benchStates() {
		b.Run(bc.name, func(b *testing.B) {
			st := bc.st
			b.ReportAllocs()
			var v presence.View
			for b.Loop() {
				v = st.ViewAt(bc.at)
			}
			if v.Availability == "" {
				b.Fatal("empty view")
			}
		})
	}
}

// BenchmarkStep measures one setPresence applied to a stored state, as the
// store's Update runs it: an application refreshing its session every
// millisecond of service time.
func BenchmarkStep(b *testing.B) {
	env := presence.Env{Zones: presence.NewTimeZones()}
	exp := time.Hour
	key := presence.Key{Tenant: "84bd8158-6d4d-4958-8b9f-9d6445542f95", User: "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"}
	for _, bc := range benchStates() {
		b.Run(bc.name, func(b *testing.B) {
			cmd := &presence.SetPresence{CallerApp: benchApp, SessionID: benchApp, Availability: "Busy", Activity: "InACall", Expiration: &exp}
			if err := cmd.Validate(&env); err != nil {
				b.Fatal(err)
			}
			st := bc.st.Clone()
			now := bc.at
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Millisecond)
				if _, err := presence.Step(key, &st, cmd, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
