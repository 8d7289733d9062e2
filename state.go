package presence

import (
	"context"
	"slices"
	"time"
)

// SessionKind tells an application's session (setPresence) from a simulated
// Teams-client session (the test hook).
type SessionKind uint8

// The kinds of session.
const (
	// AppSession is owned by the application whose id it carries; it fades.
	AppSession SessionKind = iota
	// ClientSession stands for a Teams client; it never fades.
	ClientSession
)

// Pair is an (availability, activity) pair in canonical PascalCase.
type Pair struct {
	Availability string `json:"availability"`
	Activity     string `json:"activity"`
}

// Session is one independent source of presence for a user.
type Session struct {
	// ID is the owning application's id for an AppSession, or the client's
	// opaque id for a ClientSession.
	ID   string      `json:"id"`
	Kind SessionKind `json:"kind,omitempty"`
	// Pair is the pair as requested; the effective pair fades with time.
	Pair        Pair      `json:"pair"`
	RefreshedAt time.Time `json:"refreshedAt"`
	ExpiresAt   time.Time `json:"expiresAt"`
	// Holder names the process holding a connection's session when the
	// nodes share a registry of holders (see Holders): a holder found dead
	// has its sessions ended (DropHolder). Empty otherwise; never visible.
	Holder string `json:"holder,omitempty"`
}

// Preferred is the user-preferred presence, which overrides every session
// while at least one session is live.
type Preferred struct {
	Pair      Pair      `json:"pair"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// StatusMessage is a user's status note.
type StatusMessage struct {
	Content     string    `json:"content"`
	ContentType string    `json:"contentType"`
	PublishedAt time.Time `json:"publishedAt"`
	// Expiry is nil when the message never expires.
	Expiry *Expiry `json:"expiry,omitempty"`
}

// Expiry is a status message's expiry: the local date-time and zone as sent
// (returned as stored) and the instant they name.
type Expiry struct {
	DateTime string    `json:"dateTime"`
	TimeZone string    `json:"timeZone"`
	At       time.Time `json:"at"`
}

// OutOfOfficeSettings is the out-of-office overlay (mailbox driven in Graph, a test
// hook here).
type OutOfOfficeSettings struct {
	IsOutOfOffice bool    `json:"isOutOfOffice"`
	Message       *string `json:"message"`
}

// State is everything stored for one user. The visible presence is derived
// from it at a given instant by View; it is never stored as truth.
type State struct {
	// Sessions are the user's sessions, possibly including expired ones not
	// yet pruned; ordered by (Kind, ID).
	Sessions  []Session           `json:"sessions,omitempty"`
	Preferred *Preferred          `json:"preferred,omitempty"`
	Status    *StatusMessage      `json:"status,omitempty"`
	OOF       OutOfOfficeSettings `json:"oof"`
	// CalendarBusy is the "in a meeting" overlay.
	CalendarBusy bool `json:"calendarBusy,omitempty"`
	// PresenceDisabled marks a user not enabled for presence
	// (PresenceUnknown). The zero value is enabled.
	PresenceDisabled bool `json:"presenceDisabled,omitempty"`
	// Work is the user's work location: its manual and automatic layers
	// and its work plan; nil when none.
	Work *WorkState `json:"work,omitempty"`
	// Seq is the version of the visible presence as of SeqAt; View adds the
	// changes the clock made since.
	Seq   uint64    `json:"seq,omitempty"`
	SeqAt time.Time `json:"seqAt"`
	// Due is the next instant at which the visible presence may change by
	// itself; zero when it never will. Stores index users by it.
	Due time.Time `json:"due"`
	// Outbox holds the changes of a watched user's visible pair that not
	// every subscriber has received yet. They are written with the change
	// itself, so an acknowledged change cannot lose its notifications.
	Outbox []Notice `json:"outbox,omitempty"`
}

// Notice is one change of a user's visible availability and activity, kept
// in the user's outbox until it is delivered.
type Notice struct {
	Seq  uint64    `json:"seq"`
	At   time.Time `json:"at"`
	Pair Pair      `json:"pair"`
	// Work is the work location shown with the change; the zero value
	// stands for NoWorkLocation.
	Work WorkLocation `json:"work"`
}

// Clone returns a deep copy of s, so a copy can be changed without touching
// the original.
func (s State) Clone() State {
	c := s
	c.Sessions = slices.Clone(s.Sessions)
	c.Outbox = slices.Clone(s.Outbox)
	c.Work = s.Work.Clone()
	if s.Preferred != nil {
		p := *s.Preferred
		c.Preferred = &p
	}
	if s.Status != nil {
		m := *s.Status
		if m.Expiry != nil {
			e := *m.Expiry
			m.Expiry = &e
		}
		c.Status = &m
	}
	if s.OOF.Message != nil {
		msg := *s.OOF.Message
		c.OOF.Message = &msg
	}
	return c
}

// IsZero reports whether s is the state of a user never written to.
func (s State) IsZero() bool {
	return len(s.Sessions) == 0 && s.Preferred == nil && s.Status == nil &&
		!s.OOF.IsOutOfOffice && s.OOF.Message == nil && !s.CalendarBusy &&
		!s.PresenceDisabled && s.Seq == 0 && s.SeqAt.IsZero() && s.Due.IsZero() && len(s.Outbox) == 0 && s.Work == nil
}

// Key names one user in one tenant. Both ids are lower-case canonical GUIDs.
type Key struct {
	Tenant string
	User   string
}

// String returns the key as "{tenant}:{user}".
func (k Key) String() string { return k.Tenant + ":" + k.User }

// Store keeps the State of every user. Implementations must be safe for
// concurrent use.
type Store interface {
	// Get returns the states of users in tenant, in order; a user never
	// written to has the zero State.
	Get(ctx context.Context, tenant string, users []string) ([]State, error)
	// Visit calls fn with the state of each of users in tenant, in order,
	// as Get would return it, without making copies: the *State is lent
	// for the duration of that call of fn, which must neither keep nor
	// change it or anything it points to. It is how bulk reads avoid
	// allocating per user.
	Visit(ctx context.Context, tenant string, users []string, fn func(i int, s *State)) error
	// Update atomically applies fn to a copy of the user's state and stores
	// the result durably before returning. If fn returns an error nothing is
	// written and the error is returned as is. fn must be pure: a store may
	// run it more than once.
	Update(ctx context.Context, key Key, fn func(*State) error) (before, after State, err error)
	// Due returns up to limit users whose State.Due is not zero and not after
	// now, earliest first, each at most once per call. It does not consume
	// them: a user comes back on every call until an Update moves its Due
	// past now or clears it (the scheduler's Tick always does). limit <= 0
	// returns none.
	Due(ctx context.Context, now time.Time, limit int) ([]Key, error)
	// Scan calls fn with every user's state, in no particular order, until
	// fn returns an error. It is for start-up work such as finding outboxes
	// left by a crash, not for serving requests.
	Scan(ctx context.Context, fn func(Key, State) error) error
	// Close flushes and releases the store.
	Close() error
}

// Clock tells the time. Nothing in the domain reads a clock: the Service asks
// one and passes the instant down.
type Clock interface {
	Now() time.Time
}
