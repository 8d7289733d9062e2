package graphapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	presence "github.com/presenced/presenced"
)

// The JSON shapes of the work plan (Graph's workPlanRecurrence,
// workPlanOccurrence and patternedRecurrence).

type wireDateTimeZone struct {
	DateTime string `json:"dateTime"`
	TimeZone string `json:"timeZone"`
}

type wirePattern struct {
	Type           string   `json:"type"`
	Interval       int      `json:"interval"`
	Month          int      `json:"month"`
	DayOfMonth     int      `json:"dayOfMonth"`
	DaysOfWeek     []string `json:"daysOfWeek"`
	FirstDayOfWeek string   `json:"firstDayOfWeek"`
	Index          string   `json:"index"`
}

type wireRange struct {
	Type                string `json:"type"`
	StartDate           string `json:"startDate"`
	EndDate             string `json:"endDate"`
	RecurrenceTimeZone  string `json:"recurrenceTimeZone"`
	NumberOfOccurrences int    `json:"numberOfOccurrences"`
}

type wireRecurrencePattern struct {
	Pattern wirePattern `json:"pattern"`
	Range   wireRange   `json:"range"`
}

type wireRecurrence struct {
	Context          string                `json:"@odata.context,omitempty"`
	ID               string                `json:"id"`
	Start            wireDateTimeZone      `json:"start"`
	End              wireDateTimeZone      `json:"end"`
	WorkLocationType string                `json:"workLocationType"`
	PlaceID          *string               `json:"placeId"`
	Recurrence       wireRecurrencePattern `json:"recurrence"`
}

type wireTimeOff struct {
	Subject  string `json:"subject"`
	IsAllDay bool   `json:"isAllDay"`
}

type wireOccurrence struct {
	Context          string           `json:"@odata.context,omitempty"`
	ID               string           `json:"id"`
	RecurrenceID     *string          `json:"recurrenceId"`
	Start            wireDateTimeZone `json:"start"`
	End              wireDateTimeZone `json:"end"`
	WorkLocationType string           `json:"workLocationType"`
	PlaceID          *string          `json:"placeId"`
	TimeOffDetails   *wireTimeOff     `json:"timeOffDetails"`
}

var weekdayNames = []string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func toWireRecurrence(r *presence.PlanRecurrence) wireRecurrence {
	var days []string
	for d, name := range weekdayNames {
		if r.Days&(1<<d) != 0 {
			days = append(days, name)
		}
	}
	end := r.EndDate
	if end == "" {
		end = "0001-01-01"
	}
	return wireRecurrence{
		ID: r.ID, Start: wireDateTimeZone(r.Start), End: wireDateTimeZone(r.End),
		WorkLocationType: r.Type, PlaceID: nullable(r.PlaceID),
		Recurrence: wireRecurrencePattern{
			Pattern: wirePattern{Type: "weekly", Interval: r.Interval, DaysOfWeek: days,
				FirstDayOfWeek: weekdayNames[r.FirstDayOfWeek], Index: "first"},
			Range: wireRange{Type: r.RangeType, StartDate: r.StartDate, EndDate: end,
				RecurrenceTimeZone: r.RangeTimeZone, NumberOfOccurrences: r.Count},
		},
	}
}

func toWireSegment(sg *presence.Segment) wireOccurrence {
	start, end := planTimeIn(sg.Start, sg.Zone), planTimeIn(sg.End, sg.Zone)
	o := wireOccurrence{ID: sg.ID, RecurrenceID: nullable(sg.RecurrenceID), Start: start, End: end,
		WorkLocationType: sg.Type, PlaceID: nullable(sg.PlaceID)}
	if t := sg.TimeOff; t != nil {
		o.TimeOffDetails = &wireTimeOff{Subject: t.Subject, IsAllDay: t.IsAllDay}
	}
	return o
}

func toWireOccurrence(o *presence.PlanOccurrence) wireOccurrence {
	w := wireOccurrence{ID: o.ID, RecurrenceID: nullable(o.RecurrenceID), Start: wireDateTimeZone(o.Start),
		End: wireDateTimeZone(o.End), WorkLocationType: o.Type, PlaceID: nullable(o.PlaceID)}
	if t := o.TimeOff; t != nil {
		w.TimeOffDetails = &wireTimeOff{Subject: t.Subject, IsAllDay: t.IsAllDay}
	}
	return w
}

// planTimeIn writes an instant in the named zone, as Graph writes
// dateTimeTimeZone (seven fractional digits).
func planTimeIn(t time.Time, zone string) wireDateTimeZone {
	return wireDateTimeZone(presence.FormatPlanTime(t, zone))
}

func writeValue(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	writeJSON(w, status, b)
	return nil
}

// planContext is the @odata.context of the work plan of user, plus tail.
func (s *Server) planContext(r *http.Request, c *call, user, tail string) string {
	return s.base(r, c) + "/$metadata#users('" + user + "')/settings/workHoursAndLocations" + tail
}

func (s *Server) readPlan(r *http.Request, c *call, user string) (*presence.WorkState, error) {
	w, err := s.svc.WorkPlan(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user})
	if err != nil {
		return nil, err
	}
	if w == nil {
		w = &presence.WorkState{}
	}
	return w, nil
}

func (s *Server) getWorkHoursAndLocations(w http.ResponseWriter, r *http.Request, c *call) error {
	user, _, err := planTarget(r, c, false, false)
	if err != nil {
		return err
	}
	plan, err := s.readPlan(r, c, user)
	if err != nil {
		return err
	}
	return s.writeWorkSettings(w, r, c, user, plan.MaxSharedDetails())
}

func (s *Server) writeWorkSettings(w http.ResponseWriter, r *http.Request, c *call, user, maxShared string) error {
	return writeValue(w, http.StatusOK, map[string]string{
		"@odata.context":               s.planContext(r, c, user, "/$entity"),
		"maxSharedWorkLocationDetails": maxShared,
	})
}

// updateWorkHoursAndLocations is PATCH .../workHoursAndLocations.
func (s *Server) updateWorkHoursAndLocations(w http.ResponseWriter, r *http.Request, c *call) error {
	user, _, err := planTarget(r, c, false, true)
	if err != nil {
		return err
	}
	o, err := readBody(r, "workHoursAndLocationsSetting", false)
	if err != nil {
		return err
	}
	if err := o.only("maxSharedWorkLocationDetails"); err != nil {
		return err
	}
	cmd := &presence.SetWorkSettings{}
	if err := o.strs("maxSharedWorkLocationDetails", &cmd.MaxShared); err != nil {
		return err
	}
	if !o.has("maxSharedWorkLocationDetails") {
		plan, err := s.readPlan(r, c, user)
		if err != nil {
			return err
		}
		return s.writeWorkSettings(w, r, c, user, plan.MaxSharedDetails()) // nothing to change
	}
	if _, err := s.svc.Do(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user}, cmd); err != nil {
		return err
	}
	return s.writeWorkSettings(w, r, c, user, cmd.MaxShared)
}

func (s *Server) listRecurrences(w http.ResponseWriter, r *http.Request, c *call) error {
	return listPlanItems(s, w, r, c, "/recurrences", func(p *presence.WorkState) []presence.PlanRecurrence { return p.Recurrences }, toWireRecurrence)
}
func (s *Server) getRecurrence(w http.ResponseWriter, r *http.Request, c *call) error {
	return getPlanItem(s, w, r, c, "/recurrences/$entity", "recurrence",
		func(p *presence.WorkState) []presence.PlanRecurrence { return p.Recurrences },
		func(x *presence.PlanRecurrence) string { return x.ID },
		func(x *presence.PlanRecurrence) wireRecurrence { return toWireRecurrence(x) },
		func(o *wireRecurrence, ctx string) { o.Context = ctx })
}
func (s *Server) createRecurrence(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.putRecurrence(w, r, c, true)
}

func (s *Server) replaceRecurrence(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.putRecurrence(w, r, c, false)
}

func (s *Server) putRecurrence(w http.ResponseWriter, r *http.Request, c *call, create bool) error {
	user, key, err := planTarget(r, c, !create, true)
	if err != nil {
		return err
	}
	o, err := readBody(r, "workPlanRecurrence", false)
	if err != nil {
		return err
	}
	rec, err := parseRecurrence(o)
	if err != nil {
		return err
	}
	rec.ID = key
	cmd := &presence.PutRecurrence{Recurrence: rec, Create: create}
	if _, err := s.svc.Do(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user}, cmd); err != nil {
		return err
	}
	out := toWireRecurrence(&cmd.Recurrence)
	out.Context = s.planContext(r, c, user, "/recurrences/$entity")
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	return writeValue(w, status, out)
}

func (s *Server) deleteRecurrence(w http.ResponseWriter, r *http.Request, c *call) error {
	user, key, err := planTarget(r, c, true, true)
	if err != nil {
		return err
	}
	if _, err := s.svc.Do(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user}, presence.DeleteRecurrence{ID: key}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listOccurrences lists the occurrences stored in the plan (time off and
// exceptions written by setCurrentLocation), not the expanded recurrences:
// occurrencesView does that.
func (s *Server) listOccurrences(w http.ResponseWriter, r *http.Request, c *call) error {
	return listPlanItems(s, w, r, c, "/occurrences", func(p *presence.WorkState) []presence.PlanOccurrence { return p.Occurrences }, toWireOccurrence)
}
func (s *Server) getOccurrence(w http.ResponseWriter, r *http.Request, c *call) error {
	return getPlanItem(s, w, r, c, "/occurrences/$entity", "occurrence",
		func(p *presence.WorkState) []presence.PlanOccurrence { return p.Occurrences },
		func(x *presence.PlanOccurrence) string { return x.ID },
		func(x *presence.PlanOccurrence) wireOccurrence { return toWireOccurrence(x) },
		func(o *wireOccurrence, ctx string) { o.Context = ctx })
}

// listPlanItems answers the collection of one kind of the caller's work
// plan items (recurrences or stored occurrences) in Graph's wire shape.
func listPlanItems[T, W any](s *Server, w http.ResponseWriter, r *http.Request, c *call, path string,
	items func(*presence.WorkState) []T, wire func(*T) W) error {
	user, _, err := planTarget(r, c, false, false)
	if err != nil {
		return err
	}
	plan, err := s.readPlan(r, c, user)
	if err != nil {
		return err
	}
	out := struct {
		Context string `json:"@odata.context"`
		Value   []W    `json:"value"`
	}{Context: s.planContext(r, c, user, path), Value: []W{}}
	all := items(plan)
	for i := range all {
		out.Value = append(out.Value, wire(&all[i]))
	}
	return writeValue(w, http.StatusOK, out)
}

// getPlanItem answers one item of the caller's work plan by its id, or a
// NotFound naming the kind.
func getPlanItem[T, W any](s *Server, w http.ResponseWriter, r *http.Request, c *call, path, kind string,
	items func(*presence.WorkState) []T, id func(*T) string, wire func(*T) W, setContext func(*W, string)) error {
	user, key, err := planTarget(r, c, true, false)
	if err != nil {
		return err
	}
	plan, err := s.readPlan(r, c, user)
	if err != nil {
		return err
	}
	all := items(plan)
	i := slices.IndexFunc(all, func(x T) bool { return id(&x) == key })
	if i < 0 {
		return presence.Errorf(presence.CodeNotFound, "The work plan %s '%s' doesn't exist.", kind, key)
	}
	out := wire(&all[i])
	setContext(&out, s.planContext(r, c, user, path))
	return writeValue(w, http.StatusOK, out)
}
func (s *Server) createOccurrence(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.putOccurrence(w, r, c, true)
}

func (s *Server) replaceOccurrence(w http.ResponseWriter, r *http.Request, c *call) error {
	return s.putOccurrence(w, r, c, false)
}

func (s *Server) putOccurrence(w http.ResponseWriter, r *http.Request, c *call, create bool) error {
	user, key, err := planTarget(r, c, !create, true)
	if err != nil {
		return err
	}
	o, err := readBody(r, "workPlanOccurrence", false)
	if err != nil {
		return err
	}
	occ, err := parseOccurrence(o)
	if err != nil {
		return err
	}
	occ.ID = key
	cmd := &presence.PutOccurrence{Occurrence: occ, Create: create}
	if _, err := s.svc.Do(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user}, cmd); err != nil {
		return err
	}
	out := toWireOccurrence(&cmd.Occurrence)
	out.Context = s.planContext(r, c, user, "/occurrences/$entity")
	status := http.StatusOK
	if create {
		status = http.StatusCreated
	}
	return writeValue(w, status, out)
}

func (s *Server) deleteOccurrence(w http.ResponseWriter, r *http.Request, c *call) error {
	user, key, err := planTarget(r, c, true, true)
	if err != nil {
		return err
	}
	if _, err := s.svc.Do(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user}, presence.DeleteOccurrence{ID: key}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) setCurrentLocation(w http.ResponseWriter, r *http.Request, c *call) error {
	user, _, err := planTarget(r, c, false, true)
	if err != nil {
		return err
	}
	o, err := readBody(r, "setCurrentLocation", false)
	if err != nil {
		return err
	}
	cmd, err := buildSetCurrentLocation(o)
	if err != nil {
		return err
	}
	if _, err := s.svc.Do(r.Context(), presence.Key{Tenant: c.principal.Tenant, User: user}, cmd); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func buildSetCurrentLocation(o *object) (*presence.SetCurrentLocation, error) {
	if err := o.only("updateScope", "workLocationType", "placeId"); err != nil {
		return nil, err
	}
	for _, name := range []string{"updateScope", "workLocationType"} {
		if !o.has(name) {
			return nil, presence.Errorf(presence.CodeBadRequest, "The parameter '%s' is required.", name)
		}
	}
	cmd := &presence.SetCurrentLocation{}
	return cmd, o.strs("updateScope", &cmd.Scope, "workLocationType", &cmd.Type, "placeId", &cmd.PlaceID)
}

// occurrencesView serves GET .../occurrencesView(startDateTime='…',endDateTime='…').
func (s *Server) occurrencesView(w http.ResponseWriter, r *http.Request, c *call) error {
	name, args, ok := strings.Cut(c.id, "(")
	name = strings.TrimPrefix(strings.ToLower(name), "microsoft.graph.")
	if !ok || name != "occurrencesview" || !strings.HasSuffix(args, ")") {
		return presence.Errorf(presence.CodeNotFound, "Resource not found for the segment '%s'.", c.id)
	}
	user, _, err := planTarget(r, c, false, false)
	if err != nil {
		return err
	}
	from, to, err := parseViewArgs(strings.TrimSuffix(args, ")"), r.URL.Query())
	if err != nil {
		return err
	}
	top := 0
	if v := r.URL.Query().Get("$top"); v != "" {
		if top, err = strconv.Atoi(v); err != nil || top < 0 {
			return presence.Errorf(presence.CodeBadRequest, "Invalid value '%s' for $top.", v)
		}
	}
	plan, err := s.readPlan(r, c, user)
	if err != nil {
		return err
	}
	out := struct {
		Context string           `json:"@odata.context"`
		Value   []wireOccurrence `json:"value"`
	}{Context: s.base(r, c) + "/$metadata#Collection(microsoft.graph.workPlanOccurrence)", Value: []wireOccurrence{}}
	for _, sg := range plan.View(from, to, top) {
		out.Value = append(out.Value, toWireSegment(&sg))
	}
	return writeValue(w, http.StatusOK, out)
}

// parseViewArgs reads the function's startDateTime and endDateTime, given
// inline ('…' literals) or as parameter aliases (@p) from the query.
func parseViewArgs(args string, q url.Values) (time.Time, time.Time, error) {
	vals := map[string]string{}
	for _, part := range strings.Split(args, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if strings.HasPrefix(v, "@") {
			v = q.Get(v)
		}
		vals[strings.ToLower(k)] = strings.Trim(v, "'")
	}
	var out [2]time.Time
	for i, name := range []string{"startDateTime", "endDateTime"} {
		v, ok := vals[strings.ToLower(name)]
		if !ok || v == "" {
			return time.Time{}, time.Time{}, presence.Errorf(presence.CodeBadRequest, "The parameter '%s' is required.", name)
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			if t, err = time.Parse("2006-01-02T15:04:05", v); err != nil {
				return time.Time{}, time.Time{}, presence.Errorf(presence.CodeBadRequest, "The value '%s' of '%s' is not an ISO 8601 date and time.", v, name)
			}
		}
		out[i] = t.UTC()
	}
	if !out[1].After(out[0]) {
		return time.Time{}, time.Time{}, presence.Errorf(presence.CodeBadRequest, "'endDateTime' must be after 'startDateTime'.")
	}
	if out[1].Sub(out[0]) > presence.MaxViewSpan {
		return time.Time{}, time.Time{}, presence.Errorf(presence.CodeBadRequest, "The time range may span at most 366 days.")
	}
	return out[0], out[1], nil
}

// dateTimeZone reads a required dateTimeTimeZone member.
func dateTimeZone(o *object, name string) (presence.PlanTime, error) {
	d, err := o.obj(name)
	if err != nil {
		return presence.PlanTime{}, err
	}
	if d == nil {
		return presence.PlanTime{}, presence.Errorf(presence.CodeBadRequest, "The property '%s' is required.", name)
	}
	if err := d.only("dateTime", "timeZone"); err != nil {
		return presence.PlanTime{}, err
	}
	var p presence.PlanTime
	if err := d.strs("dateTime", &p.DateTime, "timeZone", &p.TimeZone); err != nil {
		return p, err
	}
	if p.DateTime == "" || p.TimeZone == "" {
		return p, presence.Errorf(presence.CodeBadRequest, "The property '%s' needs 'dateTime' and 'timeZone'.", name)
	}
	return p, nil
}

// integer reads an optional integer member.
func (o *object) integer(name string) (int, error) {
	if !o.has(name) {
		return 0, nil
	}
	var n int
	if err := json.Unmarshal(o.members[name], &n); err != nil {
		return 0, presence.Errorf(presence.CodeBadRequest, "The value of the parameter '%s' is not a valid integer.", name)
	}
	return n, nil
}

// parseRecurrence reads a workPlanRecurrence body.
func parseRecurrence(o *object) (presence.PlanRecurrence, error) {
	var rec presence.PlanRecurrence
	if err := o.only("id", "start", "end", "workLocationType", "placeId", "recurrence"); err != nil {
		return rec, err
	}
	var err error
	if rec.Start, err = dateTimeZone(o, "start"); err != nil {
		return rec, err
	}
	if rec.End, err = dateTimeZone(o, "end"); err != nil {
		return rec, err
	}
	if !o.has("workLocationType") {
		return rec, presence.Errorf(presence.CodeBadRequest, "The property 'workLocationType' is required; valid values are 'unspecified', 'office', 'remote'.")
	}
	if err := o.strs("workLocationType", &rec.Type, "placeId", &rec.PlaceID); err != nil {
		return rec, err
	}
	pr, err := o.obj("recurrence")
	if err != nil {
		return rec, err
	}
	if pr == nil {
		return rec, presence.Errorf(presence.CodeBadRequest, "The property 'recurrence' is required.")
	}
	if err := pr.only("pattern", "range"); err != nil {
		return rec, err
	}
	pat, err := pr.obj("pattern")
	if err != nil {
		return rec, err
	}
	rng, err := pr.obj("range")
	if err != nil {
		return rec, err
	}
	if pat == nil || rng == nil {
		return rec, presence.Errorf(presence.CodeBadRequest, "The property 'recurrence' needs 'pattern' and 'range'.")
	}
	if err := pat.only("type", "interval", "month", "dayOfMonth", "daysOfWeek", "firstDayOfWeek", "index"); err != nil {
		return rec, err
	}
	var typ, first string
	if err := pat.strs("type", &typ, "firstDayOfWeek", &first); err != nil {
		return rec, err
	}
	if !strings.EqualFold(typ, "weekly") {
		return rec, presence.Errorf(presence.CodeInvalidArgument, "The recurrence pattern type '%s' is not supported; the work plan takes 'weekly'.", typ)
	}
	if rec.Interval, err = pat.integer("interval"); err != nil {
		return rec, err
	}
	if first != "" {
		i := slices.IndexFunc(weekdayNames, func(n string) bool { return strings.EqualFold(n, first) })
		if i < 0 {
			return rec, presence.Errorf(presence.CodeInvalidArgument, "The value '%s' is not valid for 'firstDayOfWeek'; valid values are %s.", first, quoteAll(weekdayNames))
		}
		rec.FirstDayOfWeek = time.Weekday(i)
	}
	days, _, err := pat.strings("daysOfWeek")
	if err != nil {
		return rec, err
	}
	for _, d := range days {
		i := slices.IndexFunc(weekdayNames, func(n string) bool { return strings.EqualFold(n, d) })
		if i < 0 {
			return rec, presence.Errorf(presence.CodeInvalidArgument, "The value '%s' is not valid for 'daysOfWeek'; valid values are %s.", d, quoteAll(weekdayNames))
		}
		rec.Days |= 1 << i
	}
	if err := rng.only("type", "startDate", "endDate", "recurrenceTimeZone", "numberOfOccurrences"); err != nil {
		return rec, err
	}
	var rtype string
	if err := rng.strs("type", &rtype, "startDate", &rec.StartDate, "endDate", &rec.EndDate, "recurrenceTimeZone", &rec.RangeTimeZone); err != nil {
		return rec, err
	}
	canonical, ok := canonicalOf(rtype, presence.RangeNoEnd, presence.RangeEndDate, presence.RangeNumbered)
	if !ok {
		return rec, presence.Errorf(presence.CodeInvalidArgument, "The recurrence range type '%s' is not supported; valid values are 'noEnd', 'endDate', 'numbered'.", rtype)
	}
	rec.RangeType = canonical
	if rec.RangeType != presence.RangeEndDate {
		rec.EndDate = "" // Outlook writes 0001-01-01 for none
	}
	if rec.Count, err = rng.integer("numberOfOccurrences"); err != nil {
		return rec, err
	}
	if rec.RangeType != presence.RangeNumbered {
		rec.Count = 0
	}
	return rec, nil
}

// parseOccurrence reads a workPlanOccurrence body.
func parseOccurrence(o *object) (presence.PlanOccurrence, error) {
	var occ presence.PlanOccurrence
	if err := o.only("id", "recurrenceId", "start", "end", "workLocationType", "placeId", "timeOffDetails"); err != nil {
		return occ, err
	}
	var err error
	if occ.Start, err = dateTimeZone(o, "start"); err != nil {
		return occ, err
	}
	if occ.End, err = dateTimeZone(o, "end"); err != nil {
		return occ, err
	}
	if !o.has("workLocationType") {
		return occ, presence.Errorf(presence.CodeBadRequest, "The property 'workLocationType' is required; valid values are 'unspecified', 'office', 'remote', 'timeOff'.")
	}
	if err := o.strs("workLocationType", &occ.Type, "placeId", &occ.PlaceID); err != nil {
		return occ, err
	}
	td, err := o.obj("timeOffDetails")
	if err != nil {
		return occ, err
	}
	if td != nil {
		if err := td.only("subject", "isAllDay"); err != nil {
			return occ, err
		}
		occ.TimeOff = &presence.TimeOffDetails{}
		if err := td.strs("subject", &occ.TimeOff.Subject); err != nil {
			return occ, err
		}
		if td.has("isAllDay") {
			if err := json.Unmarshal(td.members["isAllDay"], &occ.TimeOff.IsAllDay); err != nil {
				return occ, presence.Errorf(presence.CodeBadRequest, "The value of the parameter 'isAllDay' is not a valid boolean.")
			}
		}
	}
	return occ, nil
}

func canonicalOf(v string, values ...string) (string, bool) {
	for _, c := range values {
		if strings.EqualFold(c, v) {
			return c, true
		}
	}
	return "", false
}

func quoteAll(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = "'" + v + "'"
	}
	return strings.Join(q, ", ")
}

// ParseWorkPlan reads a whole work plan, {"recurrences":[…],
// "occurrences":[…],"timeZone":"…"}, in Graph's workPlanRecurrence and
// workPlanOccurrence shapes (their ids are kept when given): the body of
// the test hook that sets a user's plan.
func ParseWorkPlan(data []byte) (*presence.SetWorkPlan, error) {
	o, err := parseObject(data, "workPlan")
	if err != nil {
		return nil, err
	}
	if err := o.only("recurrences", "occurrences", "timeZone"); err != nil {
		return nil, err
	}
	cmd := &presence.SetWorkPlan{}
	if err := o.strs("timeZone", &cmd.TimeZone); err != nil {
		return nil, err
	}
	for _, name := range []string{"recurrences", "occurrences"} {
		if !o.has(name) {
			continue
		}
		var items []json.RawMessage
		if err := json.Unmarshal(o.members[name], &items); err != nil {
			return nil, presence.Errorf(presence.CodeBadRequest, "The member '%s' must be an array of objects.", name)
		}
		for _, raw := range items {
			item, err := parseObject(raw, name)
			if err != nil {
				return nil, err
			}
			id, err := item.str("id")
			if err != nil {
				return nil, err
			}
			if name == "recurrences" {
				rec, err := parseRecurrence(item)
				if err != nil {
					return nil, err
				}
				rec.ID = id
				cmd.Recurrences = append(cmd.Recurrences, rec)
				continue
			}
			occ, err := parseOccurrence(item)
			if err != nil {
				return nil, err
			}
			occ.ID = id
			if occ.RecurrenceID, err = item.str("recurrenceId"); err != nil {
				return nil, err
			}
			cmd.Occurrences = append(cmd.Occurrences, occ)
		}
	}
	return cmd, nil
}
