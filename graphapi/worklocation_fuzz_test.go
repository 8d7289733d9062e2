package graphapi

import (
	"errors"
	"net/url"
	"testing"
	"time"

	presence "github.com/presenced/presenced"
)

// domainOnly fails unless err is nil or a domain error (answered 4xx in
// Graph's envelope, never 500).
func domainOnly(t *testing.T, err error) {
	t.Helper()
	var de *presence.Error
	if err != nil && !errors.As(err, &de) {
		t.Fatalf("not a domain error: %v", err)
	}
	if de != nil && statusOf(de.Code) >= 500 {
		t.Fatalf("answered %d: %v", statusOf(de.Code), err)
	}
}

// FuzzSetLocationBody checks that no body of setManualLocation or
// setAutomaticLocation panics or errs other than with a domain error.
func FuzzSetLocationBody(f *testing.F) {
	for _, s := range []string{`{"workLocationType":"office","placeId":"b1"}`, `{"workLocationType":"TIMEOFF"}`, `{}`, `{"x":1}`, `{"workLocationType":3}`, `null`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := parseObject(data, "setManualLocation")
		if err != nil {
			domainOnly(t, err)
			return
		}
		cmd, err := buildSetLocation(o, true)
		if err != nil {
			domainOnly(t, err)
			return
		}
		domainOnly(t, cmd.Validate(nil))
	})
}

// FuzzSetCurrentLocationBody does the same for setCurrentLocation.
func FuzzSetCurrentLocationBody(f *testing.F) {
	for _, s := range []string{`{"updateScope":"currentDay","workLocationType":"office","placeId":"p"}`, `{"updateScope":"currentSegment"}`, `{}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o, err := parseObject(data, "setCurrentLocation")
		if err != nil {
			domainOnly(t, err)
			return
		}
		cmd, err := buildSetCurrentLocation(o)
		if err != nil {
			domainOnly(t, err)
			return
		}
		domainOnly(t, cmd.Validate(nil))
	})
}

// FuzzWorkPlanBody feeds the test hook's whole-plan parser, which reads
// recurrences and occurrences with the API's own parsers, and validates
// what it accepts.
func FuzzWorkPlanBody(f *testing.F) {
	for _, s := range []string{
		`{"recurrences":[{"start":{"dateTime":"2030-01-06T09:00:00","timeZone":"Pacific Standard Time"},"end":{"dateTime":"2030-01-06T17:00:00","timeZone":"Pacific Standard Time"},"workLocationType":"office","recurrence":{"pattern":{"type":"weekly","interval":2,"daysOfWeek":["monday"],"firstDayOfWeek":"monday"},"range":{"type":"numbered","startDate":"2030-01-06","numberOfOccurrences":3}}}]}`,
		`{"occurrences":[{"start":{"dateTime":"2030-01-08T00:00:00","timeZone":"UTC"},"end":{"dateTime":"2030-01-09T00:00:00","timeZone":"UTC"},"workLocationType":"timeOff","timeOffDetails":{"subject":"x","isAllDay":true}}],"timeZone":"Europe/Berlin"}`,
		`{"recurrences":[{}]}`, `{"recurrences":{}}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cmd, err := ParseWorkPlan(data)
		if err != nil {
			domainOnly(t, err)
			return
		}
		err = cmd.Validate(nil)
		var de *presence.Error
		if err != nil && !errors.As(err, &de) {
			t.Fatalf("not a domain error: %v", err)
		}
		if err != nil {
			return
		}
		// What validates evaluates without panicking.
		var st presence.State
		now := time.Date(2030, 1, 7, 12, 0, 0, 0, time.UTC)
		if _, err := presence.Step(presence.Key{}, &st, cmd, now); err != nil {
			domainOnly(t, err)
			return
		}
		_ = st.ViewAt(now.Add(90 * time.Minute))
		_, _ = st.NextChange(now)
		_ = st.Work.View(now, now.Add(7*24*time.Hour), 100)
	})
}

// FuzzOccurrencesViewArgs fuzzes the function call's parameters.
func FuzzOccurrencesViewArgs(f *testing.F) {
	f.Add("startDateTime='2030-01-06T00:00:00Z',endDateTime='2030-01-13T00:00:00Z'", "")
	f.Add("startDateTime=@s,endDateTime=@e", "@s=2030-01-06T00:00:00Z&@e=2030-01-07T00:00:00")
	f.Fuzz(func(t *testing.T, args, query string) {
		q, _ := url.ParseQuery(query)
		from, to, err := parseViewArgs(args, q)
		if err != nil {
			domainOnly(t, err)
			return
		}
		if !to.After(from) || to.Sub(from) > presence.MaxViewSpan {
			t.Fatalf("accepted %v..%v", from, to)
		}
		var w presence.WorkState
		_ = w.View(from, to, 10)
	})
}
