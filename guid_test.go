package presence

import (
	"regexp"
	"testing"

	"pgregory.net/rapid"
)

func TestNewGUID(t *testing.T) {
	a, b := NewGUID(), NewGUID()
	if a == b {
		t.Fatal("two GUIDs are equal")
	}
	for _, g := range []string{a, b, GUIDFrom([16]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})} {
		if c, ok := CanonicalGUID(g); !ok || c != g || g[14] != '4' || (g[19] != '8' && g[19] != '9' && g[19] != 'a' && g[19] != 'b') {
			t.Errorf("%q is not a canonical version-4 GUID", g)
		}
	}
}

func TestCanonicalGUID(t *testing.T) {
	const want = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	for _, in := range []string{want, "FA8BF3DC-ECA7-46B7-BAD1-DB199B62AFC3", "{fa8bf3dc-eca7-46b7-bad1-db199b62afc3}", "{Fa8bf3dc-eca7-46b7-bad1-db199b62afC3}"} {
		if got, ok := CanonicalGUID(in); !ok || got != want {
			t.Errorf("CanonicalGUID(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "fa8bf3dc-eca7-46b7-bad1-db199b62afc", "fa8bf3dcXeca7-46b7-bad1-db199b62afc3", "ga8bf3dc-eca7-46b7-bad1-db199b62afc3",
		"{fa8bf3dc-eca7-46b7-bad1-db199b62afc3", "fa8bf3dceeca7-46b7-bad1-db199b62afc3", "fa8bf3dc-eca7-46b7-bad1-db199b62afc3 "} {
		if got, ok := CanonicalGUID(in); ok {
			t.Errorf("CanonicalGUID(%q) = %q, want invalid", in, got)
		}
	}
}

// TestIsCanonicalGUID holds the fast check to its definition: lower-case
// hex digits in groups of 8-4-4-4-12.
func TestIsCanonicalGUID(t *testing.T) {
	canonicalRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	rapid.Check(t, func(rt *rapid.T) {
		s := rapid.StringOfN(rapid.SampledFrom([]rune("0123456789abcdefABCDEF-g{}/:`@")), 34, 38, -1).Draw(rt, "s")
		if rapid.Bool().Draw(rt, "guid") {
			s = NewGUID()
			if rapid.Bool().Draw(rt, "mutate") {
				i := rapid.IntRange(0, 35).Draw(rt, "i")
				s = s[:i] + string(rapid.SampledFrom([]byte("-0aAg/:`@{")).Draw(rt, "c")) + s[i+1:]
			}
		}
		if want := canonicalRE.MatchString(s); isCanonicalGUID(s) != want {
			rt.Fatalf("isCanonicalGUID(%q) = %v, want %v", s, !want, want)
		}
	})
}
