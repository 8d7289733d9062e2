package graphapi

import (
	"bytes"
	"encoding/json"
	"maps"
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

// plainObjectTokens are the pieces TestPlainObject assembles bodies from:
// the valid, the almost valid, and what plainObject must leave to
// encoding/json.
var plainObjectTokens = []string{
	"{", "}", "[", "]", ",", ":", " ", "\n", `"ids"`, `"sessionId"`, `"a"`, `""`, `"fa8bf3dc-eca7-46b7-bad1-db199b62afc3"`,
	"true", "false", "null", "nul", "1", "-0.5", `"\u0041"`, `"a\"b"`, `"é"`, "\"tab\there\"", "{}", "[]", `"x`,
}

// TestPlainObject holds the one-pass body splitter to encoding/json:
// whenever it answers, json.Unmarshal into raw members accepts the same
// body and gives the same members. Bodies are drawn both from valid
// objects and from arbitrary sequences of tokens.
func TestPlainObject(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		var body []byte
		if rapid.Bool().Draw(rt, "wellFormed") {
			m := rapid.MapOf(rapid.SampledFrom([]string{"ids", "sessionId", "availability", "", "a b", `q"`, "é"}),
				rapid.OneOf(rapid.Just[any](nil), rapid.Just[any](true), rapid.SampledFrom([]any{"Available", "", "PT1H", "é", `x"y`, 5}),
					rapid.SliceOf(rapid.SampledFrom([]string{"fa8bf3dc-eca7-46b7-bad1-db199b62afc3", "", `\`})).AsAny())).Draw(rt, "members")
			body, _ = json.Marshal(m)
			if rapid.Bool().Draw(rt, "indent") {
				var buf bytes.Buffer
				_ = json.Indent(&buf, body, " ", "\t")
				body = buf.Bytes()
			}
		} else {
			for _, tok := range rapid.SliceOf(rapid.SampledFrom(plainObjectTokens)).Draw(rt, "tokens") {
				body = append(body, tok...)
			}
		}
		checkPlainObject(rt, body)
	})
	for _, body := range []string{`{"ids":["a","b"]}`, ` { "a" : null , "b":true,"c":false, "d" : [ ] } `, `{}`, `{"a":"1","a":"2"}`} {
		if _, ok := plainObject([]byte(body)); !ok {
			t.Errorf("plainObject(%s) fell back, want it answered", body)
		}
		checkPlainObject(t, []byte(body))
	}
	for _, body := range []string{`{"a":1}`, `{"a":{}}`, `{"a":"\u0041"}`, `{"a":"é"}`, `{"a":"b"}x`, `{"a":"b",}`, `{"a":[true]}`, `null`, `{"a":nullx}`} {
		if m, ok := plainObject([]byte(body)); ok {
			t.Errorf("plainObject(%s) = %q, want fallback", body, m)
		}
	}
}

func checkPlainObject(t interface{ Fatalf(string, ...any) }, body []byte) {
	got, ok := plainObject(body)
	if !ok {
		return
	}
	var want map[string]json.RawMessage
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatalf("plainObject(%s) answered %q; encoding/json refuses it: %v", body, got, err)
	}
	if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("plainObject(%s) = %q; encoding/json gives %q", body, got, want)
	}
}

// FuzzPlainObject holds the one-pass body splitter to encoding/json on
// arbitrary bytes.
func FuzzPlainObject(f *testing.F) {
	for _, s := range []string{`{"ids":["fa8bf3dc-eca7-46b7-bad1-db199b62afc3"]}`, `{"sessionId":"a","availability":"Available","activity":"Available","expirationDuration":"PT1H"}`,
		`{}`, ` {"a" : null, "b":[ ]}`, `{"a":"\u0041"}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkPlainObject(t, body) })
}

// TestIsJSONContentType: application/json with any parameters and in any
// case, nothing else (1.0 "Bodies").
func TestIsJSONContentType(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/json": true, "application/json; charset=utf-8": true, "Application/JSON;charset=UTF-8": true,
		"": false, "text/plain": false, "application/jsonx": false, "application/json; =bad": false, "application/*": false,
	} {
		if got := isJSONContentType(ct); got != want {
			t.Errorf("isJSONContentType(%q) = %v, want %v", ct, got, want)
		}
	}
}

// TestSetPresenceBodyAllocations checks that splitting a setPresence body
// copies neither the member names nor the vocabulary values: only the
// members' map (its header and its slots) is allocated.
func TestSetPresenceBodyAllocations(t *testing.T) {
	body := []byte(`{"sessionId":"22553876-f5ab-4529-bffb-cfe50aa89f87","availability":"Busy","activity":"InACall","expirationDuration":"PT1H"}`)
	var got string
	allocs := testing.AllocsPerRun(100, func() {
		m, ok := plainObject(body)
		if !ok {
			t.Fatal("not plain")
		}
		got, _ = plainString(m["availability"])
		got, _ = plainString(m["activity"])
	})
	if got != "InACall" {
		t.Errorf("activity %q", got)
	}
	if allocs > 2 {
		t.Errorf("%v allocations, want at most 2 (the map; 8 when the names and values were copied)", allocs)
	}
	for _, v := range []string{"Busy", "InACall", "Available", "Other"} {
		if s, ok := plainString([]byte(`"` + v + `"`)); !ok || s != v {
			t.Errorf("plainString(%q) = %q, %v", v, s, ok)
		}
	}
	if k := memberName([]byte("x-custom")); k != "x-custom" {
		t.Errorf("memberName = %q", k)
	}
}
