package presence

import "testing"

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
