package presence

import (
	"errors"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

const lease = 30 * time.Second

// genSessions draws up to four live sessions of app and client kinds.
func genSessions(t *rapid.T, now time.Time) []Session {
	n := rapid.IntRange(0, 4).Draw(t, "sessions")
	var out []Session
	for i := range n {
		kind := rapid.SampledFrom([]SessionKind{AppSession, ClientSession}).Draw(t, "kind")
		pairs := SessionPairs()
		if kind == ClientSession {
			pairs = ClientPairs()
		}
		ago := time.Duration(rapid.IntRange(0, 20).Draw(t, "ago")) * time.Minute
		se := Session{
			ID:          string(rune('a' + i)),
			Kind:        kind,
			Pair:        rapid.SampledFrom(pairs).Draw(t, "pair"),
			RefreshedAt: now.Add(-ago),
			ExpiresAt:   now.Add(time.Duration(rapid.IntRange(1, 60).Draw(t, "left")) * time.Minute),
		}
		out = append(out, se)
	}
	return out
}

// genState draws a user's state of up to four live sessions (genSessions)
// and overlays (genOverlays).
func genState(t *rapid.T, now time.Time) State {
	var st State
	for _, se := range genSessions(t, now) {
		st.putSession(se)
	}
	genOverlays(t, &st, now)
	return st
}

func genOverlays(t *rapid.T, st *State, now time.Time) {
	if rapid.Bool().Draw(t, "preferred") {
		st.Preferred = &Preferred{Pair: rapid.SampledFrom(PreferredPairs()).Draw(t, "prefPair"), ExpiresAt: now.Add(time.Hour)}
	}
	st.OOF.IsOutOfOffice = rapid.Bool().Draw(t, "oof")
	st.CalendarBusy = rapid.Bool().Draw(t, "calendar")
}

// A connection session aggregates exactly as a Teams client session:
// replacing every client session by an active connection session of the
// same pair changes nothing visible, overlays and preferred presence
// included.
func TestConnectionAggregatesAsClient(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		st := genState(t, t0)
		var conn State = st.Clone()
		conn.Sessions = nil
		for _, se := range st.Sessions {
			if se.Kind == ClientSession {
				se.Kind = ConnectionSession
			}
			conn.putSession(se)
		}
		for _, d := range []time.Duration{0, 5 * time.Minute, 10 * time.Minute, 59 * time.Minute} {
			if a, b := st.visible(t0.Add(d)).Pair, conn.visible(t0.Add(d)).Pair; a != b {
				t.Fatalf("at +%v: client sessions show %v, connection sessions %v", d, a, b)
			}
		}
	})
}

// An idle connection session fades exactly as an Available app session
// refreshed at the instant the person went idle.
func TestIdleConnectionFadesAsTeams(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := newUser(t)
		u.must(&HoldConnection{Device: "laptop", Lease: time.Hour}, t0)
		idleAt := t0.Add(time.Duration(rapid.IntRange(0, 120).Draw(t, "idleAfter")) * time.Second)
		u.must(&SetConnectionIdle{Device: "laptop", Idle: true, Lease: time.Hour}, idleAt)
		// Saying idle again keeps the first instant.
		again := idleAt.Add(time.Duration(rapid.IntRange(0, 240).Draw(t, "again")) * time.Second)
		u.must(&SetConnectionIdle{Device: "laptop", Idle: true, Lease: time.Hour}, again)
		d := time.Duration(rapid.IntRange(0, 30*60).Draw(t, "d")) * time.Second
		app := Session{Kind: AppSession, Pair: Pair{Available, Available}, RefreshedAt: idleAt, ExpiresAt: idleAt.Add(2 * time.Hour)}
		at := idleAt.Add(d)
		if at.Before(again) {
			return
		}
		if got, want := u.pairAt(at), app.effective(at); got != want {
			t.Fatalf("idle for %v: %v, want %v", d, got, want)
		}
		// Back to active: Available again at once.
		u.must(&SetConnectionIdle{Device: "laptop", Idle: false, Lease: time.Hour}, at)
		if got := u.pairAt(at); got != (Pair{Available, Available}) {
			t.Fatalf("active again: %v", got)
		}
	})
}

func TestIdleConnectionTimeline(t *testing.T) {
	u := newUser(t)
	u.must(&HoldConnection{Device: "d", Lease: time.Hour}, t0)
	u.must(&SetConnectionIdle{Device: "d", Idle: true, Lease: time.Hour}, t0)
	for _, c := range []struct {
		after time.Duration
		want  Pair
	}{
		{IdleTimeout - time.Second, Pair{Available, Available}},
		{IdleTimeout, Pair{Available, AvailableInactive}},
		{2 * IdleTimeout, Pair{Away, Away}},
		{time.Hour, Pair{Offline, Offline}},
	} {
		if got := u.pairAt(t0.Add(c.after)); got != c.want {
			t.Errorf("+%v: %v, want %v", c.after, got, c.want)
		}
	}
}

// step is must, except that a Tick with nothing due changes nothing.
func (u *user) step(cmd Command, now time.Time) Change {
	u.t.Helper()
	ch, err := u.do(cmd, now)
	if errors.Is(err, ErrNothingDue) {
		return Change{}
	}
	if err != nil {
		u.t.Fatalf("%T: %v", cmd, err)
	}
	return ch
}

// connOp is one thing a connection does to its session.
func drawConnOp(t *rapid.T, device string) Command {
	switch rapid.IntRange(0, 3).Draw(t, "op") {
	case 0:
		p := rapid.SampledFrom(ConnectionPairs()).Draw(t, "state")
		return &SetConnectionState{Device: device, Availability: p.Availability, Activity: p.Activity, Lease: lease}
	case 1:
		return &SetConnectionIdle{Device: device, Idle: rapid.Bool().Draw(t, "idle"), Lease: lease}
	case 2:
		return &RenewConnection{Device: device}
	default:
		return Tick{}
	}
}

// A session whose connection closed and that a connection of the same
// device resumes within the grace window shows exactly what it showed:
// same view, same sequenceNumber, no event. Renewing a lease never changes
// anything visible either.
func TestResumeWithinGraceChangesNothing(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := newUser(t)
		u.st = genState(t, t0)
		now := t0
		u.must(&HoldConnection{Device: "phone", Lease: lease}, now)
		for range rapid.IntRange(0, 6).Draw(t, "ops") {
			now = now.Add(time.Duration(rapid.IntRange(0, 9).Draw(t, "step")) * time.Second)
			// The holder renews well within the lease.
			u.must(&RenewConnection{Device: "phone", Until: now.Add(lease)}, now)
			cmd := drawConnOp(t, "phone")
			if r, ok := cmd.(*RenewConnection); ok {
				r.Until = now.Add(lease)
				before := u.st.ViewAt(now)
				ch := u.must(cmd, now)
				if after := u.st.ViewAt(now); !sameVisible(before, after) || before.Seq != after.Seq || len(ch.Events) != 0 {
					t.Fatalf("renewing changed %+v to %+v (%d events)", before, after, len(ch.Events))
				}
				continue
			}
			u.step(cmd, now)
		}
		u.must(&ReleaseConnection{Device: "phone", Grace: lease}, now)
		gap := time.Duration(rapid.IntRange(0, int(lease/time.Second)-1).Draw(t, "gap")) * time.Second
		resumeAt := now.Add(gap)
		// Without the resume, what the clock did by itself until then.
		ref := newUser(t)
		ref.st = u.st.Clone()
		refCh := ref.step(Tick{}, resumeAt)
		ch := u.must(&HoldConnection{Device: "phone", Lease: lease}, resumeAt)
		if len(ch.Events) != len(refCh.Events) {
			t.Fatalf("resume after %v: %d events, the clock alone %d", gap, len(ch.Events), len(refCh.Events))
		}
		if a, b := u.st.ViewAt(resumeAt), ref.st.ViewAt(resumeAt); !sameVisible(a, b) || a.Seq != b.Seq {
			t.Fatalf("resume after %v shows %+v, without it %+v", gap, a, b)
		}
	})
}

// A released session that nobody resumes ends exactly at the end of the
// grace window: from then on the user shows what the other sessions show.
func TestReleasedSessionEndsAfterGrace(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := newUser(t)
		u.st = genState(t, t0)
		without := u.st.Clone()
		p := rapid.SampledFrom(ConnectionPairs()).Draw(t, "pair")
		u.must(&HoldConnection{Device: "laptop", Pair: &p, Lease: lease}, t0)
		u.must(&ReleaseConnection{Device: "laptop", Grace: lease}, t0)
		end := t0.Add(lease)
		u.step(Tick{}, end)
		if u.st.connection("laptop", end) >= 0 {
			t.Fatal("the session outlived its grace window")
		}
		if got, want := u.st.visible(end).Pair, without.visible(end).Pair; got != want {
			t.Fatalf("after the grace window: %v, without the connection %v", got, want)
		}
	})
}

// Several devices are several sessions: ending one leaves the other's
// state.
func TestSeveralDevices(t *testing.T) {
	u := newUser(t)
	busy := Pair{Busy, InACall}
	u.must(&HoldConnection{Device: "laptop", Lease: lease}, t0)
	u.must(&HoldConnection{Device: "phone", Pair: &busy, Lease: lease}, t0)
	if got := u.pairAt(t0); got != busy {
		t.Fatalf("two devices: %v", got)
	}
	u.must(&ReleaseConnection{Device: "phone", Grace: 0}, t0.Add(time.Second))
	if got := u.pairAt(t0.Add(time.Second)); got != (Pair{Available, Available}) {
		t.Fatalf("laptop alone: %v", got)
	}
	if _, err := u.do(&SetConnectionState{Device: "phone", Availability: "Busy", Activity: "InACall", Lease: lease}, t0.Add(2*time.Second)); err == nil {
		t.Fatal("a state for an ended session was taken")
	}
}

func TestConnectionValidation(t *testing.T) {
	env := &Env{Zones: NewTimeZones()}
	bad := []Command{
		&HoldConnection{Device: "", Lease: lease},
		&HoldConnection{Device: "has space", Lease: lease},
		&HoldConnection{Device: string(make([]byte, 65)), Lease: lease},
		&HoldConnection{Device: "d", Pair: &Pair{"Available", "Busy"}, Lease: lease},
		&HoldConnection{Device: "d", Lease: 0},
		&SetConnectionState{Device: "d", Availability: "Offline", Activity: "Offline", Lease: lease},
		&ReleaseConnection{Device: "d", Grace: -1},
		&HoldConnection{Device: "d", Lease: lease, Holder: strings.Repeat("h", MaxHolderLength+1)},
		&ReleaseConnection{Device: "d", Holder: strings.Repeat("h", MaxHolderLength+1)},
		&DropHolder{Device: "d"},
		&DropHolder{Device: "", Holder: "h"},
	}
	for _, c := range bad {
		if err := c.Validate(env); err == nil {
			t.Errorf("%T %+v: valid", c, c)
		}
	}
	p := Pair{"busy", "inacall"}
	c := &HoldConnection{Device: "Laptop-1.a:b_c", Pair: &p, Lease: lease}
	if err := c.Validate(env); err != nil || c.pair != (Pair{Busy, InACall}) {
		t.Errorf("valid hold: %v %v", err, c.pair)
	}
}

// A dead holder's sessions end (DropHolder) exactly as a release with no
// grace would end them, but only those it still holds: a session another
// holder took over, or released since, is left as it is (no visible
// change, no event), and a release by the old holder leaves it too.
func TestDropHolderEndsOnlyItsHolder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		u := newUser(t)
		u.st = genState(t, t0)
		p := rapid.SampledFrom(ConnectionPairs()).Draw(t, "pair")
		u.must(&HoldConnection{Device: "phone", Pair: &p, Lease: time.Hour, Holder: "n1.a"}, t0)
		now := t0.Add(time.Duration(rapid.IntRange(0, 20).Draw(t, "later")) * time.Second)
		fate := rapid.SampledFrom([]string{"held", "moved", "released"}).Draw(t, "fate")
		switch fate {
		case "moved":
			u.must(&HoldConnection{Device: "phone", Lease: time.Hour, Holder: "n2.b"}, now)
		case "released":
			u.must(&ReleaseConnection{Device: "phone", Grace: lease, Holder: "n1.a"}, now)
		}
		ref := newUser(t)
		ref.st = u.st.Clone()
		if fate == "held" {
			ref.must(&ReleaseConnection{Device: "phone", Grace: 0}, now)
		} else {
			ref.step(Tick{}, now)
		}
		before := u.st.ViewAt(now)
		ch := u.must(&DropHolder{Device: "phone", Holder: "n1.a"}, now)
		if a, b := u.st.ViewAt(now), ref.st.ViewAt(now); !sameVisible(a, b) {
			t.Fatalf("%s: after dropping the holder %+v, want %+v", fate, a, b)
		}
		if held := u.st.connection("phone", now) >= 0; held != (fate != "held") {
			t.Fatalf("%s: session live %v after the drop", fate, held)
		}
		if fate != "held" {
			if a := u.st.ViewAt(now); a.Seq != before.Seq || len(ch.Events) != 0 {
				t.Fatalf("%s: the drop changed %+v to %+v (%d events)", fate, before, a, len(ch.Events))
			}
			// A late release by the old holder leaves a moved session too.
			u.must(&ReleaseConnection{Device: "phone", Grace: lease, Holder: "n1.a"}, now)
			if held := u.st.connection("phone", now) >= 0; !held {
				t.Fatalf("%s: the old holder's release ended the session", fate)
			}
		}
	})
}

// A re-hold (From) takes a session that is gone, still names the old
// holder, or was released, and leaves one another holder took over; a
// session that lost its holder's name (written back by a node that does
// not know holders) is still released by its holder, and a re-hold keeps
// an idle session idle when it creates one.
func TestReholdAndStrippedHolder(t *testing.T) {
	u := newUser(t)
	long := time.Hour
	u.must(&HoldConnection{Device: "phone", Lease: long, Holder: "n1.a"}, t0)
	re := &HoldConnection{Device: "phone", Lease: long, Holder: "n1.b", From: "n1.a"}
	u.must(re, t0)
	if re.Moved || !re.Resumed || u.st.Sessions[0].Holder != "n1.b" {
		t.Fatalf("re-hold of its own session: moved %v, resumed %v, %+v", re.Moved, re.Resumed, u.st.Sessions)
	}
	u.must(&HoldConnection{Device: "phone", Lease: long, Holder: "n2.x"}, t0) // the device moved to n2
	re = &HoldConnection{Device: "phone", Lease: long, Holder: "n1.c", From: "n1.b"}
	u.must(re, t0)
	if !re.Moved || u.st.Sessions[0].Holder != "n2.x" {
		t.Fatalf("re-hold of a moved session: moved %v, %+v", re.Moved, u.st.Sessions)
	}
	// n2's session loses its holder's name; n2's release still ends it
	// after the grace window.
	u.st.Sessions[0].Holder = ""
	u.must(&ReleaseConnection{Device: "phone", Grace: lease, Holder: "n2.x"}, t0)
	if se := u.st.Sessions[0]; !se.ExpiresAt.Equal(t0.Add(lease)) {
		t.Fatalf("a stripped session released: %+v, want it to end at t0+%v", se, lease)
	}
	u.step(Tick{}, t0.Add(lease))
	re = &HoldConnection{Device: "phone", Lease: long, Holder: "n1.d", From: "n1.c", Idle: true}
	u.must(re, t0.Add(lease))
	if re.Resumed || len(u.st.Sessions) != 1 || u.st.Sessions[0].Kind != IdleConnectionSession {
		t.Fatalf("re-hold of an ended session: resumed %v, %+v; want a new idle session", re.Resumed, u.st.Sessions)
	}
}
