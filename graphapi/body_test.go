package graphapi

import (
	"encoding/json"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

// TestPlainStrings holds the fast id-list reader to encoding/json: whenever
// it answers, it answers the same.
func TestPlainStrings(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		ss := rapid.SliceOf(rapid.SampledFrom([]string{"a", "fa8bf3dc-eca7-46b7-bad1-db199b62afc3", "", "with space", `q"uote`, `back\slash`, "é", "\n"})).Draw(rt, "ss")
		raw, _ := json.Marshal(ss)
		if rapid.Bool().Draw(rt, "spaces") {
			raw = []byte(" " + string(raw) + " ")
		}
		got, ok := plainStrings(raw)
		if !ok {
			return
		}
		if !slices.Equal(got, ss) {
			rt.Fatalf("plainStrings(%s) = %q, want %q", raw, got, ss)
		}
	})
	for _, raw := range []string{`[1]`, `["a",2]`, `{"a":1}`, `["a" "b"]`, `null`, `["\u0041"]`} {
		if got, ok := plainStrings([]byte(raw)); ok {
			t.Errorf("plainStrings(%s) = %q, want fallback", raw, got)
		}
	}
	if got, ok := plainStrings([]byte(` [ ] `)); !ok || len(got) != 0 {
		t.Errorf("empty array: %q %v", got, ok)
	}
}

// TestPlainString holds the one-step string reader to encoding/json.
func TestPlainString(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		want := rapid.String().Draw(rt, "s")
		raw, _ := json.Marshal(want)
		got, ok := plainString(raw)
		if ok && got != want {
			rt.Fatalf("plainString(%s) = %q, want %q", raw, got, want)
		}
	})
	for _, raw := range []string{`5`, `null`, `"a\"b"`, `["a"]`} {
		if got, ok := plainString([]byte(raw)); ok {
			t.Errorf("plainString(%s) = %q, want fallback", raw, got)
		}
	}
}
