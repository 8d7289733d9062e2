package presence

import (
	"slices"
	"strings"
	"time"
)

// Command is one change to a user's presence. Validate checks what can be
// checked without the user's state; Apply changes the state at now and must
// be pure, because a store may run it twice.
type Command interface {
	// Validate checks the command's own arguments.
	Validate(env *Env) error
	// Apply changes s at now.
	Apply(s *State, now time.Time) error
}

// Env is what validation may consult besides the command.
type Env struct {
	Zones *TimeZones
}

// Messages of the validation errors Graph is known to send.
const (
	msgSessionInvalid  = "The provided [SessionId] is invalid."
	msgPairUnsupported = "The provided [Availability/Activity] combination is not supported."
	msgDurationRange   = "The provided [ExpirationDuration] is out of range."
	msgSessionNotFound = "The presence session doesn't exist."
)

// pairError is the answer to a pair an action does not accept: Graph's
// message, then the pairs the action accepts.
func pairError(action string, allowed []Pair) error {
	return Errorf(CodeInvalidArgument, "%s %s accepts %s.", msgPairUnsupported, action, pairList(allowed))
}

// pairList writes pairs as "A/B, C/D and E/F".
func pairList(pairs []Pair) string {
	var b strings.Builder
	for i, p := range pairs {
		switch {
		case i == 0:
		case i == len(pairs)-1:
			b.WriteString(" and ")
		default:
			b.WriteString(", ")
		}
		b.WriteString(p.Availability + "/" + p.Activity)
	}
	return b.String()
}

// SetPresence creates or refreshes the calling application's session.
type SetPresence struct {
	// CallerApp is the app id of the caller, which SessionID must equal.
	CallerApp    string
	SessionID    string
	Availability string
	Activity     string
	// Expiration is nil for the default of five minutes.
	Expiration *time.Duration
	pair       Pair
}

// Validate implements Command.
func (c *SetPresence) Validate(*Env) error {
	if !sameGUID(c.SessionID, c.CallerApp) {
		return Errorf(CodeInvalidArgument, msgSessionInvalid)
	}
	p, ok := canonicalPair(c.Availability, c.Activity, SessionPairs())
	if !ok {
		return pairError("setPresence", SessionPairs())
	}
	c.pair = p
	if c.Expiration != nil && (*c.Expiration < MinSessionExpiry || *c.Expiration > MaxSessionExpiry) {
		return Errorf(CodeInvalidArgument, msgDurationRange)
	}
	return nil
}

// Apply implements Command.
func (c *SetPresence) Apply(s *State, now time.Time) error {
	d := DefaultSessionExpiry
	if c.Expiration != nil {
		d = *c.Expiration
	}
	s.putSession(Session{ID: strings.ToLower(c.CallerApp), Kind: AppSession, Pair: c.pair, RefreshedAt: now, ExpiresAt: now.Add(d)})
	return nil
}

// ClearPresence ends the calling application's session.
type ClearPresence struct {
	CallerApp string
	SessionID string
}

// Validate implements Command.
func (c *ClearPresence) Validate(*Env) error {
	if !sameGUID(c.SessionID, c.CallerApp) {
		return Errorf(CodeInvalidArgument, msgSessionInvalid)
	}
	return nil
}

// Apply implements Command.
func (c *ClearPresence) Apply(s *State, now time.Time) error {
	if !s.removeSession(AppSession, strings.ToLower(c.CallerApp), now) {
		return Errorf(CodeNotFound, msgSessionNotFound)
	}
	return nil
}

// SetPreferred sets the user-preferred presence.
type SetPreferred struct {
	Availability string
	Activity     string
	// Expiration is nil for the default: a day for Busy and DoNotDisturb,
	// seven days otherwise.
	Expiration *time.Duration
	pair       Pair
}

// Validate implements Command.
func (c *SetPreferred) Validate(*Env) error {
	p, ok := canonicalPair(c.Availability, c.Activity, PreferredPairs())
	if !ok {
		return pairError("setUserPreferredPresence", PreferredPairs())
	}
	c.pair = p
	if c.Expiration != nil && *c.Expiration <= 0 {
		return Errorf(CodeInvalidArgument, "%s setUserPreferredPresence takes a positive duration such as PT8H (default P1D for Busy and DoNotDisturb, P7D otherwise).", msgDurationRange)
	}
	return nil
}

// Apply implements Command.
func (c *SetPreferred) Apply(s *State, now time.Time) error {
	d := 7 * 24 * time.Hour
	if c.pair.Availability == Busy || c.pair.Availability == DoNotDisturb {
		d = 24 * time.Hour
	}
	if c.Expiration != nil {
		d = *c.Expiration
	}
	s.Preferred = &Preferred{Pair: c.pair, ExpiresAt: addClamped(now, d)}
	return nil
}

// ClearPreferred removes the user-preferred presence; it is not an error when
// none is set.
type ClearPreferred struct{}

// Validate implements Command.
func (ClearPreferred) Validate(*Env) error { return nil }

// Apply implements Command.
func (ClearPreferred) Apply(s *State, _ time.Time) error {
	s.Preferred = nil
	return nil
}

// SetStatusMessage replaces the user's status message; empty content clears
// it.
type SetStatusMessage struct {
	Content     string
	ContentType string
	// ExpiryDateTime and ExpiryTimeZone are the optional expiry as sent;
	// both empty for a message that never expires.
	ExpiryDateTime string
	ExpiryTimeZone string
	HasExpiry      bool
	expiry         *Expiry
	contentType    string
}

// Validate implements Command.
func (c *SetStatusMessage) Validate(env *Env) error {
	switch {
	case c.ContentType == "" || strings.EqualFold(c.ContentType, "text"):
		c.contentType = "text"
	default:
		return Errorf(CodeInvalidArgument, "The provided [ContentType] '%s' is not supported; only 'text' is.", c.ContentType)
	}
	if !c.HasExpiry {
		return nil
	}
	loc, ok := env.Zones.Load(c.ExpiryTimeZone)
	if !ok {
		return Errorf(CodeInvalidArgument, "The provided [TimeZone] '%s' is not a known time zone: use a Windows name such as 'Pacific Standard Time' or an IANA name such as 'Europe/Berlin' or 'UTC'.", c.ExpiryTimeZone)
	}
	at, ok := ParseLocalDateTime(c.ExpiryDateTime, loc)
	if !ok {
		return Errorf(CodeInvalidArgument, "The provided [DateTime] '%s' is not a valid date and time without offset, such as 2026-12-01T17:00:00.", c.ExpiryDateTime)
	}
	c.expiry = &Expiry{DateTime: c.ExpiryDateTime, TimeZone: c.ExpiryTimeZone, At: at.UTC()}
	return nil
}

// Apply implements Command.
func (c *SetStatusMessage) Apply(s *State, now time.Time) error {
	if c.Content == "" {
		s.Status = nil
		return nil
	}
	m := &StatusMessage{Content: c.Content, ContentType: c.contentType, PublishedAt: now}
	if c.expiry != nil {
		e := *c.expiry
		m.Expiry = &e
	}
	s.Status = m
	return nil
}

// SetClientSession creates or refreshes a simulated Teams-client session.
type SetClientSession struct {
	ID           string
	Availability string
	Activity     string
	Expiration   time.Duration
	pair         Pair
}

// Validate implements Command.
func (c *SetClientSession) Validate(*Env) error {
	if c.ID == "" || len(c.ID) > 256 {
		return Errorf(CodeInvalidArgument, "A client session id of 1 to 256 characters is required.")
	}
	p, ok := canonicalPair(c.Availability, c.Activity, ClientPairs())
	if !ok {
		return pairError("A client session", ClientPairs())
	}
	c.pair = p
	if c.Expiration <= 0 {
		return Errorf(CodeInvalidArgument, "%s A client session takes a positive duration such as P8D.", msgDurationRange)
	}
	return nil
}

// Apply implements Command.
func (c *SetClientSession) Apply(s *State, now time.Time) error {
	s.putSession(Session{ID: c.ID, Kind: ClientSession, Pair: c.pair, RefreshedAt: now, ExpiresAt: addClamped(now, c.Expiration)})
	return nil
}

// EndClientSession ends a simulated Teams-client session.
type EndClientSession struct{ ID string }

// Validate implements Command.
func (EndClientSession) Validate(*Env) error { return nil }

// Apply implements Command.
func (c EndClientSession) Apply(s *State, now time.Time) error {
	if !s.removeSession(ClientSession, c.ID, now) {
		return Errorf(CodeNotFound, "The client session doesn't exist.")
	}
	return nil
}

// SetOutOfOffice sets the out-of-office overlay.
type SetOutOfOffice struct{ OutOfOfficeSettings }

// Validate implements Command.
func (SetOutOfOffice) Validate(*Env) error { return nil }

// Apply implements Command.
func (c SetOutOfOffice) Apply(s *State, _ time.Time) error {
	s.OOF = c.OutOfOfficeSettings
	if c.Message != nil {
		m := *c.Message
		s.OOF.Message = &m
	}
	return nil
}

// SetCalendarBusy sets the "in a meeting" overlay.
type SetCalendarBusy struct{ Active bool }

// Validate implements Command.
func (SetCalendarBusy) Validate(*Env) error { return nil }

// Apply implements Command.
func (c SetCalendarBusy) Apply(s *State, _ time.Time) error {
	s.CalendarBusy = c.Active
	return nil
}

// SetPresenceEnabled enables or disables presence for the user; a disabled
// user reads as PresenceUnknown.
type SetPresenceEnabled struct{ Enabled bool }

// Validate implements Command.
func (SetPresenceEnabled) Validate(*Env) error { return nil }

// Apply implements Command.
func (c SetPresenceEnabled) Apply(s *State, _ time.Time) error {
	s.PresenceDisabled = !c.Enabled
	return nil
}

// Tick changes nothing: applying it lets the clock's changes that fell due be
// recorded and announced. The scheduler sends it.
type Tick struct{}

// Validate implements Command.
func (Tick) Validate(*Env) error { return nil }

// Apply implements Command.
func (Tick) Apply(*State, time.Time) error { return nil }

// putSession inserts or replaces a session, keeping (Kind, ID) order.
func (s *State) putSession(se Session) {
	i, found := slices.BinarySearchFunc(s.Sessions, se, compareSession)
	if found {
		s.Sessions[i] = se
		return
	}
	s.Sessions = slices.Insert(s.Sessions, i, se)
}

// removeSession removes a live session and reports whether there was one.
func (s *State) removeSession(kind SessionKind, id string, now time.Time) bool {
	i, found := slices.BinarySearchFunc(s.Sessions, Session{Kind: kind, ID: id}, compareSession)
	if !found || !now.Before(s.Sessions[i].ExpiresAt) {
		return false
	}
	s.Sessions = slices.Delete(s.Sessions, i, i+1)
	if len(s.Sessions) == 0 {
		s.Sessions = nil
	}
	return true
}

func compareSession(a, b Session) int {
	if a.Kind != b.Kind {
		return int(a.Kind) - int(b.Kind)
	}
	return strings.Compare(a.ID, b.ID)
}

// addClamped adds d to t, saturating instead of overflowing.
func addClamped(t time.Time, d time.Duration) time.Time {
	const maxAhead = 100 * 365 * 24 * time.Hour
	if d > maxAhead {
		d = maxAhead
	}
	return t.Add(d)
}

// sameGUID compares two GUIDs case-insensitively, tolerating braces.
func sameGUID(a, b string) bool {
	ca, ok := CanonicalGUID(a)
	if !ok {
		return false
	}
	cb, ok := CanonicalGUID(b)
	return ok && ca == cb
}

// CanonicalGUID returns the lower-case 8-4-4-4-12 form of a GUID (braces
// allowed around it) and whether s is one.
func CanonicalGUID(s string) (string, bool) {
	if len(s) == 38 && s[0] == '{' && s[37] == '}' {
		s = s[1:37]
	}
	if len(s) != 36 {
		return "", false
	}
	if isCanonicalGUID(s) {
		return s, true // the common case, without a copy
	}
	var b [36]byte
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
		default:
			switch {
			case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			case c >= 'A' && c <= 'F':
				c += 'a' - 'A'
			default:
				return "", false
			}
		}
		b[i] = c
	}
	return string(b[:]), true
}

// isCanonicalGUID reports whether s is a GUID in lower-case hyphenated form.
func isCanonicalGUID(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	// Bulk reads check 650 of these per request: a straight loop per group,
	// with unsigned compares, is several times faster than a switch on the
	// position.
	for _, g := range [...]string{s[:8], s[9:13], s[14:18], s[19:23], s[24:]} {
		for i := 0; i < len(g); i++ {
			if c := g[i]; c-'0' > 9 && c-'a' > 5 {
				return false
			}
		}
	}
	return true
}
