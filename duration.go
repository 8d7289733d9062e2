package presence

import (
	"math"
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses an OData Edm.Duration, the day-time form of an ISO 8601
// duration: "P" then optional days, then "T" and optional hours, minutes and
// (possibly fractional) seconds, e.g. "PT5M", "P1D", "P1DT2H30M", "PT0.5S".
// Years, months, weeks, signs, empty designators ("P", "PT"), repeated or
// out-of-order units and values beyond what Edm.Duration holds on Graph's
// side (a .NET TimeSpan: about 10.7 million days) are rejected with a
// BadRequest error in OData's words. A valid literal longer than
// time.Duration holds (about 292 years) saturates at the largest
// time.Duration, so range checks see it as too long rather than as
// unreadable.
func ParseDuration(s string) (time.Duration, error) {
	d, ok := parseDuration(s)
	if !ok {
		return 0, Errorf(CodeBadRequest, "Cannot convert the literal '%s' to the expected type 'Edm.Duration'.", s)
	}
	return d, nil
}

// maxEdmDuration is the longest Edm.Duration Graph reads, in nanoseconds:
// TimeSpan.MaxValue, math.MaxInt64 ticks of 100 ns.
const maxEdmDuration = math.MaxInt64 * 100.0

func parseDuration(s string) (time.Duration, bool) {
	rest, ok := strings.CutPrefix(s, "P")
	if !ok || rest == "" {
		return 0, false
	}
	datePart, timePart, hasT := strings.Cut(rest, "T")
	if hasT && timePart == "" {
		return 0, false
	}
	var total float64
	components := 0
	if datePart != "" {
		num, ok := strings.CutSuffix(datePart, "D")
		if !ok {
			return 0, false
		}
		v, ok := parseUnsigned(num, false)
		if !ok {
			return 0, false
		}
		total += v * float64(24*time.Hour)
		components++
	}
	units := []struct {
		letter byte
		size   time.Duration
	}{{'H', time.Hour}, {'M', time.Minute}, {'S', time.Second}}
	next := 0
	for timePart != "" {
		i := strings.IndexAny(timePart, "HMS")
		if i <= 0 {
			return 0, false
		}
		letter := timePart[i]
		pos := -1
		for j := next; j < len(units); j++ {
			if units[j].letter == letter {
				pos = j
				break
			}
		}
		if pos < 0 {
			return 0, false
		}
		v, ok := parseUnsigned(timePart[:i], letter == 'S')
		if !ok {
			return 0, false
		}
		total += v * float64(units[pos].size)
		components++
		next = pos + 1
		timePart = timePart[i+1:]
	}
	if components == 0 || total > maxEdmDuration {
		return 0, false
	}
	if total >= math.MaxInt64 {
		return math.MaxInt64, true
	}
	return time.Duration(total), true
}

// parseUnsigned parses a run of ASCII digits, with a fraction only when
// fraction is allowed.
func parseUnsigned(s string, fraction bool) (float64, bool) {
	if s == "" || len(s) > 30 {
		return 0, false
	}
	dots := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == '.' && fraction:
			dots++
		default:
			return 0, false
		}
	}
	if dots > 1 || s[0] == '.' || s[len(s)-1] == '.' {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// FormatDuration writes d as an Edm.Duration, e.g. "PT1H30M" or "P1D".
func FormatDuration(d time.Duration) string {
	if d <= 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteByte('P')
	if days := d / (24 * time.Hour); days > 0 {
		b.WriteString(strconv.FormatInt(int64(days), 10) + "D")
		d -= days * 24 * time.Hour
	}
	if d == 0 {
		return b.String()
	}
	b.WriteByte('T')
	if h := d / time.Hour; h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "H")
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "M")
		d -= m * time.Minute
	}
	if d > 0 {
		b.WriteString(strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "S")
	}
	return b.String()
}
