package presence

import (
	"strconv"
	"time"
)

// The session clocks of the Teams presence service.
const (
	// IdleTimeout is how long an Available app session stays Available
	// before it fades to AvailableInactive, and then again to Away.
	IdleTimeout = 5 * time.Minute
	// DefaultSessionExpiry applies when setPresence has no expirationDuration.
	DefaultSessionExpiry = 5 * time.Minute
	// MinSessionExpiry and MaxSessionExpiry bound setPresence's duration.
	MinSessionExpiry = 5 * time.Minute
	MaxSessionExpiry = 4 * time.Hour
)

// View is the presence of a user as a reader sees it at one instant.
type View struct {
	Pair
	// Status is the visible status message, nil when none or expired.
	Status *StatusMessage
	OOF    OutOfOfficeSettings
	// WorkLocation is the aggregated work location.
	WorkLocation WorkLocation
	// Seq is the version of this view; it grows with every visible change.
	Seq uint64
}

// SequenceNumber renders Seq as Graph's lexicographically sortable string.
func (v View) SequenceNumber() string { return FormatSequence(v.Seq) }

// GraphTimeLayout is how Graph writes an instant (publishedDateTime,
// expirationDateTime, subscriptionExpirationDateTime): UTC with seven
// fractional digits, for time.Time.Format of a UTC time.
const GraphTimeLayout = "2006-01-02T15:04:05.0000000Z"

// FormatSequence renders a version as "A" and ten or more digits, so that
// byte order is version order.
func FormatSequence(seq uint64) string {
	var buf [21]byte
	return string(AppendSequence(buf[:0], seq))
}

// AppendSequence appends FormatSequence(seq) to dst.
func AppendSequence(dst []byte, seq uint64) []byte {
	// Past ten digits the letter moves on, keeping byte order intact.
	letter, width := byte('A'), 10
	if seq >= 1e10 {
		letter, width = 'B', 20
	}
	var buf [20]byte
	digits := strconv.AppendUint(buf[:0], seq, 10)
	dst = append(dst, letter)
	for range width - len(digits) {
		dst = append(dst, '0')
	}
	return append(dst, digits...)
}

// sameVisible reports whether two views show the same presence, ignoring Seq.
func sameVisible(a, b View) bool {
	if a.Pair != b.Pair || a.WorkLocation != b.WorkLocation || a.OOF.IsOutOfOffice != b.OOF.IsOutOfOffice || !sameStringPtr(a.OOF.Message, b.OOF.Message) {
		return false
	}
	if (a.Status == nil) != (b.Status == nil) {
		return false
	}
	if a.Status == nil {
		return true
	}
	x, y := a.Status, b.Status
	return x.Content == y.Content && x.ContentType == y.ContentType && x.PublishedAt.Equal(y.PublishedAt) &&
		sameExpiry(x.Expiry, y.Expiry)
}

func sameStringPtr(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func sameExpiry(a, b *Expiry) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.DateTime == b.DateTime && a.TimeZone == b.TimeZone && a.At.Equal(b.At)
}

// ViewAt returns the presence of s as seen at now, with its version: the
// stored version advanced (by nextSeq) for every visible change the clock
// made between SeqAt and now.
func (s *State) ViewAt(now time.Time) View {
	v := s.visible(now)
	v.Seq = s.seqAt(now)
	return v
}

// seqAt is the version of the visible presence at now: Seq, advanced once
// for each instant in (SeqAt, now] at which the visible presence changed by
// itself, exactly as catchUp will record it.
func (s *State) seqAt(now time.Time) uint64 {
	t := s.SeqAt
	if !t.Before(now) {
		return s.Seq
	}
	next, ok := s.NextChange(t)
	if !ok || next.After(now) {
		return s.Seq // the common case, without computing a view
	}
	seq := s.Seq
	prev := s.visible(t)
	for {
		cur := s.visible(next)
		if !sameVisible(prev, cur) {
			seq = nextSeq(seq, next)
		}
		prev, t = cur, next
		if next, ok = s.NextChange(t); !ok || next.After(now) {
			return seq
		}
	}
}

// seqEpochUnix is the origin of SeqFloor, 2025-01-01T00:00:00Z, in Unix
// seconds.
const seqEpochUnix = 1735689600

// SeqFloor is the least version a change at instant at may have: the
// tenths of a second since 2025-01-01 UTC (ten digits until 2056, when
// FormatSequence moves to its second letter and keeps byte order). A store
// that loses its last writes (a failover, a restore) thus never makes a
// version repeat: any change after the loss is later than every change
// before it, by more than the loss took.
func SeqFloor(at time.Time) uint64 {
	sec := at.Unix() - seqEpochUnix
	if sec < 0 {
		return 0
	}
	return uint64(sec)*10 + uint64(at.Nanosecond()/1e8)
}

// nextSeq is the version after seq for a visible change at instant at.
func nextSeq(seq uint64, at time.Time) uint64 {
	return max(seq+1, SeqFloor(at))
}

// visible computes the visible presence at now, without its version.
func (s *State) visible(now time.Time) View {
	var v View
	v.WorkLocation = s.Work.workLocationAt(now)
	if st := s.Status; st != nil && (st.Expiry == nil || now.Before(st.Expiry.At)) {
		v.Status = st
	}
	if s.PresenceDisabled {
		// A user not enabled for presence shows no overlay at all.
		v.Pair = Pair{PresenceUnknown, PresenceUnknown}
		return v
	}
	v.OOF = OutOfOfficeSettings{IsOutOfOffice: s.OOF.IsOutOfOffice, Message: s.OOF.Message}
	best := -1
	var bestPair Pair
	for i := range s.Sessions {
		se := &s.Sessions[i]
		if !now.Before(se.ExpiresAt) {
			continue
		}
		p := se.effective(now)
		if best < 0 || beats(p, se, bestPair, &s.Sessions[best]) {
			best, bestPair = i, p
		}
	}
	fromPreferred := false
	switch {
	case best < 0:
		v.Pair = Pair{Offline, Offline}
	case s.Preferred != nil && now.Before(s.Preferred.ExpiresAt):
		v.Pair = s.Preferred.Pair
		fromPreferred = true
	default:
		v.Pair = bestPair
	}
	if s.CalendarBusy && !fromPreferred && v.Availability == Available {
		v.Pair = Pair{Busy, InAMeeting}
	}
	if s.OOF.IsOutOfOffice {
		switch v.Pair {
		case Pair{Available, Available}:
			v.Activity = OutOfOffice
		case Pair{Offline, Offline}:
			v.Activity = OutOfOffice
		}
	}
	return v
}

// effective is the session's pair at now, after the idle fade of an Available
// app session or idle connection session.
func (se *Session) effective(now time.Time) Pair {
	if !se.Kind.fades() || se.Pair != (Pair{Available, Available}) {
		return se.Pair
	}
	idle := now.Sub(se.RefreshedAt)
	switch {
	case idle >= 2*IdleTimeout:
		return Pair{Away, Away}
	case idle >= IdleTimeout:
		return Pair{Available, AvailableInactive}
	default:
		return se.Pair
	}
}

// beats reports whether session a (showing pa) wins the aggregation over
// session b (showing pb): higher rank first, then an active Available over an
// inactive one, then the most recent refresh, then the lower id.
func beats(pa Pair, a *Session, pb Pair, b *Session) bool {
	if ra, rb := rank(pa.Availability), rank(pb.Availability); ra != rb {
		return ra > rb
	}
	if ia, ib := pa.Activity == AvailableInactive, pb.Activity == AvailableInactive; ia != ib {
		return ib
	}
	if !a.RefreshedAt.Equal(b.RefreshedAt) {
		return a.RefreshedAt.After(b.RefreshedAt)
	}
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.ID < b.ID
}

// NextChange returns the first instant after now at which the visible
// presence of s may change by itself (a fade, an expiry), and false when it
// never will. The view is constant on [now, next).
func (s *State) NextChange(now time.Time) (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for i := range s.Sessions {
		se := &s.Sessions[i]
		consider(se.ExpiresAt)
		if se.Kind.fades() && se.Pair == (Pair{Available, Available}) {
			consider(se.RefreshedAt.Add(IdleTimeout))
			consider(se.RefreshedAt.Add(2 * IdleTimeout))
		}
	}
	if s.Preferred != nil {
		consider(s.Preferred.ExpiresAt)
	}
	if s.Status != nil && s.Status.Expiry != nil {
		consider(s.Status.Expiry.At)
	}
	s.Work.nextChange(now, consider)
	return next, !next.IsZero()
}

// prune drops what can no longer be visible at or after now: expired
// sessions, an expired preferred presence, an expired status message.
func (s *State) prune(now time.Time) {
	live := s.Sessions[:0]
	for _, se := range s.Sessions {
		if now.Before(se.ExpiresAt) {
			live = append(live, se)
		}
	}
	clear(s.Sessions[len(live):])
	s.Sessions = live
	if len(s.Sessions) == 0 {
		s.Sessions = nil
	}
	if s.Preferred != nil && !now.Before(s.Preferred.ExpiresAt) {
		s.Preferred = nil
	}
	if s.Status != nil && s.Status.Expiry != nil && !now.Before(s.Status.Expiry.At) {
		s.Status = nil
	}
	if s.Work != nil {
		s.Work.prune(now)
		s.tidyWork()
	}
}
