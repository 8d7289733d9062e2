package presence

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// The values of Graph's workLocationType and workLocationSource enums.
const (
	LocationUnspecified = "unspecified"
	LocationOffice      = "office"
	LocationRemote      = "remote"
	LocationTimeOff     = "timeOff"

	SourceNone      = "none"
	SourceManual    = "manual"
	SourceAutomatic = "automatic"
	SourceScheduled = "scheduled"
)

// WorkLocation is the aggregated work location of a user (Graph's
// userWorkLocation): which type wins, from which layer, and the place when
// one is known (empty for null).
type WorkLocation struct {
	Type    string `json:"workLocationType"`
	Source  string `json:"source"`
	PlaceID string `json:"placeId,omitempty"`
}

// NoWorkLocation is the work location of a user with no signal at all.
var noWorkLocation = WorkLocation{Type: LocationUnspecified, Source: SourceNone}

// NoWorkLocation returns the work location of a user with no signal.
func NoWorkLocation() WorkLocation { return noWorkLocation }

// LocationSignal is one manual or automatic work-location signal. It lasts
// until the end of the day it was set in, in the user's time zone.
type LocationSignal struct {
	Type    string    `json:"type"`
	PlaceID string    `json:"placeId,omitempty"`
	Until   time.Time `json:"until"`
}

// WorkState is a user's work location: the manual and automatic layers and
// the work plan that feeds the scheduled layer.
type WorkState struct {
	Manual    *LocationSignal `json:"manual,omitempty"`
	Automatic *LocationSignal `json:"automatic,omitempty"`
	// TimeZone is the user's time zone for day boundaries, as sent (a
	// Windows or IANA name); empty means the zone of the plan's first
	// recurrence, else UTC.
	TimeZone    string           `json:"timeZone,omitempty"`
	Recurrences []PlanRecurrence `json:"recurrences,omitempty"`
	Occurrences []PlanOccurrence `json:"occurrences,omitempty"`
	// MaxShared is the setting maxSharedWorkLocationDetails; empty for
	// the default.
	MaxShared string `json:"maxSharedWorkLocationDetails,omitempty"`
}

// Clone returns a deep copy of w.
func (w *WorkState) Clone() *WorkState {
	if w == nil {
		return nil
	}
	c := *w
	if w.Manual != nil {
		m := *w.Manual
		c.Manual = &m
	}
	if w.Automatic != nil {
		a := *w.Automatic
		c.Automatic = &a
	}
	c.Recurrences = slices.Clone(w.Recurrences)
	c.Occurrences = slices.Clone(w.Occurrences)
	for i := range c.Occurrences {
		if t := c.Occurrences[i].TimeOff; t != nil {
			cp := *t
			c.Occurrences[i].TimeOff = &cp
		}
	}
	return &c
}

// empty reports whether w holds nothing.
func (w *WorkState) empty() bool {
	return w.Manual == nil && w.Automatic == nil && w.TimeZone == "" && len(w.Recurrences) == 0 && len(w.Occurrences) == 0 && w.MaxShared == ""
}

// zoneNames resolves zone names; built once, on first use, and read-only
// after that.
var zoneNames = sync.OnceValue(NewTimeZones)

// loadZone resolves a Windows or IANA zone name; nil when unknown.
func loadZone(name string) *time.Location {
	loc, ok := zoneNames().Load(name)
	if !ok {
		return nil
	}
	return loc
}

// zone returns the user's time zone for day boundaries.
func (w *WorkState) zone() *time.Location {
	if w != nil {
		if w.TimeZone != "" {
			if l := loadZone(w.TimeZone); l != nil {
				return l
			}
		}
		if len(w.Recurrences) > 0 {
			if l := loadZone(w.Recurrences[0].Start.TimeZone); l != nil {
				return l
			}
		}
	}
	return time.UTC
}

// endOfDay is the first instant of the day after the one now falls in, in loc.
func endOfDay(now time.Time, loc *time.Location) time.Time {
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, loc).UTC()
}

// startOfDay is the first instant of the day now falls in, in loc.
func startOfDay(now time.Time, loc *time.Location) time.Time {
	y, m, d := now.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc).UTC()
}

// workLocationAt aggregates the layers at now: manual > automatic >
// scheduled; no signal is unspecified from none.
func (w *WorkState) workLocationAt(now time.Time) WorkLocation {
	if w == nil {
		return noWorkLocation
	}
	if m := w.Manual; m != nil && now.Before(m.Until) {
		return WorkLocation{Type: m.Type, Source: SourceManual, PlaceID: m.PlaceID}
	}
	if a := w.Automatic; a != nil && now.Before(a.Until) {
		return WorkLocation{Type: a.Type, Source: SourceAutomatic, PlaceID: a.PlaceID}
	}
	if seg, ok := w.segmentAt(now); ok {
		return WorkLocation{Type: seg.Type, Source: SourceScheduled, PlaceID: seg.PlaceID}
	}
	return noWorkLocation
}

// nextChange is the first instant after now at which the work location may
// change by itself: a signal's day ends, or a plan segment starts or ends.
func (w *WorkState) nextChange(now time.Time, consider func(time.Time)) {
	if w == nil {
		return
	}
	if w.Manual != nil {
		consider(w.Manual.Until)
	}
	if w.Automatic != nil {
		consider(w.Automatic.Until)
	}
	if t, ok := w.nextBoundary(now); ok {
		consider(t)
	}
}

// prune drops the signals whose day is over, and the occurrences that ended
// more than PlanHistory ago.
func (w *WorkState) prune(now time.Time) {
	if w.Manual != nil && !now.Before(w.Manual.Until) {
		w.Manual = nil
	}
	if w.Automatic != nil && !now.Before(w.Automatic.Until) {
		w.Automatic = nil
	}
	horizon := now.Add(-PlanHistory)
	w.Occurrences = slices.DeleteFunc(w.Occurrences, func(o PlanOccurrence) bool { return o.EndAt.Before(horizon) })
	if len(w.Occurrences) == 0 {
		w.Occurrences = nil
	}
}

// PlanHistory is how long an occurrence stays in the plan after it ended.
const PlanHistory = 90 * 24 * time.Hour

// canonicalEnum matches v case-insensitively against values.
func canonicalEnum(v string, values ...string) (string, bool) {
	for _, c := range values {
		if strings.EqualFold(c, v) {
			return c, true
		}
	}
	return "", false
}

// SetLocation sets the manual or the automatic work-location signal
// (setManualLocation, setAutomaticLocation); it lasts until the end of the
// day, in the user's time zone.
type SetLocation struct {
	// Automatic selects the automatic layer; false is the manual one.
	Automatic bool
	Type      string
	// HasType reports whether workLocationType was sent.
	HasType bool
	PlaceID string
	typ     string
}

// Validate implements Command.
func (c *SetLocation) Validate(*Env) error {
	// A location is set to one of the three places a person can be;
	// "unspecified" is only what no signal reads as.
	if !c.HasType {
		return Errorf(CodeBadRequest, "The parameter 'workLocationType' is required; valid values are 'office', 'remote', 'timeOff'.")
	}
	t, ok := canonicalEnum(c.Type, LocationOffice, LocationRemote, LocationTimeOff)
	if !ok {
		return Errorf(CodeBadRequest, "The value '%s' is not valid for 'workLocationType'; valid values are 'office', 'remote', 'timeOff'.", c.Type)
	}
	c.typ = t
	return nil
}

// Apply implements Command.
func (c *SetLocation) Apply(s *State, now time.Time) error {
	if s.Work == nil {
		s.Work = &WorkState{}
	}
	sig := &LocationSignal{Type: c.typ, PlaceID: c.PlaceID, Until: endOfDay(now, s.Work.zone())}
	if !c.Automatic {
		s.Work.Manual = sig
		return nil
	}
	// Within the automatic layer the more precise signal wins: the same
	// type without a place does not erase the place known for today.
	if old := s.Work.Automatic; old != nil && now.Before(old.Until) && old.Type == sig.Type && sig.PlaceID == "" && old.PlaceID != "" {
		sig.PlaceID = old.PlaceID
	}
	s.Work.Automatic = sig
	return nil
}

// ClearLocation clears the automatic layer, and with Manual the manual one
// too (clearAutomaticLocation, clearLocation). It is not an error when
// nothing is set.
type ClearLocation struct{ Manual bool }

// Validate implements Command.
func (ClearLocation) Validate(*Env) error { return nil }

// Apply implements Command.
func (c ClearLocation) Apply(s *State, _ time.Time) error {
	if s.Work == nil {
		return nil
	}
	s.Work.Automatic = nil
	if c.Manual {
		s.Work.Manual = nil
	}
	if s.Work.empty() {
		s.Work = nil
	}
	return nil
}

// noticeWork is w as a Notice keeps it: the zero value for no signal.
func noticeWork(w WorkLocation) WorkLocation {
	if w == noWorkLocation {
		return WorkLocation{}
	}
	return w
}

// WorkLocation is the work location a Notice shows.
func (n *Notice) WorkLocation() WorkLocation {
	if n.Work == (WorkLocation{}) {
		return noWorkLocation
	}
	return n.Work
}
