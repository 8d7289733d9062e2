package presence

import (
	"context"
	"slices"
	"time"
)

// The kinds of session a client connection holds (/presenced/connect). A
// connection's session aggregates exactly as a Teams client's; whether the
// person is idle is part of its kind, so that the stored encoding (kind,
// id, pair, refreshed, expires) needs nothing new.
const (
	// ConnectionSession is held by a connected device whose person is
	// active: its pair shows as requested.
	ConnectionSession SessionKind = iota + 2
	// IdleConnectionSession is held by a connected device whose person went
	// idle at RefreshedAt: an Available one fades as Teams does, to
	// Available/AvailableInactive after IdleTimeout and to Away/Away after
	// twice that.
	IdleConnectionSession
)

// String names the kind, for metrics and logs.
func (k SessionKind) String() string {
	switch k {
	case AppSession:
		return "app"
	case ClientSession:
		return "client"
	case ConnectionSession:
		return "connection"
	case IdleConnectionSession:
		return "connection_idle"
	default:
		return "unknown"
	}
}

// fades reports whether an Available session of kind k fades with the time
// since its RefreshedAt.
func (k SessionKind) fades() bool { return k == AppSession || k == IdleConnectionSession }

// IsConnection reports whether k is held by a client connection.
func (k SessionKind) IsConnection() bool {
	return k == ConnectionSession || k == IdleConnectionSession
}

// MaxDeviceIDLength bounds a device id, the id of a connection's session.
const MaxDeviceIDLength = 64

// ValidDeviceID reports whether id may name a device: 1 to 64 characters
// from A-Z, a-z, 0-9 and "._:-".
func ValidDeviceID(id string) bool {
	if id == "" || len(id) > MaxDeviceIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

// ConnectionPairs are the pairs a connected client may show: the pairs a
// Teams client shows (PresenceUnknown is not one a device can claim).
func ConnectionPairs() []Pair {
	var out []Pair
	for _, p := range ClientPairs() {
		if p.Availability != PresenceUnknown {
			out = append(out, p)
		}
	}
	return out
}

// CanonicalConnectionPair matches availability and activity
// case-insensitively against ConnectionPairs.
func CanonicalConnectionPair(availability, activity string) (Pair, bool) {
	return canonicalPair(availability, activity, ConnectionPairs())
}

// errNoConnection is the error of a command on a device whose session is
// gone (its lease ran out).
func errNoConnection(device string) error {
	return Errorf(CodeNotFound, "The connection session '%s' doesn't exist.", device)
}

func validDevice(device string) error {
	if !ValidDeviceID(device) {
		return Errorf(CodeInvalidArgument, "A device id of 1 to %d characters from A-Z, a-z, 0-9 and '._:-' is required.", MaxDeviceIDLength)
	}
	return nil
}

func validLease(lease time.Duration) error {
	if lease <= 0 {
		return Errorf(CodeInvalidArgument, msgDurationRange)
	}
	return nil
}

// connection returns the index of device's live connection session, or -1.
func (s *State) connection(device string, now time.Time) int {
	for _, k := range [...]SessionKind{ConnectionSession, IdleConnectionSession} {
		i, found := slices.BinarySearchFunc(s.Sessions, Session{Kind: k, ID: device}, compareSession)
		if found && now.Before(s.Sessions[i].ExpiresAt) {
			return i
		}
	}
	return -1
}

// replaceConnection stores se in place of the session at i (-1 for none),
// keeping the (Kind, ID) order when the kind changed.
func (s *State) replaceConnection(i int, se Session) {
	if i >= 0 {
		if s.Sessions[i].Kind == se.Kind {
			s.Sessions[i] = se
			return
		}
		s.Sessions = slices.Delete(s.Sessions, i, i+1)
	}
	s.putSession(se)
}

// HoldConnection opens or resumes a device's connection session: it takes
// the lease (ExpiresAt = now + Lease). A session the device still has (its
// connection closed less than a grace window ago, or is being replaced)
// is resumed as it is, so that nothing visible changes; Pair, when set,
// is then applied as SetConnectionState would. A new session shows Pair,
// or Available/Available.
type HoldConnection struct {
	Device string
	// Pair is the state the client announced, nil for none.
	Pair  *Pair
	Lease time.Duration
	// Holder names the process taking the session (Session.Holder), empty
	// when no registry of holders is used.
	Holder string
	// From, when set, makes the hold a holder's re-hold of a session it
	// held as From: a live session that another holder (neither From nor
	// Holder) holds now is left to it, and Moved is set.
	From string
	// Idle makes a session this hold creates an idle one (its fade starts
	// now); a resumed session keeps its kind.
	Idle bool
	// Resumed is set by Apply: whether the device's session was still
	// there (the result of the run the store kept); Moved, whether it was
	// left to another holder.
	Resumed, Moved bool
	pair           Pair
}

// Validate implements Command.
func (c *HoldConnection) Validate(*Env) error {
	if err := validDevice(c.Device); err != nil {
		return err
	}
	if err := validHolder(c.Holder, true); err != nil {
		return err
	}
	if err := validHolder(c.From, true); err != nil {
		return err
	}
	c.pair = Pair{Available, Available}
	if c.Pair != nil {
		p, ok := CanonicalConnectionPair(c.Pair.Availability, c.Pair.Activity)
		if !ok {
			return Errorf(CodeInvalidArgument, msgPairUnsupported)
		}
		c.pair = p
	}
	return validLease(c.Lease)
}

// Apply implements Command.
func (c *HoldConnection) Apply(s *State, now time.Time) error {
	i := s.connection(c.Device, now)
	c.Resumed, c.Moved = i >= 0, false
	if i < 0 {
		kind := ConnectionSession
		if c.Idle {
			kind = IdleConnectionSession
		}
		s.putSession(Session{ID: c.Device, Kind: kind, Pair: c.pair, RefreshedAt: now, ExpiresAt: addClamped(now, c.Lease), Holder: c.Holder})
		return nil
	}
	se := s.Sessions[i]
	if h := se.Holder; c.From != "" && h != "" && h != c.From && h != c.Holder {
		c.Moved = true
		return nil
	}
	if c.Pair != nil && se.Pair != c.pair {
		se.Pair, se.RefreshedAt = c.pair, now
	}
	se.ExpiresAt, se.Holder = addClamped(now, c.Lease), c.Holder
	s.replaceConnection(i, se)
	return nil
}

// SetConnectionState changes the pair a device's session shows; the
// session keeps being idle or active. It also renews the lease.
type SetConnectionState struct {
	Device       string
	Availability string
	Activity     string
	Lease        time.Duration
	pair         Pair
}

// Validate implements Command.
func (c *SetConnectionState) Validate(*Env) error {
	if err := validDevice(c.Device); err != nil {
		return err
	}
	p, ok := CanonicalConnectionPair(c.Availability, c.Activity)
	if !ok {
		return Errorf(CodeInvalidArgument, msgPairUnsupported)
	}
	c.pair = p
	return validLease(c.Lease)
}

// Apply implements Command.
func (c *SetConnectionState) Apply(s *State, now time.Time) error {
	i := s.connection(c.Device, now)
	if i < 0 {
		return errNoConnection(c.Device)
	}
	se := s.Sessions[i]
	if se.Pair != c.pair {
		se.Pair, se.RefreshedAt = c.pair, now
	}
	se.ExpiresAt = addClamped(now, c.Lease)
	s.replaceConnection(i, se)
	return nil
}

// SetConnectionIdle says the device's person went idle (Idle) or came back
// (!Idle). Going idle starts the fade at now; saying it again keeps the
// first instant. Coming back shows the session's pair again at once. It
// also renews the lease.
type SetConnectionIdle struct {
	Device string
	Idle   bool
	Lease  time.Duration
}

// Validate implements Command.
func (c *SetConnectionIdle) Validate(*Env) error {
	if err := validDevice(c.Device); err != nil {
		return err
	}
	return validLease(c.Lease)
}

// Apply implements Command.
func (c *SetConnectionIdle) Apply(s *State, now time.Time) error {
	i := s.connection(c.Device, now)
	if i < 0 {
		return errNoConnection(c.Device)
	}
	se := s.Sessions[i]
	kind := ConnectionSession
	if c.Idle {
		kind = IdleConnectionSession
	}
	if se.Kind != kind {
		se.Kind, se.RefreshedAt = kind, now
	}
	se.ExpiresAt = addClamped(now, c.Lease)
	s.replaceConnection(i, se)
	return nil
}

// RenewConnection extends the lease of a device's session to Until, never
// shortening it; nothing visible changes. A session already gone is
// NotFound: the holder must hold it anew. With a Holder, a session that
// names another holder, or none, is left as it is: it was taken over or
// released since.
type RenewConnection struct {
	Device string
	Until  time.Time
	Holder string
}

// Validate implements Command.
func (c *RenewConnection) Validate(*Env) error {
	if err := validDevice(c.Device); err != nil {
		return err
	}
	return validHolder(c.Holder, true)
}

// Apply implements Command.
func (c *RenewConnection) Apply(s *State, now time.Time) error {
	i := s.connection(c.Device, now)
	if i < 0 {
		return errNoConnection(c.Device)
	}
	if c.Holder != "" && s.Sessions[i].Holder != c.Holder {
		return nil
	}
	if c.Until.After(s.Sessions[i].ExpiresAt) {
		s.Sessions[i].ExpiresAt = c.Until
	}
	return nil
}

// ReleaseConnection says the device's connection closed or died: its
// session stays for Grace, then ends unless a connection of the device
// holds it again. Releasing a session already gone is no error. With a
// Holder, a session another holder took over is left as it is; a
// released session has no holder. A session that names no holder but
// has a lease longer than Grace left was held under a record and lost its
// holder's name (a node of an older version wrote it): it is released.
type ReleaseConnection struct {
	Device string
	Grace  time.Duration
	Holder string
}

// Validate implements Command.
func (c *ReleaseConnection) Validate(*Env) error {
	if err := validDevice(c.Device); err != nil {
		return err
	}
	if err := validHolder(c.Holder, true); err != nil {
		return err
	}
	if c.Grace < 0 {
		return Errorf(CodeInvalidArgument, msgDurationRange)
	}
	return nil
}

// Apply implements Command.
func (c *ReleaseConnection) Apply(s *State, now time.Time) error {
	i := s.connection(c.Device, now)
	if i < 0 {
		return nil
	}
	if h := s.Sessions[i].Holder; c.Holder != "" && h != c.Holder && (h != "" || !s.Sessions[i].ExpiresAt.After(now.Add(c.Grace))) {
		return nil
	}
	s.Sessions[i].ExpiresAt, s.Sessions[i].Holder = now.Add(c.Grace), ""
	return nil
}

// DropHolder ends the device's session now if Holder holds it: the holder
// was found dead (its record in the registry expired), and the session
// did not move to another holder since. Anything else is left as it is.
type DropHolder struct {
	Device string
	Holder string
}

// Validate implements Command.
func (c *DropHolder) Validate(*Env) error {
	if err := validDevice(c.Device); err != nil {
		return err
	}
	return validHolder(c.Holder, false)
}

// Apply implements Command.
func (c *DropHolder) Apply(s *State, now time.Time) error {
	if i := s.connection(c.Device, now); i >= 0 && s.Sessions[i].Holder == c.Holder {
		s.Sessions[i].ExpiresAt, s.Sessions[i].Holder = now, ""
	}
	return nil
}

// MaxHolderLength bounds a holder's name (Session.Holder).
const MaxHolderLength = 128

func validHolder(h string, mayBeEmpty bool) error {
	if (h == "" && !mayBeEmpty) || len(h) > MaxHolderLength {
		return Errorf(CodeInvalidArgument, "A holder of 1 to %d bytes is required.", MaxHolderLength)
	}
	return nil
}

// HeldSession names one connection session: its user and its device.
type HeldSession struct {
	Key    Key
	Device string
}

// Holders is a registry of the processes holding connection sessions,
// shared by every process of one store (redisstore's), so that the
// sessions of a process that died are ended by another one: each holder
// keeps a record that it renews, and the sessions it holds are listed
// under it. Instants are on the service clock. Implementations are safe
// for concurrent use.
type Holders interface {
	// Register records holder as alive until until.
	Register(ctx context.Context, holder string, until time.Time) error
	// Renew extends holder's record to until. It reports false when the
	// record is gone or claimed: another process found the holder dead
	// and ends (or ended) its sessions.
	Renew(ctx context.Context, holder string, until time.Time) (alive bool, err error)
	// Add lists sessions under holder; Remove unlists them.
	Add(ctx context.Context, holder string, held ...HeldSession) error
	Remove(ctx context.Context, holder string, held ...HeldSession) error
	// Claim takes up to limit holders whose record expired at now (or whose
	// earlier claim did), marks them dead and claims them until until, and
	// returns them with the sessions listed under them.
	Claim(ctx context.Context, now, until time.Time, limit int) ([]ClaimedHolder, error)
	// Forget deletes a holder's record and list, once its sessions were
	// ended or released.
	Forget(ctx context.Context, holder string) error
}

// HolderAdvances carries the test clock's advances between the processes
// sharing a registry of holders. An advance moves the service clock for
// every process at once, and with it past every record's expiry; the
// process that moves the clock extends its own record, and asks every
// other live holder, through this, to extend its own before the clock
// moves. A holder that does not answer (a dead or stalled process) is
// left to the sweep that follows the advance.
type HolderAdvances interface {
	// Announce asks every holder but self whose record has not run out at
	// now (and is not claimed) to extend its record and its sessions as an
	// advance to until needs, and waits for their answers, at most wait.
	// It returns the holders that did not answer.
	Announce(ctx context.Context, now, until time.Time, self string, wait time.Duration) (missing []string, err error)
	// Listen calls extend for each advance another process announces,
	// until ctx is done; extend returns the holder it extended ("" for
	// none), which answers the announcement.
	Listen(ctx context.Context, extend func(ctx context.Context, until time.Time) (holder string))
}

// ClaimedHolder is a holder found dead and the sessions listed under it.
type ClaimedHolder struct {
	Holder string
	Held   []HeldSession
}
