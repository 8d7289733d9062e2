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
