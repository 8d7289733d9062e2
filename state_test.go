package presence

import (
	"errors"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

const (
	appA = "22553876-f5ab-4529-bffb-cfe50aa89f87"
	appB = "5c7f0bb9-3a0e-4d4f-9d39-3f0f7d1b6a10"
)

var t0 = time.Date(2026, 1, 12, 9, 0, 0, 0, time.UTC)

func dur(d time.Duration) *time.Duration { return &d }

// user drives one State through Step, as a store would.
type user struct {
	t interface {
		Helper()
		Fatalf(string, ...any)
	}
	st  State
	env Env
}

func newUser(t interface {
	Helper()
	Fatalf(string, ...any)
}) *user {
	return &user{t: t, env: Env{Zones: NewTimeZones()}}
}

func (u *user) do(cmd Command, now time.Time) (Change, error) {
	if err := cmd.Validate(&u.env); err != nil {
		return Change{}, err
	}
	next := u.st.Clone()
	ch, err := Step(Key{"t", "u"}, &next, cmd, now)
	if err == nil {
		u.st = next
	}
	return ch, err
}

func (u *user) must(cmd Command, now time.Time) Change {
	u.t.Helper()
	ch, err := u.do(cmd, now)
	if err != nil {
		u.t.Fatalf("%T: %v", cmd, err)
	}
	return ch
}

func (u *user) pairAt(now time.Time) Pair { return u.st.ViewAt(now).Pair }

func set(app, av, ac string, d *time.Duration) *SetPresence {
	return &SetPresence{CallerApp: app, SessionID: app, Availability: av, Activity: ac, Expiration: d}
}

func TestTimeline(t *testing.T) {
	type at struct {
		after time.Duration
		want  Pair
	}
	tests := []struct {
		name  string
		setup func(u *user)
		want  []at
	}{
		{"available PT1H fades then expires", func(u *user) { u.must(set(appA, "Available", "Available", dur(time.Hour)), t0) }, []at{
			{4*time.Minute + 59*time.Second, Pair{Available, Available}},
			{5 * time.Minute, Pair{Available, AvailableInactive}},
			{10 * time.Minute, Pair{Away, Away}},
			{59*time.Minute + 59*time.Second, Pair{Away, Away}},
			{time.Hour, Pair{Offline, Offline}},
		}},
		{"default expiry wins over fade", func(u *user) { u.must(set(appA, "Available", "Available", nil), t0) }, []at{
			{4*time.Minute + 59*time.Second, Pair{Available, Available}},
			{5 * time.Minute, Pair{Offline, Offline}},
		}},
		{"PT10M", func(u *user) { u.must(set(appA, "Available", "Available", dur(10*time.Minute)), t0) }, []at{
			{5 * time.Minute, Pair{Available, AvailableInactive}},
			{10 * time.Minute, Pair{Offline, Offline}},
		}},
		{"busy does not fade", func(u *user) { u.must(set(appA, "Busy", "InACall", dur(time.Hour)), t0) }, []at{
			{30 * time.Minute, Pair{Busy, InACall}},
			{time.Hour, Pair{Offline, Offline}},
		}},
		{"preferred busy default one day", func(u *user) {
			u.must(&SetClientSession{ID: "c", Availability: "Available", Activity: "Available", Expiration: 8 * 24 * time.Hour}, t0)
			u.must(&SetPreferred{Availability: "Busy", Activity: "Busy"}, t0)
		}, []at{
			{24*time.Hour - time.Second, Pair{Busy, Busy}},
			{24 * time.Hour, Pair{Available, Available}},
		}},
		{"preferred available default seven days", func(u *user) {
			u.must(&SetClientSession{ID: "c", Availability: "Busy", Activity: "InACall", Expiration: 8 * 24 * time.Hour}, t0)
			u.must(&SetPreferred{Availability: "Available", Activity: "Available"}, t0)
		}, []at{
			{7*24*time.Hour - time.Second, Pair{Available, Available}},
			{7 * 24 * time.Hour, Pair{Busy, InACall}},
		}},
		{"preferred invisible without session", func(u *user) {
			u.must(&SetPreferred{Availability: "DoNotDisturb", Activity: "DoNotDisturb"}, t0)
		}, []at{{0, Pair{Offline, Offline}}}},
		{"preferred beats sessions", func(u *user) {
			u.must(&SetPreferred{Availability: "DoNotDisturb", Activity: "DoNotDisturb"}, t0)
			u.must(set(appA, "Available", "Available", dur(time.Hour)), t0)
		}, []at{{0, Pair{DoNotDisturb, DoNotDisturb}}, {time.Hour, Pair{Offline, Offline}}}},
		{"client available beats app away", func(u *user) {
			u.must(&SetClientSession{ID: "c", Availability: "Available", Activity: "Available", Expiration: time.Hour}, t0)
			u.must(set(appA, "Away", "Away", dur(time.Hour)), t0)
		}, []at{{0, Pair{Available, Available}}}},
		{"DND beats busy", func(u *user) {
			u.must(set(appA, "DoNotDisturb", "Presenting", dur(time.Hour)), t0)
			u.must(set(appB, "Busy", "InACall", dur(time.Hour)), t0)
		}, []at{{0, Pair{DoNotDisturb, Presenting}}}},
		{"active available beats inactive", func(u *user) {
			u.must(set(appA, "Available", "Available", dur(time.Hour)), t0)
			u.must(set(appB, "Available", "Available", dur(time.Hour)), t0.Add(3*time.Minute))
		}, []at{{6 * time.Minute, Pair{Available, Available}}, {8 * time.Minute, Pair{Available, AvailableInactive}}}},
		{"out of office over available", func(u *user) {
			msg := "On leave"
			u.must(SetOutOfOffice{OutOfOfficeSettings{IsOutOfOffice: true, Message: &msg}}, t0)
			u.must(&SetClientSession{ID: "c", Availability: "Available", Activity: "Available", Expiration: time.Hour}, t0)
		}, []at{{0, Pair{Available, OutOfOffice}}, {time.Hour, Pair{Offline, OutOfOffice}}}},
		{"calendar makes available busy", func(u *user) {
			u.must(SetCalendarBusy{Active: true}, t0)
			u.must(&SetClientSession{ID: "c", Availability: "Available", Activity: "Available", Expiration: time.Hour}, t0)
		}, []at{{0, Pair{Busy, InAMeeting}}}},
		{"presence disabled", func(u *user) {
			u.must(SetPresenceEnabled{Enabled: false}, t0)
			u.must(set(appA, "Busy", "InACall", dur(time.Hour)), t0)
		}, []at{{0, Pair{PresenceUnknown, PresenceUnknown}}}},
		{"refresh without duration resets expiry to default", func(u *user) {
			u.must(set(appA, "Busy", "InACall", dur(time.Hour)), t0)
			u.must(set(appA, "Busy", "InACall", nil), t0.Add(10*time.Minute))
		}, []at{{14 * time.Minute, Pair{Busy, InACall}}, {15 * time.Minute, Pair{Offline, Offline}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := newUser(t)
			tt.setup(u)
			for _, w := range tt.want {
				if got := u.pairAt(t0.Add(w.after)); got != w.want {
					t.Errorf("at +%v: got %v, want %v", w.after, got, w.want)
				}
			}
		})
	}
}

func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		code Code
		msg  string
	}{
		{"busy/busy", set(appA, "Busy", "Busy", nil), CodeInvalidArgument, msgPairUnsupported + " setPresence accepts Available/Available, Busy/InACall, Busy/InAConferenceCall, Away/Away and DoNotDisturb/Presenting."},
		{"preferred busy/incall names the pairs", &SetPreferred{Availability: "Busy", Activity: "InACall"}, CodeInvalidArgument,
			msgPairUnsupported + " setUserPreferredPresence accepts Available/Available, Busy/Busy, DoNotDisturb/DoNotDisturb, BeRightBack/BeRightBack, Away/Away and Offline/OffWork."},
		{"dnd/dnd", set(appA, "DoNotDisturb", "DoNotDisturb", nil), CodeInvalidArgument, ""},
		{"offline/offwork", set(appA, "Offline", "OffWork", nil), CodeInvalidArgument, ""},
		{"sleeping", set(appA, "Sleeping", "Available", nil), CodeInvalidArgument, ""},
		{"PT4M", set(appA, "Available", "Available", dur(4*time.Minute)), CodeInvalidArgument, msgDurationRange},
		{"PT4H1S", set(appA, "Available", "Available", dur(4*time.Hour+time.Second)), CodeInvalidArgument, msgDurationRange},
		{"other session", &SetPresence{CallerApp: appA, SessionID: appB, Availability: "Available", Activity: "Available"}, CodeInvalidArgument, msgSessionInvalid},
		{"missing session", &SetPresence{CallerApp: appA, Availability: "Available", Activity: "Available"}, CodeInvalidArgument, msgSessionInvalid},
		{"preferred busy/incall", &SetPreferred{Availability: "Busy", Activity: "InACall"}, CodeInvalidArgument, ""},
		{"preferred zero", &SetPreferred{Availability: "Away", Activity: "Away", Expiration: dur(0)}, CodeInvalidArgument, ""},
		{"html", &SetStatusMessage{Content: "x", ContentType: "html"}, CodeInvalidArgument, ""},
		{"bad zone", &SetStatusMessage{Content: "x", HasExpiry: true, ExpiryDateTime: "2026-01-12T10:00:00", ExpiryTimeZone: "Mars/Olympus"}, CodeInvalidArgument, ""},
		{"offset", &SetStatusMessage{Content: "x", HasExpiry: true, ExpiryDateTime: "2026-01-12T10:00:00Z", ExpiryTimeZone: "UTC"}, CodeInvalidArgument, ""},
		{"path zone", &SetStatusMessage{Content: "x", HasExpiry: true, ExpiryDateTime: "2026-01-12T10:00:00", ExpiryTimeZone: "../../etc/passwd"}, CodeInvalidArgument, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cmd.Validate(&Env{Zones: NewTimeZones()})
			var e *Error
			if !errors.As(err, &e) || e.Code != tt.code || (tt.msg != "" && e.Message != tt.msg) {
				t.Fatalf("got %v, want %s %q", err, tt.code, tt.msg)
			}
		})
	}
	for _, ok := range []Command{
		set(appA, "available", "AVAILABLE", dur(5*time.Minute)),
		set(appA, "Busy", "InACall", dur(4*time.Hour)),
		&SetPresence{CallerApp: appA, SessionID: "{22553876-F5AB-4529-BFFB-CFE50AA89F87}", Availability: "Away", Activity: "Away"},
		&SetPreferred{Availability: "Offline", Activity: "OffWork"},
		&SetStatusMessage{Content: "x", HasExpiry: true, ExpiryDateTime: "2026-01-12T10:00:00.1234567", ExpiryTimeZone: "Pacific Standard Time"},
		&SetStatusMessage{Content: "x", HasExpiry: true, ExpiryDateTime: "2026-01-12T10:00:00", ExpiryTimeZone: "Europe/Berlin"},
	} {
		if err := ok.Validate(&Env{Zones: NewTimeZones()}); err != nil {
			t.Errorf("%#v: %v", ok, err)
		}
	}
}

func TestClearPresence(t *testing.T) {
	u := newUser(t)
	u.must(set(appA, "Busy", "InACall", dur(time.Hour)), t0)
	u.must(set(appB, "Available", "Available", dur(time.Hour)), t0)
	u.must(&ClearPresence{CallerApp: appA, SessionID: appA}, t0)
	if got := u.pairAt(t0); got != (Pair{Available, Available}) {
		t.Fatalf("after clearing A: %v", got)
	}
	if _, err := u.do(&ClearPresence{CallerApp: appA, SessionID: appA}, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second clear: %v", err)
	}
	if _, err := u.do(&ClearPresence{CallerApp: appB, SessionID: appB}, t0.Add(time.Hour)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("clear after expiry: %v", err)
	}
}

func TestStatusMessage(t *testing.T) {
	u := newUser(t)
	u.must(&SetStatusMessage{Content: "In the lab", HasExpiry: true, ExpiryDateTime: "2026-01-12T10:00:00", ExpiryTimeZone: "UTC"}, t0)
	v := u.st.ViewAt(t0)
	if v.Status == nil || v.Status.Content != "In the lab" || !v.Status.PublishedAt.Equal(t0) {
		t.Fatalf("status %+v", v.Status)
	}
	if v := u.st.ViewAt(t0.Add(time.Hour)); v.Status != nil {
		t.Fatalf("status visible after expiry: %+v", v.Status)
	}
	// Windows zone: 02:00 Pacific (UTC-8 in January) is 10:00 UTC.
	u.must(&SetStatusMessage{Content: "PST", HasExpiry: true, ExpiryDateTime: "2026-01-12T02:00:00", ExpiryTimeZone: "Pacific Standard Time"}, t0)
	if at := u.st.Status.Expiry.At; !at.Equal(t0.Add(time.Hour)) {
		t.Fatalf("Pacific expiry at %v", at)
	}
	u.must(&SetStatusMessage{Content: ""}, t0)
	if u.st.ViewAt(t0).Status != nil {
		t.Fatal("empty content did not clear")
	}
}

func TestSequenceNumber(t *testing.T) {
	u := newUser(t)
	s0 := u.st.ViewAt(t0).SequenceNumber()
	if s0 != "A0000000000" {
		t.Fatalf("initial %q", s0)
	}
	u.must(set(appA, "Available", "Available", dur(time.Hour)), t0)
	s1 := u.st.ViewAt(t0).SequenceNumber()
	u.must(set(appA, "Available", "Available", dur(time.Hour)), t0)
	if s := u.st.ViewAt(t0).SequenceNumber(); s != s1 || s1 <= s0 {
		t.Fatalf("refresh changed seq: %s -> %s -> %s", s0, s1, s)
	}
	// Without a write, the fade still moves the version forward.
	s2 := u.st.ViewAt(t0.Add(5 * time.Minute)).SequenceNumber()
	s3 := u.st.ViewAt(t0.Add(10 * time.Minute)).SequenceNumber()
	if !(s1 < s2 && s2 < s3) {
		t.Fatalf("fade versions %s %s %s", s1, s2, s3)
	}
	if FormatSequence(9999999999) >= FormatSequence(10000000000) {
		t.Fatal("sequence strings stop sorting past ten digits")
	}
	for seq, want := range map[uint64]string{0: "A0000000000", 42: "A0000000042", 9999999999: "A9999999999", 10000000000: "B00000000010000000000"} {
		if got := FormatSequence(seq); got != want {
			t.Errorf("FormatSequence(%d) = %q, want %q", seq, got, want)
		}
		if got := string(AppendSequence([]byte("x"), seq)); got != "x"+want {
			t.Errorf("AppendSequence(x, %d) = %q", seq, got)
		}
	}
}

func TestCatchUpEvents(t *testing.T) {
	u := newUser(t)
	u.must(set(appA, "Available", "Available", dur(time.Hour)), t0)
	ch := u.must(Tick{}, t0.Add(2*time.Hour))
	var got []Pair
	var ats []time.Duration
	for _, ev := range ch.Events {
		got = append(got, ev.After.Pair)
		ats = append(ats, ev.At.Sub(t0))
	}
	want := []Pair{{Available, AvailableInactive}, {Away, Away}, {Offline, Offline}}
	if !slices.Equal(got, want) || !slices.Equal(ats, []time.Duration{5 * time.Minute, 10 * time.Minute, time.Hour}) {
		t.Fatalf("events %v at %v", got, ats)
	}
	if len(u.st.Sessions) != 0 || !u.st.Due.IsZero() {
		t.Fatalf("expired session not pruned: %+v", u.st)
	}
}

// TestProperties checks the state machine's invariants over random command
// sequences and clock advances.
func TestProperties(t *testing.T) {
	avail := Availabilities()
	act := Activities()
	rapid.Check(t, func(rt *rapid.T) {
		u := newUser(rt)
		now := t0
		prev := u.st.ViewAt(now)
		steps := rapid.IntRange(1, 40).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			var cmd Command
			switch rapid.IntRange(0, 12).Draw(rt, "op") {
			case 0, 1:
				p := rapid.SampledFrom(SessionPairs()).Draw(rt, "pair")
				app := rapid.SampledFrom([]string{appA, appB}).Draw(rt, "app")
				var d *time.Duration
				if rapid.Bool().Draw(rt, "hasDur") {
					d = dur(time.Duration(rapid.IntRange(5, 240).Draw(rt, "min")) * time.Minute)
				}
				cmd = set(app, p.Availability, p.Activity, d)
			case 2:
				app := rapid.SampledFrom([]string{appA, appB}).Draw(rt, "app")
				cmd = &ClearPresence{CallerApp: app, SessionID: app}
			case 3:
				p := rapid.SampledFrom(PreferredPairs()).Draw(rt, "pair")
				var d *time.Duration
				if rapid.Bool().Draw(rt, "hasDur") {
					d = dur(time.Duration(rapid.IntRange(1, 600).Draw(rt, "min")) * time.Minute)
				}
				cmd = &SetPreferred{Availability: p.Availability, Activity: p.Activity, Expiration: d}
			case 4:
				cmd = ClearPreferred{}
			case 5:
				p := rapid.SampledFrom(ClientPairs()).Draw(rt, "pair")
				cmd = &SetClientSession{ID: rapid.SampledFrom([]string{"c1", "c2"}).Draw(rt, "cid"), Availability: p.Availability, Activity: p.Activity,
					Expiration: time.Duration(rapid.IntRange(1, 600).Draw(rt, "min")) * time.Minute}
			case 6:
				cmd = &SetStatusMessage{Content: rapid.SampledFrom([]string{"", "a", "b"}).Draw(rt, "content"), HasExpiry: true,
					ExpiryDateTime: now.Add(time.Duration(rapid.IntRange(-5, 120).Draw(rt, "smin")) * time.Minute).Format("2006-01-02T15:04:05"), ExpiryTimeZone: "UTC"}
			case 7:
				cmd = SetOutOfOffice{OutOfOfficeSettings{IsOutOfOffice: rapid.Bool().Draw(rt, "oof")}}
			case 8:
				cmd = SetCalendarBusy{Active: rapid.Bool().Draw(rt, "cal")}
			case 9:
				cmd = &SetLocation{Automatic: rapid.Bool().Draw(rt, "auto"), HasType: true,
					Type:    rapid.SampledFrom([]string{"office", "remote", "timeOff"}).Draw(rt, "wlt"),
					PlaceID: rapid.SampledFrom([]string{"", "b1"}).Draw(rt, "place")}
			case 10:
				cmd = ClearLocation{Manual: rapid.Bool().Draw(rt, "manual")}
			case 11:
				// A daily segment of the plan, at a random time of day.
				from := now.Truncate(24 * time.Hour).Add(time.Duration(rapid.IntRange(0, 95).Draw(rt, "from")) * 15 * time.Minute)
				to := from.Add(time.Duration(rapid.IntRange(1, 48).Draw(rt, "len")) * 15 * time.Minute)
				cmd = &SetWorkPlan{TimeZone: rapid.SampledFrom([]string{"", "Tokyo Standard Time", "America/New_York"}).Draw(rt, "tz"),
					Recurrences: []PlanRecurrence{{Start: PlanTime{from.Format("2006-01-02T15:04:05"), "UTC"},
						End: PlanTime{to.Format("2006-01-02T15:04:05"), "UTC"}, Type: "office", Days: 0x7f, RangeType: RangeNoEnd}}}
			default:
				cmd = Tick{}
			}
			ch, err := u.do(cmd, now)
			if err == nil && ch.After.Seq < ch.Before.Seq {
				rt.Fatalf("command lowered seq")
			}
			switch cmd.(type) {
			case *SetLocation, ClearLocation, *SetWorkPlan:
				if err == nil && ch.After.Pair != ch.Before.Pair {
					rt.Fatalf("%T changed the pair %v -> %v", cmd, ch.Before.Pair, ch.After.Pair)
				}
			}
			// Walk the clock forward, checking the view between changes.
			adv := time.Duration(rapid.IntRange(0, 180).Draw(rt, "advance")) * time.Minute
			end := now.Add(adv)
			for {
				v := u.st.ViewAt(now)
				checkView(rt, &u.st, v, now, avail, act)
				if v.Seq < prev.Seq || (v.Seq == prev.Seq) != sameVisible(v, prev) {
					rt.Fatalf("seq %d->%d but visible same=%v (%v -> %v)", prev.Seq, v.Seq, sameVisible(v, prev), prev.Pair, v.Pair)
				}
				prev = v
				next, ok := u.st.NextChange(now)
				if ok && !next.After(now) {
					rt.Fatalf("NextChange %v not after %v", next, now)
				}
				if !ok || next.After(end) {
					if mid := end; !mid.Equal(now) {
						if w := u.st.ViewAt(mid); !sameVisible(w, v) || w.Seq != v.Seq {
							rt.Fatalf("view changed between changes: %v -> %v", v.Pair, w.Pair)
						}
					}
					break
				}
				if mid := now.Add(next.Sub(now) / 2); mid.After(now) {
					if w := u.st.ViewAt(mid); !sameVisible(w, v) || w.Seq != v.Seq {
						rt.Fatalf("view changed before NextChange: %v -> %v", v.Pair, w.Pair)
					}
				}
				now = next
			}
			now = end
		}
	})
}

func checkView(rt *rapid.T, st *State, v View, now time.Time, avail, act []string) {
	if !slices.Contains([]string{LocationUnspecified, LocationOffice, LocationRemote, LocationTimeOff}, v.WorkLocation.Type) ||
		!slices.Contains([]string{SourceNone, SourceManual, SourceAutomatic, SourceScheduled}, v.WorkLocation.Source) {
		rt.Fatalf("work location outside the vocabulary: %+v", v.WorkLocation)
	}
	if !slices.Contains(avail, v.Availability) || !slices.Contains(act, v.Activity) {
		rt.Fatalf("view outside the vocabulary: %v", v.Pair)
	}
	live := false
	for _, se := range st.Sessions {
		if now.Before(se.ExpiresAt) {
			live = true
		}
	}
	prefLive := st.Preferred != nil && now.Before(st.Preferred.ExpiresAt)
	if prefLive && !st.PresenceDisabled {
		want := st.Preferred.Pair
		if st.OOF.IsOutOfOffice && want == (Pair{Available, Available}) {
			want.Activity = OutOfOffice
		}
		if shown := v.Pair == want; shown != live {
			rt.Fatalf("preferred %v shown=%v with live session=%v (view %v)", st.Preferred.Pair, shown, live, v.Pair)
		}
	}
	if !live && !st.PresenceDisabled && v.Availability != Offline {
		rt.Fatalf("no live session but %v", v.Pair)
	}
}

// A status message whose expiry is not after now is accepted, as Graph
// accepts it, and is hidden at once; one a second ahead is visible.
func TestStatusMessagePastExpiry(t *testing.T) {
	now := time.Date(2026, 12, 6, 15, 0, 0, 0, time.UTC)
	env := &Env{Zones: NewTimeZones()}
	for _, c := range []struct {
		dt      string
		visible bool
	}{{"2026-12-01T17:00:00", false}, {"2026-12-06T07:00:00", false}, {"2026-12-06T07:00:01", true}} { // 07:00 PST = 15:00 UTC
		cmd := &SetStatusMessage{Content: "In the lab", ContentType: "text", HasExpiry: true, ExpiryDateTime: c.dt, ExpiryTimeZone: "Pacific Standard Time"}
		if err := cmd.Validate(env); err != nil {
			t.Fatal(err)
		}
		var st State
		if err := cmd.Apply(&st, now); err != nil {
			t.Fatalf("expiry %s: %v", c.dt, err)
		}
		if got := st.ViewAt(now).Status != nil; got != c.visible {
			t.Errorf("expiry %s: visible %v, want %v", c.dt, got, c.visible)
		}
	}
}
