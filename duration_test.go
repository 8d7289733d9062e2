package presence

import (
	"math"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"PT5M": 5 * time.Minute, "PT4H": 4 * time.Hour, "PT240M": 4 * time.Hour, "P1D": 24 * time.Hour,
		"P7D": 7 * 24 * time.Hour, "P1DT2H30M": 26*time.Hour + 30*time.Minute, "PT0.5S": 500 * time.Millisecond,
		"PT1H30M15S": time.Hour + 30*time.Minute + 15*time.Second, "PT0S": 0, "P0D": 0, "PT90S": 90 * time.Second,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "P", "PT", "banana", "-PT5M", "+PT5M", "P1M", "P1Y", "P1W", "PT5", "5M", "PT5M5M",
		"PT5S5M", "PT1.5M", "P1.5D", "PT.5S", "PT5.S", "pt5m", "P1DT", "PT5M ", " PT5M", "P99999999999D", "PT1e3S", "PT1H2H"} {
		if d, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want error", in, d)
		} else if ErrorCode(err) != CodeBadRequest {
			t.Errorf("ParseDuration(%q) code %s", in, ErrorCode(err))
		}
	}
}

// A valid literal too long for time.Duration saturates (range checks then
// refuse it as out of range); one too long for Graph's Edm.Duration (a .NET
// TimeSpan) is unreadable.
func TestParseDurationBeyondTimeDuration(t *testing.T) {
	for _, in := range []string{"P200000D", "P10675199D", "PT922337203685S"} {
		if d, err := ParseDuration(in); err != nil || d != math.MaxInt64 {
			t.Errorf("ParseDuration(%q) = %v, %v; want the largest time.Duration", in, d, err)
		}
	}
	if d, err := ParseDuration("P106751D"); err != nil || d != 106751*24*time.Hour {
		t.Errorf("ParseDuration(P106751D) = %v, %v", d, err)
	}
	for _, in := range []string{"P10675200D", "PT922337203686S", "P99999999999D"} {
		if d, err := ParseDuration(in); ErrorCode(err) != CodeBadRequest {
			t.Errorf("ParseDuration(%q) = %v, %v; want BadRequest", in, d, err)
		}
	}
}

func TestFormatDurationRoundTrip(t *testing.T) {
	for _, d := range []time.Duration{time.Second, 5 * time.Minute, 4 * time.Hour, 26*time.Hour + 30*time.Minute + 15*time.Second, 24 * time.Hour} {
		got, err := ParseDuration(FormatDuration(d))
		if err != nil || got != d {
			t.Errorf("%v -> %q -> %v, %v", d, FormatDuration(d), got, err)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"PT5M", "P1DT2H", "PT0.25S", "P", "PT", "-PT1M", "P1Y2M", "PT1H1H", "P9999999999999D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if ErrorCode(err) != CodeBadRequest {
				t.Fatalf("error %v without BadRequest", err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("negative duration %v from %q", d, s)
		}
		if s == "" || s[0] != 'P' {
			t.Fatalf("accepted %q", s)
		}
	})
}
