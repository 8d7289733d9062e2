package presence

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func mustZone(t testing.TB, name string) *time.Location {
	t.Helper()
	l := loadZone(name)
	if l == nil {
		t.Fatalf("zone %q", name)
	}
	return l
}

func weekdays(ds ...time.Weekday) uint8 {
	var b uint8
	for _, d := range ds {
		b |= 1 << d
	}
	return b
}

func officeMWF() PlanRecurrence {
	return PlanRecurrence{
		ID:    "r1",
		Start: PlanTime{"2026-03-02T09:00:00", "Pacific Standard Time"}, End: PlanTime{"2026-03-02T17:00:00", "Pacific Standard Time"},
		Type: "Office", PlaceID: "b1", Days: weekdays(time.Monday, time.Wednesday, time.Friday),
		RangeType: RangeNoEnd, StartDate: "2026-03-02",
	}
}

func TestWorkLocationLayers(t *testing.T) {
	la := mustZone(t, "America/Los_Angeles")
	r := officeMWF()
	if err := ValidateRecurrence(&r); err != nil {
		t.Fatal(err)
	}
	var s State
	mon10 := time.Date(2026, 3, 2, 10, 0, 0, 0, la)
	if got := s.ViewAt(mon10).WorkLocation; got != NoWorkLocation() {
		t.Fatalf("empty state: %+v", got)
	}
	s.Work = &WorkState{Recurrences: []PlanRecurrence{r}}
	want := WorkLocation{Type: LocationOffice, Source: SourceScheduled, PlaceID: "b1"}
	if got := s.ViewAt(mon10).WorkLocation; got != want {
		t.Fatalf("scheduled: %+v", got)
	}
	if got := s.ViewAt(mon10.Add(8 * time.Hour)).WorkLocation; got != NoWorkLocation() {
		t.Fatalf("after the segment: %+v", got)
	}
	if got, _ := s.NextChange(mon10); !got.Equal(time.Date(2026, 3, 2, 17, 0, 0, 0, la)) {
		t.Fatalf("next change %v", got)
	}
	auto := &SetLocation{Automatic: true, Type: "REMOTE", HasType: true}
	if err := auto.Validate(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Step(Key{}, &s, auto, mon10); err != nil {
		t.Fatal(err)
	}
	if got := s.ViewAt(mon10).WorkLocation; got != (WorkLocation{LocationRemote, SourceAutomatic, ""}) {
		t.Fatalf("automatic: %+v", got)
	}
	manual := &SetLocation{Type: "timeoff", HasType: true}
	if err := manual.Validate(nil); err != nil {
		t.Fatal(err)
	}
	seq := s.Seq
	if _, err := Step(Key{}, &s, manual, mon10); err != nil {
		t.Fatal(err)
	}
	if s.Seq <= seq {
		t.Fatalf("seq %d, want more than %d", s.Seq, seq)
	}
	if got := s.ViewAt(mon10).WorkLocation; got != (WorkLocation{LocationTimeOff, SourceManual, ""}) {
		t.Fatalf("manual: %+v", got)
	}
	// Both last until midnight in Los Angeles (the plan's zone).
	midnight := time.Date(2026, 3, 3, 0, 0, 0, 0, la)
	if got := s.ViewAt(midnight.Add(-time.Nanosecond)).WorkLocation.Source; got != SourceManual {
		t.Fatalf("before midnight: %v", got)
	}
	if got := s.ViewAt(midnight).WorkLocation; got != NoWorkLocation() {
		t.Fatalf("at midnight: %+v", got)
	}
	if _, err := Step(Key{}, &s, ClearLocation{Manual: false}, mon10); err != nil {
		t.Fatal(err)
	}
	if got := s.ViewAt(mon10).WorkLocation.Source; got != SourceManual {
		t.Fatalf("clearAutomatic left %v", got)
	}
	if _, err := Step(Key{}, &s, ClearLocation{Manual: true}, mon10); err != nil {
		t.Fatal(err)
	}
	if got := s.ViewAt(mon10).WorkLocation.Source; got != SourceScheduled {
		t.Fatalf("clearLocation left %v", got)
	}
	if s.ViewAt(mon10).Pair != (Pair{Offline, Offline}) {
		t.Fatalf("work location changed the pair")
	}
}

func TestSetLocationValidation(t *testing.T) {
	for _, c := range []SetLocation{{}, {Type: "home", HasType: true}, {Type: "", HasType: true}} {
		if err := c.Validate(nil); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

func TestNumberedAndEndDate(t *testing.T) {
	r := officeMWF()
	r.Start.TimeZone, r.End.TimeZone = "UTC", "UTC"
	r.RangeType, r.Count = RangeNumbered, 4
	if err := ValidateRecurrence(&r); err != nil {
		t.Fatal(err)
	}
	w := &WorkState{Recurrences: []PlanRecurrence{r}}
	got := w.View(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), 0)
	var ids []string
	for _, s := range got {
		ids = append(ids, s.ID)
	}
	if fmt.Sprint(ids) != "[r1_20260302 r1_20260304 r1_20260306 r1_20260309]" {
		t.Fatalf("numbered: %v", ids)
	}
	if next, ok := w.nextBoundary(time.Date(2026, 3, 9, 17, 0, 0, 0, time.UTC)); ok {
		t.Fatalf("boundary after the last instance: %v", next)
	}
}

func TestDSTSegment(t *testing.T) {
	// 2026-03-08 is the spring-forward Sunday in the United States: a
	// segment from 01:00 to 05:00 local lasts three hours.
	r := PlanRecurrence{ID: "r", Start: PlanTime{"2026-03-01T01:00:00", "Eastern Standard Time"},
		End: PlanTime{"2026-03-01T05:00:00", "Eastern Standard Time"}, Type: "remote",
		Days: weekdays(time.Sunday), RangeType: RangeNoEnd, StartDate: "2026-03-01"}
	if err := ValidateRecurrence(&r); err != nil {
		t.Fatal(err)
	}
	w := &WorkState{Recurrences: []PlanRecurrence{r}}
	segs := w.View(time.Date(2026, 3, 8, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 9, 0, 0, 0, 0, time.UTC), 0)
	if len(segs) != 1 || segs[0].End.Sub(segs[0].Start) != 3*time.Hour {
		t.Fatalf("segments %+v", segs)
	}
}

// TestDSTGapEnd: a recurrence whose first day is a spring-forward day and
// whose end (02:00) falls in that day's gap is valid, judged on the wall
// clock as the pattern repeats it, and gives 30-minute segments on the
// other days.
func TestDSTGapEnd(t *testing.T) {
	r := PlanRecurrence{ID: "r", Start: PlanTime{"2026-03-08T01:30:00", "Pacific Standard Time"},
		End: PlanTime{"2026-03-08T02:00:00", "Pacific Standard Time"}, Type: "office",
		Days: weekdays(time.Sunday), RangeType: RangeNoEnd, StartDate: "2026-03-08"}
	if err := ValidateRecurrence(&r); err != nil {
		t.Fatal(err)
	}
	w := &WorkState{Recurrences: []PlanRecurrence{r}}
	segs := w.View(time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 16, 12, 0, 0, 0, time.UTC), 0)
	if len(segs) != 1 || segs[0].End.Sub(segs[0].Start) != 30*time.Minute {
		t.Fatalf("segments %+v", segs)
	}
	// Across two zones the instants decide: an end before the start is refused.
	r.End = PlanTime{"2026-03-08T02:00:00", "Eastern Standard Time"} // 23:00 Pacific the day before
	if err := ValidateRecurrence(&r); err == nil {
		t.Fatal("an end three hours before the start was accepted")
	}
}

// bruteInstances expands r day by day from its start date, the plain way:
// each day at the wall-clock times written in the recurrence.
func bruteInstances(r PlanRecurrence, until time.Time) [][2]time.Time {
	sl, el := loadZone(r.Start.TimeZone), loadZone(r.End.TimeZone)
	st, _ := time.Parse("2006-01-02T15:04:05", r.Start.DateTime)
	en, _ := time.Parse("2006-01-02T15:04:05", r.End.DateTime)
	offset := int(en.Truncate(24*time.Hour).Sub(st.Truncate(24*time.Hour)).Hours()) / 24
	day, _ := time.Parse("2006-01-02", r.StartDate)
	weekStart := day
	for weekStart.Weekday() != r.FirstDayOfWeek {
		weekStart = weekStart.AddDate(0, 0, -1)
	}
	var end time.Time
	if r.RangeType == RangeEndDate {
		end, _ = time.Parse("2006-01-02", r.EndDate)
	}
	var out [][2]time.Time
	n := 0
	for ; ; day = day.AddDate(0, 0, 1) {
		if !end.IsZero() && day.After(end) || r.RangeType == RangeNumbered && n >= r.Count {
			return out
		}
		y, m, d := day.Date()
		a := time.Date(y, m, d, st.Hour(), st.Minute(), 0, 0, sl)
		if a.After(until) {
			return out
		}
		week := int(day.Sub(weekStart).Hours()) / 24 / 7
		if r.Days&(1<<day.Weekday()) == 0 || week%r.Interval != 0 {
			continue
		}
		n++
		b := time.Date(y, m, d+offset, en.Hour(), en.Minute(), 0, 0, el)
		out = append(out, [2]time.Time{a.UTC(), b.UTC()})
	}
}

func TestScheduledLayerMatchesBruteForce(t *testing.T) {
	zones := []string{"UTC", "Pacific Standard Time", "Europe/Berlin", "Australia/Lord_Howe", "Asia/Kathmandu"}
	base := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	rapid.Check(t, func(rt *rapid.T) {
		var w WorkState
		for i := range rapid.IntRange(0, 3).Draw(rt, "recurrences") {
			zone := rapid.SampledFrom(zones).Draw(rt, "zone")
			startDay := base.AddDate(0, 0, rapid.IntRange(0, 20).Draw(rt, "startDay"))
			from := rapid.IntRange(0, 95).Draw(rt, "from") * 15
			length := rapid.IntRange(1, 96).Draw(rt, "length") * 15
			st := startDay.Add(time.Duration(from) * time.Minute)
			en := st.Add(time.Duration(length) * time.Minute)
			r := PlanRecurrence{
				ID:    fmt.Sprintf("r%d", i),
				Start: PlanTime{st.Format("2006-01-02T15:04:05"), zone}, End: PlanTime{en.Format("2006-01-02T15:04:05"), zone},
				Type:           rapid.SampledFrom([]string{"office", "remote"}).Draw(rt, "type"),
				PlaceID:        rapid.SampledFrom([]string{"", "b1"}).Draw(rt, "place"),
				Days:           uint8(rapid.IntRange(1, 127).Draw(rt, "days")),
				Interval:       rapid.IntRange(1, 3).Draw(rt, "interval"),
				FirstDayOfWeek: time.Weekday(rapid.IntRange(0, 6).Draw(rt, "firstDay")),
				RangeType:      rapid.SampledFrom([]string{RangeNoEnd, RangeEndDate, RangeNumbered}).Draw(rt, "range"),
				StartDate:      startDay.Format("2006-01-02"),
			}
			r.EndDate = startDay.AddDate(0, 0, rapid.IntRange(0, 30).Draw(rt, "endAfter")).Format("2006-01-02")
			r.Count = rapid.IntRange(1, 12).Draw(rt, "count")
			if err := ValidateRecurrence(&r); err != nil {
				rt.Fatalf("valid recurrence refused: %v", err)
			}
			w.Recurrences = append(w.Recurrences, r)
		}
		for i := range rapid.IntRange(0, 2).Draw(rt, "occurrences") {
			st := base.Add(time.Duration(rapid.IntRange(0, 40*96).Draw(rt, "occStart")) * 15 * time.Minute)
			en := st.Add(time.Duration(rapid.IntRange(1, 200).Draw(rt, "occLen")) * 15 * time.Minute)
			o := PlanOccurrence{ID: fmt.Sprintf("o%d", i), Start: PlanTime{st.Format("2006-01-02T15:04:05"), "UTC"},
				End: PlanTime{en.Format("2006-01-02T15:04:05"), "UTC"}, Type: "timeOff"}
			if err := ValidateOccurrence(&o); err != nil {
				rt.Fatal(err)
			}
			w.Occurrences = append(w.Occurrences, o)
		}
		from := base.Add(time.Duration(rapid.IntRange(0, 30*24).Draw(rt, "window")) * time.Hour)
		to := from.Add(3 * 24 * time.Hour)
		var cands []Segment
		for _, r := range w.Recurrences {
			for _, iv := range bruteInstances(r, to) {
				cands = append(cands, Segment{ID: r.ID + "_" + iv[0].In(loadZone(r.Start.TimeZone)).Format("20060102"), Start: iv[0], End: iv[1], Type: r.Type, PlaceID: r.PlaceID})
			}
		}
		brute := func(t time.Time) WorkLocation {
			var best Segment
			found := false
			for i := range w.Occurrences {
				o := &w.Occurrences[i]
				if !t.Before(o.StartAt) && t.Before(o.EndAt) {
					if s := occurrenceSegment(o); !found || morePrecise(s, best) {
						best, found = s, true
					}
				}
			}
			if !found {
				for _, s := range cands {
					if !t.Before(s.Start) && t.Before(s.End) && !w.overlapsOccurrence(s.Start, s.End) {
						if !found || morePrecise(s, best) {
							best, found = s, true
						}
					}
				}
			}
			if !found {
				return NoWorkLocation()
			}
			return WorkLocation{best.Type, SourceScheduled, best.PlaceID}
		}
		prev := brute(from)
		for t := from.Add(time.Minute); t.Before(to); t = t.Add(time.Minute) {
			want := brute(t)
			got := w.workLocationAt(t)
			if got.Type != want.Type || got.PlaceID != want.PlaceID || got.Source != want.Source {
				rt.Fatalf("at %v: got %+v, brute force %+v", t, got, want)
			}
			if want != prev {
				p := t.Add(-time.Minute)
				if nb, ok := w.nextBoundary(p); !ok || nb.After(t) {
					rt.Fatalf("change at %v but nextBoundary(%v) = %v, %v", t, p, nb, ok)
				}
			}
			prev = want
		}
	})
}

// BenchmarkViewAtWorkPlan is the read of a user with a two-recurrence plan,
// a time-off occurrence and a manual location.
func BenchmarkViewAtWorkPlan(b *testing.B) {
	r1, r2 := officeMWF(), officeMWF()
	r2.ID, r2.Type, r2.PlaceID, r2.Days = "r2", "remote", "", weekdays(time.Tuesday, time.Thursday)
	if ValidateRecurrence(&r1) != nil || ValidateRecurrence(&r2) != nil {
		b.Fatal("invalid")
	}
	o := PlanOccurrence{ID: "o", Start: PlanTime{"2026-03-12T00:00:00", "UTC"}, End: PlanTime{"2026-03-13T00:00:00", "UTC"}, Type: "timeOff"}
	if ValidateOccurrence(&o) != nil {
		b.Fatal("invalid")
	}
	now := time.Date(2026, 3, 4, 18, 0, 0, 0, time.UTC)
	s := State{SeqAt: now, Work: &WorkState{Recurrences: []PlanRecurrence{r1, r2}, Occurrences: []PlanOccurrence{o},
		Manual: &LocationSignal{Type: "office", Until: now.Add(time.Hour)}}}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.ViewAt(now.Add(30 * time.Minute))
	}
}

// TestTimeZonesLoad: Windows names resolve in any letter case to their
// IANA zone, IANA names resolve whether or not a Windows name maps to
// them, and what is not a zone name (a path, an unknown name) does not.
func TestTimeZonesLoad(t *testing.T) {
	z := NewTimeZones()
	for name, want := range map[string]string{
		"Pacific Standard Time":   "America/Los_Angeles",
		"pacific STANDARD time":   "America/Los_Angeles",
		"W. Europe Standard Time": "Europe/Berlin",
		"America/Los_Angeles":     "America/Los_Angeles",
		"America/Vancouver":       "America/Vancouver",
		"utc":                     "Etc/UTC",
	} {
		loc, ok := z.Load(name)
		if !ok || loc.String() != want {
			t.Errorf("Load(%q) = %v, %v; want %s", name, loc, ok, want)
		}
	}
	// A zone read once is not read from the database again, whether a
	// Windows name maps to it or it is named as it is.
	for _, name := range []string{"Pacific Standard Time", "America/Indiana/Knox"} {
		if _, ok := z.Load(name); !ok {
			t.Fatalf("Load(%q) found no zone", name)
		}
		if n := testing.AllocsPerRun(10, func() { z.Load(name) }); n != 0 {
			t.Errorf("Load(%q) again allocates %.0f times: the zone is read anew", name, n)
		}
	}
	for _, name := range []string{"", "Nowhere Standard Time", "../../etc/passwd", "/etc/localtime", "Local", "Europe\\Paris"} {
		if loc, ok := z.Load(name); ok {
			t.Errorf("Load(%q) = %v, want no zone", name, loc)
		}
	}
}
