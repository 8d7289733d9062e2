package presence

import (
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"time"
)

// PlanTime is a dateTimeTimeZone of the work plan, as sent: a local date and
// time without offset, and a Windows or IANA zone name.
type PlanTime struct {
	DateTime string `json:"dateTime"`
	TimeZone string `json:"timeZone"`
}

// The recurrence range types of patternedRecurrence that the work plan takes.
const (
	RangeNoEnd    = "noEnd"
	RangeEndDate  = "endDate"
	RangeNumbered = "numbered"
)

// PlanRecurrence is a workPlanRecurrence: a weekly pattern of segments, each
// from Start's time of day to End's, on the days of the pattern, in Start's
// time zone.
type PlanRecurrence struct {
	ID      string   `json:"id"`
	Start   PlanTime `json:"start"`
	End     PlanTime `json:"end"`
	Type    string   `json:"workLocationType"`
	PlaceID string   `json:"placeId,omitempty"`
	// Days has bit d set for each time.Weekday d of the pattern.
	Days           uint8        `json:"days"`
	Interval       int          `json:"interval"`
	FirstDayOfWeek time.Weekday `json:"firstDayOfWeek"`
	RangeType      string       `json:"rangeType"`
	// StartDate and EndDate are yyyy-mm-dd; EndDate only for endDate.
	StartDate     string `json:"startDate"`
	EndDate       string `json:"endDate,omitempty"`
	Count         int    `json:"count,omitempty"`
	RangeTimeZone string `json:"rangeTimeZone,omitempty"`
}

// TimeOffDetails are the details of a time-off occurrence.
type TimeOffDetails struct {
	Subject  string `json:"subject"`
	IsAllDay bool   `json:"isAllDay"`
}

// PlanOccurrence is a workPlanOccurrence stored in the plan: time off, or an
// exception to a recurrence (setCurrentLocation). It wins over the
// recurrences for its period.
type PlanOccurrence struct {
	ID           string          `json:"id"`
	RecurrenceID string          `json:"recurrenceId,omitempty"`
	Start        PlanTime        `json:"start"`
	End          PlanTime        `json:"end"`
	StartAt      time.Time       `json:"startAt"`
	EndAt        time.Time       `json:"endAt"`
	Type         string          `json:"workLocationType"`
	PlaceID      string          `json:"placeId,omitempty"`
	TimeOff      *TimeOffDetails `json:"timeOffDetails,omitempty"`
}

// Segment is one period of the expanded plan: an occurrence, or one day's
// instance of a recurrence.
type Segment struct {
	// ID is the occurrence's id, or for an instance of a recurrence its id
	// and the local date ("{recurrenceId}_{yyyymmdd}").
	ID           string
	RecurrenceID string
	Start, End   time.Time
	// Zone is the zone name the segment's times are written in.
	Zone    string
	Type    string
	PlaceID string
	TimeOff *TimeOffDetails
	// Explicit reports an occurrence rather than a recurrence's instance.
	Explicit bool
}

// Limits of a work plan.
const (
	MaxRecurrences = 50
	MaxOccurrences = 500
	MaxInterval    = 99
	// MaxViewSpan is the longest window occurrencesView expands.
	MaxViewSpan = 366 * 24 * time.Hour
)

// civil day numbers: days since 1970-01-01 of a calendar date.
func dayNumber(y int, m time.Month, d int) int64 {
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}

func dayOf(t time.Time, loc *time.Location) int64 {
	y, m, d := t.In(loc).Date()
	return dayNumber(y, m, d)
}

func dateOf(day int64) (int, time.Month, int) {
	return time.Unix(day*86400, 0).UTC().Date()
}

// weekday of a day number (1970-01-01 was a Thursday).
func weekdayOf(day int64) time.Weekday {
	return time.Weekday(((day % 7) + 7 + 4) % 7)
}

// compiled is a recurrence resolved for evaluation.
type compiled struct {
	r                  *PlanRecurrence
	startLoc, endLoc   *time.Location
	sh, sm, ss, sns    int
	eh, em, es, ens    int
	endOffset          int64 // days from the start's date to the end's
	startDay, endDay   int64 // range; endDay -1 without an end date
	weekZero           int64 // first day of the week of startDay
	perWeek            int64
	daysBeforeStartDay int64 // pattern days in week zero before startDay
}

func parseDate(s string) (int64, bool) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return 0, false
	}
	return dayNumber(t.Date()), true
}

// compile resolves r; it fails on what Validate would refuse.
func compile(r *PlanRecurrence) (*compiled, error) {
	c := &compiled{r: r, endDay: -1}
	c.startLoc, c.endLoc = loadZone(r.Start.TimeZone), loadZone(r.End.TimeZone)
	if c.startLoc == nil {
		return nil, Errorf(CodeInvalidArgument, "The provided [TimeZone] '%s' is not a known time zone.", r.Start.TimeZone)
	}
	if c.endLoc == nil {
		return nil, Errorf(CodeInvalidArgument, "The provided [TimeZone] '%s' is not a known time zone.", r.End.TimeZone)
	}
	st, ok := ParseLocalDateTime(r.Start.DateTime, c.startLoc)
	if !ok {
		return nil, Errorf(CodeInvalidArgument, "The provided [DateTime] '%s' is not a valid date and time without offset.", r.Start.DateTime)
	}
	en, ok := ParseLocalDateTime(r.End.DateTime, c.endLoc)
	if !ok {
		return nil, Errorf(CodeInvalidArgument, "The provided [DateTime] '%s' is not a valid date and time without offset.", r.End.DateTime)
	}
	// The pattern repeats the wall-clock times as written, so they are
	// kept as written (cs, ce), not as the instants of the first day: a
	// time in that day's daylight-saving gap (02:00 on a spring-forward
	// day) reads as another hour there. In one zone the end is judged on
	// the wall clock too; across two zones, on the first day's instants.
	cs, _ := ParseLocalDateTime(r.Start.DateTime, time.UTC)
	ce, _ := ParseLocalDateTime(r.End.DateTime, time.UTC)
	a, b := st, en
	if c.startLoc == c.endLoc {
		a, b = cs, ce
	}
	if !b.After(a) || b.Sub(a) > 24*time.Hour {
		return nil, Errorf(CodeInvalidArgument, "The end of a work plan recurrence must be after its start, by at most 24 hours.")
	}
	c.sh, c.sm, c.ss = cs.Clock()
	c.sns = cs.Nanosecond()
	c.eh, c.em, c.es = ce.Clock()
	c.ens = ce.Nanosecond()
	c.endOffset = dayNumber(ce.Date()) - dayNumber(cs.Date())
	if r.Days == 0 || r.Days&0x80 != 0 {
		return nil, Errorf(CodeInvalidArgument, "The recurrence pattern needs at least one of 'daysOfWeek'.")
	}
	if r.Interval < 1 || r.Interval > MaxInterval {
		return nil, Errorf(CodeInvalidArgument, "The recurrence pattern's 'interval' must be from 1 to %d.", MaxInterval)
	}
	if c.startDay, ok = parseDate(r.StartDate); !ok {
		return nil, Errorf(CodeInvalidArgument, "The recurrence range's 'startDate' '%s' is not a date (yyyy-MM-dd).", r.StartDate)
	}
	switch r.RangeType {
	case RangeNoEnd:
	case RangeEndDate:
		if c.endDay, ok = parseDate(r.EndDate); !ok || c.endDay < c.startDay {
			return nil, Errorf(CodeInvalidArgument, "The recurrence range's 'endDate' '%s' must be a date (yyyy-MM-dd) not before its 'startDate'.", r.EndDate)
		}
	case RangeNumbered:
		if r.Count < 1 {
			return nil, Errorf(CodeInvalidArgument, "The recurrence range's 'numberOfOccurrences' must be at least 1.")
		}
	default:
		return nil, Errorf(CodeInvalidArgument, "The recurrence range type '%s' is not supported; valid values are 'noEnd', 'endDate', 'numbered'.", r.RangeType)
	}
	c.weekZero = c.startDay - int64((weekdayOf(c.startDay)-r.FirstDayOfWeek+7)%7)
	c.perWeek = int64(bits.OnesCount8(r.Days))
	for d := c.weekZero; d < c.startDay; d++ {
		if r.Days&(1<<weekdayOf(d)) != 0 {
			c.daysBeforeStartDay++
		}
	}
	return c, nil
}

// instanceOn reports whether the recurrence has an instance on day.
func (c *compiled) instanceOn(day int64) bool {
	if day < c.startDay || (c.endDay >= 0 && day > c.endDay) || c.r.Days&(1<<weekdayOf(day)) == 0 {
		return false
	}
	week := (day - c.weekZero) / 7
	if week%int64(c.r.Interval) != 0 {
		return false
	}
	if c.r.RangeType == RangeNumbered {
		return c.index(day) < int64(c.r.Count)
	}
	return true
}

// index is how many instances come before day (an instance day).
func (c *compiled) index(day int64) int64 {
	week := (day - c.weekZero) / 7
	interval := int64(c.r.Interval)
	activeWeeks := (week + interval - 1) / interval // active weeks before this one
	n := activeWeeks*c.perWeek - c.daysBeforeStartDay
	for d := c.weekZero + week*7; d < day; d++ {
		if c.r.Days&(1<<weekdayOf(d)) != 0 {
			n++
		}
	}
	return n
}

// span is the instance of day.
func (c *compiled) span(day int64) (time.Time, time.Time) {
	y, m, d := dateOf(day)
	st := time.Date(y, m, d, c.sh, c.sm, c.ss, c.sns, c.startLoc)
	y, m, d = dateOf(day + c.endOffset)
	en := time.Date(y, m, d, c.eh, c.em, c.es, c.ens, c.endLoc)
	return st.UTC(), en.UTC()
}

func (c *compiled) segment(day int64, st, en time.Time) Segment {
	y, m, d := dateOf(day)
	return Segment{
		ID: fmt.Sprintf("%s_%04d%02d%02d", c.r.ID, y, m, d), RecurrenceID: c.r.ID,
		Start: st, End: en, Zone: c.r.Start.TimeZone, Type: c.r.Type, PlaceID: c.r.PlaceID,
	}
}

func (w *WorkState) compiled() []*compiled {
	out := make([]*compiled, 0, len(w.Recurrences))
	for i := range w.Recurrences {
		if c, err := compile(&w.Recurrences[i]); err == nil {
			out = append(out, c)
		}
	}
	return out
}

func occurrenceSegment(o *PlanOccurrence) Segment {
	return Segment{ID: o.ID, RecurrenceID: o.RecurrenceID, Start: o.StartAt, End: o.EndAt, Zone: o.Start.TimeZone,
		Type: o.Type, PlaceID: o.PlaceID, TimeOff: o.TimeOff, Explicit: true}
}

// overlapsOccurrence reports whether [st, en) overlaps an occurrence.
func (w *WorkState) overlapsOccurrence(st, en time.Time) bool {
	for i := range w.Occurrences {
		o := &w.Occurrences[i]
		if o.StartAt.Before(en) && st.Before(o.EndAt) {
			return true
		}
	}
	return false
}

// morePrecise orders candidate segments covering one instant: a segment
// with a place beats one without; then an occurrence beats an instance;
// then the later start; then the lower id.
func morePrecise(a, b Segment) bool {
	if (a.PlaceID != "") != (b.PlaceID != "") {
		return a.PlaceID != ""
	}
	if a.Explicit != b.Explicit {
		return a.Explicit
	}
	if !a.Start.Equal(b.Start) {
		return a.Start.After(b.Start)
	}
	return a.ID < b.ID
}

// segmentAt returns the plan's segment at now: the most precise occurrence
// covering now, else the most precise instance of a recurrence covering now
// whose period no occurrence overlaps.
func (w *WorkState) segmentAt(now time.Time) (Segment, bool) {
	if w == nil {
		return Segment{}, false
	}
	var best Segment
	found := false
	for i := range w.Occurrences {
		o := &w.Occurrences[i]
		if !now.Before(o.StartAt) && now.Before(o.EndAt) {
			if s := occurrenceSegment(o); !found || morePrecise(s, best) {
				best, found = s, true
			}
		}
	}
	if found {
		return best, true
	}
	for _, c := range w.compiled() {
		today := dayOf(now, c.startLoc)
		for day := today - c.endOffset - 1; day <= today; day++ {
			if !c.instanceOn(day) {
				continue
			}
			st, en := c.span(day)
			if now.Before(st) || !now.Before(en) || w.overlapsOccurrence(st, en) {
				continue
			}
			if s := c.segment(day, st, en); !found || morePrecise(s, best) {
				best, found = s, true
			}
		}
	}
	return best, found
}

// nextBoundary is the first start or end of a segment after now.
func (w *WorkState) nextBoundary(now time.Time) (time.Time, bool) {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for i := range w.Occurrences {
		consider(w.Occurrences[i].StartAt)
		consider(w.Occurrences[i].EndAt)
	}
	for _, c := range w.compiled() {
		today := dayOf(now, c.startLoc)
		last := today + 7*int64(c.r.Interval) + 8
		if c.endDay >= 0 && last > c.endDay {
			last = c.endDay
		}
		for day := today - c.endOffset - 1; day <= last; day++ {
			if !c.instanceOn(day) {
				if c.r.RangeType == RangeNumbered && day > c.startDay && c.r.Days&(1<<weekdayOf(day)) != 0 &&
					(day-c.weekZero)/7%int64(c.r.Interval) == 0 {
					break // the numbered range is used up
				}
				continue
			}
			st, en := c.span(day)
			consider(st)
			consider(en)
			if st.After(now) {
				break // later days start later still
			}
		}
	}
	return next, !next.IsZero()
}

// View expands the plan over [from, to): every occurrence overlapping it,
// and every instance of a recurrence overlapping it that no occurrence
// overlaps, by start; at most limit of them.
func (w *WorkState) View(from, to time.Time, limit int) []Segment {
	var out []Segment
	if w == nil {
		return out
	}
	for i := range w.Occurrences {
		o := &w.Occurrences[i]
		if o.StartAt.Before(to) && from.Before(o.EndAt) {
			out = append(out, occurrenceSegment(o))
		}
	}
	for _, c := range w.compiled() {
		first := dayOf(from, c.startLoc) - c.endOffset - 1
		last := dayOf(to, c.startLoc) + 1
		if first < c.startDay {
			first = c.startDay
		}
		if c.endDay >= 0 && last > c.endDay {
			last = c.endDay
		}
		for day := first; day <= last; day++ {
			if !c.instanceOn(day) {
				continue
			}
			st, en := c.span(day)
			if st.Before(to) && from.Before(en) && !w.overlapsOccurrence(st, en) {
				out = append(out, c.segment(day, st, en))
			}
		}
	}
	slices.SortFunc(out, func(a, b Segment) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}
