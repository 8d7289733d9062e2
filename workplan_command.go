package presence

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// The values of workLocationUpdateScope.
const (
	ScopeCurrentSegment = "currentSegment"
	ScopeCurrentDay     = "currentDay"
)

// ValidateRecurrence checks a recurrence and puts its enums in canonical
// form. Time-off can't recur.
func ValidateRecurrence(r *PlanRecurrence) error {
	t, ok := canonicalEnum(r.Type, LocationUnspecified, LocationOffice, LocationRemote)
	if !ok {
		return Errorf(CodeInvalidArgument, "The value '%s' is not valid for a recurrence's 'workLocationType'; valid values are 'unspecified', 'office', 'remote'.", r.Type)
	}
	r.Type = t
	if r.Interval == 0 {
		r.Interval = 1
	}
	if r.StartDate == "" {
		if len(r.Start.DateTime) >= 10 {
			r.StartDate = r.Start.DateTime[:10]
		}
	}
	_, err := compile(r)
	return err
}

// ValidateOccurrence checks an occurrence, resolves its instants and puts
// its enums in canonical form.
func ValidateOccurrence(o *PlanOccurrence) error {
	t, ok := canonicalEnum(o.Type, LocationUnspecified, LocationOffice, LocationRemote, LocationTimeOff)
	if !ok {
		return Errorf(CodeInvalidArgument, "The value '%s' is not valid for 'workLocationType'; valid values are 'unspecified', 'office', 'remote', 'timeOff'.", o.Type)
	}
	o.Type = t
	at := func(p PlanTime) (time.Time, error) {
		loc := loadZone(p.TimeZone)
		if loc == nil {
			return time.Time{}, Errorf(CodeInvalidArgument, "The provided [TimeZone] '%s' is not a known time zone.", p.TimeZone)
		}
		v, ok := ParseLocalDateTime(p.DateTime, loc)
		if !ok {
			return time.Time{}, Errorf(CodeInvalidArgument, "The provided [DateTime] '%s' is not a valid date and time without offset.", p.DateTime)
		}
		return v.UTC(), nil
	}
	var err error
	if o.StartAt, err = at(o.Start); err != nil {
		return err
	}
	if o.EndAt, err = at(o.End); err != nil {
		return err
	}
	if !o.EndAt.After(o.StartAt) {
		return Errorf(CodeInvalidArgument, "The end of a work plan occurrence must be after its start.")
	}
	if o.EndAt.Sub(o.StartAt) > MaxViewSpan {
		return Errorf(CodeInvalidArgument, "A work plan occurrence may last at most 366 days.")
	}
	if o.Type != LocationTimeOff {
		o.TimeOff = nil
	}
	return nil
}

// PutRecurrence creates a recurrence (Create) or replaces one whole (PUT).
type PutRecurrence struct {
	Recurrence PlanRecurrence
	// Create adds a new recurrence with a new id; otherwise Recurrence.ID
	// names the one to replace.
	Create bool
}

// Validate implements Command.
func (c *PutRecurrence) Validate(*Env) error {
	if c.Create {
		c.Recurrence.ID = NewGUID()
	}
	return ValidateRecurrence(&c.Recurrence)
}

// Apply implements Command.
func (c *PutRecurrence) Apply(s *State, _ time.Time) error {
	w := s.work()
	if c.Create {
		if len(w.Recurrences) >= MaxRecurrences {
			return Errorf(CodeInvalidArgument, "A work plan holds at most %d recurrences.", MaxRecurrences)
		}
		w.Recurrences = append(w.Recurrences, c.Recurrence)
		return nil
	}
	i := slices.IndexFunc(w.Recurrences, func(r PlanRecurrence) bool { return r.ID == c.Recurrence.ID })
	if i < 0 {
		s.tidyWork()
		return errNoRecurrence(c.Recurrence.ID)
	}
	w.Recurrences[i] = c.Recurrence
	return nil
}

func errNoRecurrence(id string) error {
	return Errorf(CodeNotFound, "The work plan recurrence '%s' doesn't exist.", id)
}

func errNoOccurrence(id string) error {
	return Errorf(CodeNotFound, "The work plan occurrence '%s' doesn't exist.", id)
}

// DeleteRecurrence removes a recurrence.
type DeleteRecurrence struct{ ID string }

// Validate implements Command.
func (DeleteRecurrence) Validate(*Env) error { return nil }

// Apply implements Command.
func (c DeleteRecurrence) Apply(s *State, _ time.Time) error {
	if s.Work == nil {
		return errNoRecurrence(c.ID)
	}
	n := len(s.Work.Recurrences)
	s.Work.Recurrences = slices.DeleteFunc(s.Work.Recurrences, func(r PlanRecurrence) bool { return r.ID == c.ID })
	if len(s.Work.Recurrences) == n {
		return errNoRecurrence(c.ID)
	}
	s.tidyWork()
	return nil
}

// PutOccurrence creates a time-off occurrence (Create) or replaces an
// occurrence whole (PUT).
type PutOccurrence struct {
	Occurrence PlanOccurrence
	Create     bool
}

// Validate implements Command.
func (c *PutOccurrence) Validate(*Env) error {
	if c.Create {
		c.Occurrence.ID = NewGUID()
		c.Occurrence.RecurrenceID = ""
	}
	if err := ValidateOccurrence(&c.Occurrence); err != nil {
		return err
	}
	if c.Create && c.Occurrence.Type != LocationTimeOff {
		return Errorf(CodeInvalidArgument, "Only time-off occurrences can be created; 'workLocationType' must be 'timeOff'.")
	}
	return nil
}

// Apply implements Command.
func (c *PutOccurrence) Apply(s *State, now time.Time) error {
	w := s.work()
	if c.Occurrence.EndAt.Before(now.Add(-PlanHistory)) {
		s.tidyWork()
		return Errorf(CodeInvalidArgument, "An occurrence that ended more than 90 days ago can't be kept in the work plan.")
	}
	if c.Create {
		if len(w.Occurrences) >= MaxOccurrences {
			return Errorf(CodeInvalidArgument, "A work plan holds at most %d occurrences.", MaxOccurrences)
		}
		w.Occurrences = append(w.Occurrences, c.Occurrence)
		return nil
	}
	i := slices.IndexFunc(w.Occurrences, func(o PlanOccurrence) bool { return o.ID == c.Occurrence.ID })
	if i < 0 {
		s.tidyWork()
		return errNoOccurrence(c.Occurrence.ID)
	}
	c.Occurrence.RecurrenceID = w.Occurrences[i].RecurrenceID
	w.Occurrences[i] = c.Occurrence
	return nil
}

// DeleteOccurrence removes a time-off occurrence.
type DeleteOccurrence struct{ ID string }

// Validate implements Command.
func (DeleteOccurrence) Validate(*Env) error { return nil }

// Apply implements Command.
func (c DeleteOccurrence) Apply(s *State, _ time.Time) error {
	if s.Work == nil {
		return errNoOccurrence(c.ID)
	}
	i := slices.IndexFunc(s.Work.Occurrences, func(o PlanOccurrence) bool { return o.ID == c.ID })
	if i < 0 {
		return errNoOccurrence(c.ID)
	}
	if s.Work.Occurrences[i].Type != LocationTimeOff {
		return Errorf(CodeInvalidArgument, "Only time-off occurrences can be deleted.")
	}
	s.Work.Occurrences = slices.Delete(s.Work.Occurrences, i, i+1)
	s.tidyWork()
	return nil
}

// SetCurrentLocation changes the work location of the current segment of the
// plan, or of every segment of the current day (the user's time zone), by
// writing occurrences over them. With no segment to change it writes one
// from now to the end of the day.
type SetCurrentLocation struct {
	Scope   string
	Type    string
	PlaceID string
	// ids are the ids of the occurrences it may create, made by Validate
	// so that Apply stays pure.
	ids []string
}

// Validate implements Command.
func (c *SetCurrentLocation) Validate(*Env) error {
	scope, ok := canonicalEnum(c.Scope, ScopeCurrentSegment, ScopeCurrentDay)
	if !ok {
		return Errorf(CodeInvalidArgument, "The value '%s' is not valid for 'updateScope'; valid values are 'currentSegment', 'currentDay'.", c.Scope)
	}
	c.Scope = scope
	t, ok := canonicalEnum(c.Type, LocationOffice, LocationRemote)
	if !ok {
		return Errorf(CodeInvalidArgument, "The value '%s' is not valid for 'workLocationType'; valid values are 'office', 'remote'.", c.Type)
	}
	c.Type = t
	c.ids = make([]string, 8)
	for i := range c.ids {
		c.ids[i] = NewGUID()
	}
	return nil
}

// Apply implements Command.
func (c *SetCurrentLocation) Apply(s *State, now time.Time) error {
	w := s.work()
	var targets []Segment
	if c.Scope == ScopeCurrentSegment {
		if seg, ok := w.segmentAt(now); ok {
			targets = append(targets, seg)
		}
	} else {
		loc := w.zone()
		for _, seg := range w.View(startOfDay(now, loc), endOfDay(now, loc), 0) {
			if seg.Type != LocationTimeOff && seg.End.After(now) {
				targets = append(targets, seg)
			}
		}
	}
	if len(targets) == 0 {
		loc := w.zone()
		targets = append(targets, Segment{Start: now, End: endOfDay(now, loc), Zone: "UTC"})
	}
	next := 0
	for _, seg := range targets {
		if seg.Explicit {
			i := slices.IndexFunc(w.Occurrences, func(o PlanOccurrence) bool { return o.ID == seg.ID })
			w.Occurrences[i].Type, w.Occurrences[i].PlaceID, w.Occurrences[i].TimeOff = c.Type, c.PlaceID, nil
			continue
		}
		if len(w.Occurrences) >= MaxOccurrences || next >= len(c.ids) {
			return Errorf(CodeInvalidArgument, "A work plan holds at most %d occurrences.", MaxOccurrences)
		}
		w.Occurrences = append(w.Occurrences, PlanOccurrence{
			ID: c.ids[next], RecurrenceID: seg.RecurrenceID,
			Start: FormatPlanTime(seg.Start, seg.Zone), End: FormatPlanTime(seg.End, seg.Zone),
			StartAt: seg.Start, EndAt: seg.End, Type: c.Type, PlaceID: c.PlaceID,
		})
		next++
	}
	return nil
}

// planTimeOf writes an instant as a dateTimeTimeZone in the named zone (UTC
// when it is unknown).
func FormatPlanTime(t time.Time, zone string) PlanTime {
	loc := loadZone(zone)
	if loc == nil {
		loc, zone = time.UTC, "UTC"
	}
	return PlanTime{DateTime: t.In(loc).Format("2006-01-02T15:04:05.0000000"), TimeZone: zone}
}

// SetWorkPlan replaces the whole plan (the test hook). TimeZone, when not
// empty, becomes the user's time zone for day boundaries.
type SetWorkPlan struct {
	Recurrences []PlanRecurrence
	Occurrences []PlanOccurrence
	TimeZone    string
}

// Validate implements Command.
func (c *SetWorkPlan) Validate(*Env) error {
	if len(c.Recurrences) > MaxRecurrences || len(c.Occurrences) > MaxOccurrences {
		return Errorf(CodeInvalidArgument, "A work plan holds at most %d recurrences and %d occurrences.", MaxRecurrences, MaxOccurrences)
	}
	if c.TimeZone != "" && loadZone(c.TimeZone) == nil {
		return Errorf(CodeInvalidArgument, "The provided [TimeZone] '%s' is not a known time zone.", c.TimeZone)
	}
	seen := map[string]bool{}
	for i := range c.Recurrences {
		r := &c.Recurrences[i]
		if r.ID == "" {
			r.ID = NewGUID()
		}
		if seen[r.ID] {
			return Errorf(CodeInvalidArgument, "The id '%s' appears twice in the work plan.", r.ID)
		}
		seen[r.ID] = true
		if err := ValidateRecurrence(r); err != nil {
			return fmt.Errorf("recurrence %d: %w", i, err)
		}
	}
	for i := range c.Occurrences {
		o := &c.Occurrences[i]
		if o.ID == "" {
			o.ID = NewGUID()
		}
		if seen[o.ID] {
			return Errorf(CodeInvalidArgument, "The id '%s' appears twice in the work plan.", o.ID)
		}
		seen[o.ID] = true
		if err := ValidateOccurrence(o); err != nil {
			return fmt.Errorf("occurrence %d: %w", i, err)
		}
	}
	return nil
}

// Apply implements Command.
func (c *SetWorkPlan) Apply(s *State, _ time.Time) error {
	w := s.work()
	w.Recurrences = slices.Clone(c.Recurrences)
	w.Occurrences = slices.Clone(c.Occurrences)
	if c.TimeZone != "" {
		w.TimeZone = c.TimeZone
	}
	s.tidyWork()
	return nil
}

// work returns s.Work, creating it.
func (s *State) work() *WorkState {
	if s.Work == nil {
		s.Work = &WorkState{}
	}
	return s.Work
}

// tidyWork drops an empty WorkState.
func (s *State) tidyWork() {
	if s.Work != nil && s.Work.empty() {
		s.Work = nil
	}
}

// WorkPlan returns a copy of the stored work state of key (nil when none).
func (s *Service) WorkPlan(ctx context.Context, key Key) (*WorkState, error) {
	states, err := s.store.Get(ctx, key.Tenant, []string{key.User})
	if err != nil {
		return nil, fmt.Errorf("read work plan of %s: %w", key, err)
	}
	return states[0].Work.Clone(), nil
}

// Now returns the service clock's now.
func (s *Service) Now() time.Time { return s.clock.Now() }

// The values of maxWorkLocationDetails.
const (
	DetailsUnknown     = "unknown"
	DetailsNone        = "none"
	DetailsApproximate = "approximate"
	DetailsSpecific    = "specific"
)

// DefaultMaxShared is maxSharedWorkLocationDetails until a user sets it.
const DefaultMaxShared = DetailsSpecific

// MaxSharedDetails returns the user's maxSharedWorkLocationDetails.
func (w *WorkState) MaxSharedDetails() string {
	if w == nil || w.MaxShared == "" {
		return DefaultMaxShared
	}
	return w.MaxShared
}

// SetWorkSettings updates workHoursAndLocationsSetting (PATCH): the level
// of work-location detail shared with colleagues.
type SetWorkSettings struct{ MaxShared string }

// Validate implements Command.
func (c *SetWorkSettings) Validate(*Env) error {
	v, ok := canonicalEnum(c.MaxShared, DetailsUnknown, DetailsNone, DetailsApproximate, DetailsSpecific)
	if !ok {
		return Errorf(CodeInvalidArgument, "The value '%s' is not valid for 'maxSharedWorkLocationDetails'; valid values are 'unknown', 'none', 'approximate', 'specific'.", c.MaxShared)
	}
	c.MaxShared = v
	return nil
}

// Apply implements Command.
func (c *SetWorkSettings) Apply(s *State, _ time.Time) error {
	s.work().MaxShared = c.MaxShared
	return nil
}
