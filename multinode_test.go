package presence

import (
	"errors"
	"testing"
	"time"
)

// The three rules that let several nodes share one store (DESIGN.md,
// "Several nodes"): each test failed before Step kept it.

// A Tick on a user with nothing due writes nothing, so a user fired twice
// (by two nodes, or again after a retry) costs no write.
func TestTickWithNothingDueWritesNothing(t *testing.T) {
	u := newUser(t)
	set := &SetPresence{CallerApp: appA, SessionID: appA, Availability: Available, Activity: Available, Expiration: dur(time.Hour)}
	u.must(set, t0)
	before := u.st.Clone()
	st := u.st.Clone()
	if _, err := Step(Key{"t", "u"}, &st, Tick{}, t0.Add(time.Minute)); !errors.Is(err, ErrNothingDue) {
		t.Fatalf("Tick before the fade: err = %v, want ErrNothingDue", err)
	}
	if st.SeqAt != before.SeqAt || st.Seq != before.Seq || st.Due != before.Due {
		t.Fatalf("a Tick with nothing due changed the state: %+v -> %+v", before, st)
	}
	// Once the fade is due, the Tick records it.
	ch := u.must(Tick{}, t0.Add(IdleTimeout))
	if len(ch.Events) != 1 || ch.Events[0].After.Activity != AvailableInactive {
		t.Fatalf("Tick at the fade: events %+v", ch.Events)
	}
	// A second Tick at the same instant (another node) finds nothing due.
	if _, err := u.do(Tick{}, t0.Add(IdleTimeout)); !errors.Is(err, ErrNothingDue) {
		t.Fatalf("second Tick at the fade: err = %v, want ErrNothingDue", err)
	}
}

// A node whose clock runs behind never moves a state back in time, and so
// never makes a boundary another node already recorded happen again.
func TestStepNeverMovesBackInTime(t *testing.T) {
	u := newUser(t)
	u.must(&SetPresence{CallerApp: appA, SessionID: appA, Availability: Available, Activity: Available, Expiration: dur(time.Hour)}, t0)
	fade := t0.Add(IdleTimeout)
	u.must(Tick{}, fade) // a node with the right clock records the fade
	seqAfterFade := u.st.ViewAt(fade).Seq
	// A node whose clock is a minute behind writes a status message.
	late := fade.Add(-time.Minute)
	u.must(&SetStatusMessage{Content: "in the lab", ContentType: "text"}, late)
	if u.st.SeqAt.Before(fade) {
		t.Fatalf("SeqAt moved back from %v to %v", fade, u.st.SeqAt)
	}
	// The status message is one visible change; the fade is not counted again.
	v := u.st.ViewAt(fade.Add(time.Minute))
	if v.Seq != nextSeq(seqAfterFade, fade) {
		t.Fatalf("seq after the late write = %d, want %d (one change after the fade's %d)", v.Seq, nextSeq(seqAfterFade, fade), seqAfterFade)
	}
	if v.Activity != AvailableInactive {
		t.Fatalf("after the late write the user shows %v", v.Pair)
	}
}

// A store that comes back with an older state (a failover lost the last
// write) never hands out a sequenceNumber twice: versions are floored by
// the instant of their change.
func TestSequenceNumberNeverRepeatsAfterLostWrite(t *testing.T) {
	u := newUser(t)
	u.must(&SetPresence{CallerApp: appA, SessionID: appA, Availability: Available, Activity: Available, Expiration: dur(time.Hour)}, t0)
	older := u.st.Clone()
	lost := u.must(&SetPresence{CallerApp: appA, SessionID: appA, Availability: Busy, Activity: InACall, Expiration: dur(time.Hour)}, t0.Add(time.Second))
	u.st = older // the write above is lost
	again := u.must(&SetPresence{CallerApp: appA, SessionID: appA, Availability: DoNotDisturb, Activity: Presenting, Expiration: dur(time.Hour)}, t0.Add(2*time.Second))
	if again.After.Seq <= lost.After.Seq {
		t.Fatalf("after a lost write the next change has version %d, not above the lost one's %d", again.After.Seq, lost.After.Seq)
	}
	if got := FormatSequence(again.After.Seq); len(got) != 11 || got[0] != 'A' {
		t.Fatalf("sequenceNumber %q is not a letter and ten digits", got)
	}
}

func TestSeqFloor(t *testing.T) {
	for _, c := range []struct {
		at   time.Time
		want uint64
	}{
		{time.Date(2024, 12, 31, 23, 59, 59, 0, time.UTC), 0},
		{time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{time.Date(2025, 1, 1, 0, 0, 1, 250e6, time.UTC), 12},
		{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 365 * 86400 * 10},
	} {
		if got := SeqFloor(c.at); got != c.want {
			t.Errorf("SeqFloor(%v) = %d, want %d", c.at, got, c.want)
		}
	}
}
