package presence

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseIDFilter checks the $filter parser never panics and that what it
// accepts has the grammar's shape.
func FuzzParseIDFilter(f *testing.F) {
	for _, s := range []string{"id in ('a','b')", "id eq 'x'", "ID IN ( 'a' , 'b' )", "id in ('it''s')", "id in ()", "id in ('a'", "idin('a')", "id in ('a') and x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ids, err := ParseIDFilter(s)
		if err != nil {
			if ErrorCode(err) != CodeBadRequest {
				t.Fatalf("error without BadRequest: %v", err)
			}
			return
		}
		distinct := map[string]bool{}
		for _, id := range ids {
			distinct[idKey(id)] = true
		}
		if len(ids) == 0 || len(distinct) > 650 || !strings.Contains(strings.ToLower(s), "id") {
			t.Fatalf("accepted %q as %q", s, ids)
		}
	})
}

func TestParseIDFilter(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"id in ('a','b')", []string{"a", "b"}},
		{"  Id IN ( 'a' ,'b' )  ", []string{"a", "b"}},
		{"id eq 'x'", []string{"x"}},
		{"id in ('it''s')", []string{"it's"}},
		{"id in ('''''','a''''b','''x','y''')", []string{"''", "a''b", "'x", "y'"}},
		{"id eq ''", []string{""}},
	}
	for _, tt := range tests {
		got, err := ParseIDFilter(tt.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%q: %q, %v", tt.in, got, err)
		}
	}
	for _, bad := range []string{"", "id", "id in", "id in ()", "id in (a)", "id in ('a'", "id in ('a',)", "idin ('a')", "name eq 'a'", "id in ('a') or id eq 'b'"} {
		if got, err := ParseIDFilter(bad); err == nil {
			t.Errorf("%q accepted as %q", bad, got)
		}
	}
}

// The limit of 650 counts distinct ids, as in a subscription's resource.
func TestParseIDFilterLimitCountsDistinctIDs(t *testing.T) {
	list := func(n, repeat int) string {
		var vals []string
		for i := range n {
			vals = append(vals, fmt.Sprintf("'%08x-0000-4000-8000-000000000000'", i))
		}
		for i := range repeat {
			vals = append(vals, strings.ToUpper(vals[i]))
		}
		return "id in (" + strings.Join(vals, ",") + ")"
	}
	if ids, err := ParseIDFilter(list(650, 5)); err != nil || len(ids) != 655 {
		t.Errorf("650 distinct ids written 655 times: %d ids, %v", len(ids), err)
	}
	if _, err := ParseIDFilter(list(651, 0)); err == nil {
		t.Errorf("651 distinct ids accepted")
	}
	if _, err := ParseIDFilter(list(651, 3)); err == nil {
		t.Errorf("651 distinct ids among 654 accepted")
	}
	// A GUID in braces is the same id, as in a subscription's resource.
	var both []string
	for i := range 650 {
		g := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		both = append(both, "'"+g+"'", "'{"+g+"}'")
	}
	if ids, err := ParseIDFilter("id in (" + strings.Join(both, ",") + ")"); err != nil || len(ids) != 1300 {
		t.Errorf("650 ids written with and without braces: %d ids, %v", len(ids), err)
	}
}
