package e2e

import (
	"testing"
	"time"
)

// step is one point of a timeline: advance the clock by `by`, then expect a
// pair.
type step struct {
	by                     string // ISO 8601, relative to the previous step
	availability, activity string
}

// walk advances through steps, checking GETP(user) at each.
func walk(t *testing.T, f *fixture, user string, t0 time.Time, steps []step) {
	t.Helper()
	now := clockNow(t)
	for _, s := range steps {
		if s.by != "" {
			now = advance(t, s.by)
		}
		r := f.getp(user)
		if a, b := r.str("availability"), r.str("activity"); a != s.availability || b != s.activity {
			t.Errorf("at t0+%v: %s/%s, want %s/%s", now.Sub(t0), a, b, s.availability, s.activity)
		}
	}
}

// C9 #76: an Available session with PT1H fades, then expires.
func TestC9_76_FadeThenExpire(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t0 := clockNow(t)
		f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
		walk(t, f, f.U1, t0, []step{
			{"", "Available", "Available"},
			{"PT4M59S", "Available", "Available"},         // t0+4m59s
			{"PT1S", "Available", "AvailableInactive"},    // t0+5m
			{"PT4M59S", "Available", "AvailableInactive"}, // t0+9m59s
			{"PT1S", "Away", "Away"},                      // t0+10m
			{"PT49M59S", "Away", "Away"},                  // t0+59m59s
			{"PT1S", "Offline", "Offline"},                // t0+60m
		})
		wantError(t, f.clear(f.U1, "APPrw"), 404, "NotFound", "")
	})
}

// C9 #77: with the default expiry the session ends before any fade shows.
func TestC9_77_DefaultExpiry(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t0 := clockNow(t)
		f.mustSet(f.U1, "Available", "Available", "", "APPrw")
		walk(t, f, f.U1, t0, []step{
			{"PT4M59S", "Available", "Available"},
			{"PT1S", "Offline", "Offline"},
		})
	})
}

// C9 #78: PT10M shows the first fade stage only.
func TestC9_78_TenMinutes(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t0 := clockNow(t)
		f.mustSet(f.U1, "Available", "Available", "PT10M", "APPrw")
		walk(t, f, f.U1, t0, []step{
			{"PT5M", "Available", "AvailableInactive"},
			{"PT4M59S", "Available", "AvailableInactive"},
			{"PT1S", "Offline", "Offline"},
		})
	})
}

// C9 #80, #82: a Busy session does not fade; after its expiry clearPresence
// is 404.
func TestC9_80_82_BusyDoesNotFade(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t0 := clockNow(t)
		f.mustSet(f.U1, "Busy", "InACall", "PT1H", "APPrw")
		walk(t, f, f.U1, t0, []step{
			{"PT30M", "Busy", "InACall"},
			{"PT29M59S", "Busy", "InACall"},
			{"PT1S", "Offline", "Offline"},
			{"PT1M", "Offline", "Offline"}, // t0+61m
		})
		wantError(t, f.clear(f.U1, "APPrw"), 404, "NotFound", "") // #82
	})
}

// A4: Away and DoNotDisturb sessions keep their state until expiry too.
func TestC9_OtherPairsDoNotFade(t *testing.T) {
	f := newFixture(t)
	t0 := clockNow(t)
	away, dnd, conf := newGUID(), newGUID(), newGUID()
	f.mustSet(away, "Away", "Away", "PT4H", "APPrw")
	f.mustSet(dnd, "DoNotDisturb", "Presenting", "PT4H", "APPrw")
	f.mustSet(conf, "Busy", "InAConferenceCall", "PT4H", "APPrw")
	advance(t, "PT3H59M59S")
	f.wantPresence(away, "Away", "Away")
	f.wantPresence(dnd, "DoNotDisturb", "Presenting")
	f.wantPresence(conf, "Busy", "InAConferenceCall")
	now := advance(t, "PT1S")
	if now.Sub(t0) != 4*time.Hour {
		t.Fatalf("clock moved by %v, want 4h", now.Sub(t0))
	}
	for _, u := range []string{away, dnd, conf} {
		f.wantPresence(u, "Offline", "Offline")
	}
}

// 3.2: a refresh restarts both the idle clock and the expiry; without a
// duration the expiry is the default five minutes again (A2).
func TestC9_RefreshRestartsClocks(t *testing.T) {
	eachVersion(t, func(t *testing.T, f *fixture) {
		t0 := clockNow(t)
		f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
		advance(t, "PT4M")
		f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw") // refresh at t0+4m
		walk(t, f, f.U1, t0, []step{
			{"PT4M59S", "Available", "Available"},      // t0+8m59s = r+4m59s
			{"PT1S", "Available", "AvailableInactive"}, // r+5m
		})
		// A refresh without a duration: expiry is five minutes from now.
		f.mustSet(f.U1, "Available", "Available", "", "APPrw")
		walk(t, f, f.U1, t0, []step{
			{"", "Available", "Available"},
			{"PT4M59S", "Available", "Available"},
			{"PT1S", "Offline", "Offline"},
		})
		// A refresh replaces the pair.
		u := newGUID()
		f.mustSet(u, "Busy", "InACall", "PT1H", "APPrw")
		f.mustSet(u, "Away", "Away", "PT1H", "APPrw")
		f.wantPresence(u, "Away", "Away")
	})
}

// 3.2 fade table and 3.4 tie rules: with two Available app sessions, an
// active one beats an inactive one, and an inactive one beats a faded one.
func TestC9_FadeAcrossTwoSessions(t *testing.T) {
	f := newFixture(t)
	t0 := clockNow(t)
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
	advance(t, "PT4M")
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPBrw")
	walk(t, f, f.U1, t0, []step{
		{"PT2M", "Available", "Available"},         // A inactive, B active
		{"PT4M", "Available", "AvailableInactive"}, // t0+10m: A Away, B inactive
		{"PT4M", "Away", "Away"},                   // t0+14m: both Away
	})
}

// 3.3: the preferred presence has its own expiry; sessions expiring make it
// invisible.
func TestC9_PreferredHiddenWhenSessionsExpire(t *testing.T) {
	f := newFixture(t)
	t0 := clockNow(t)
	f.mustSet(f.U1, "Busy", "InACall", "PT10M", "APPrw")
	wantEmptyOK(t, f.preferred(f.U1, "DoNotDisturb", "DoNotDisturb", "", "APPrw"))
	walk(t, f, f.U1, t0, []step{
		{"PT9M59S", "DoNotDisturb", "DoNotDisturb"},
		{"PT1S", "Offline", "Offline"},
	})
	// The preferred presence (P1D) is still set: a new session shows it.
	f.mustSet(f.U1, "Available", "Available", "PT1H", "APPrw")
	f.wantPresence(f.U1, "DoNotDisturb", "DoNotDisturb")
}
