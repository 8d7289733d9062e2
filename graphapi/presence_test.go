package graphapi

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	presence "github.com/presenced/presenced"
)

// TestFilterIDs: the collection's $filter is required, its values are
// canonical GUIDs in order with repeats merged (case and braces ignored),
// and the cap counts distinct ids, not the values written.
func TestFilterIDs(t *testing.T) {
	q := func(f string) url.Values { return url.Values{"$filter": {f}} }
	const g1, g2 = "fa8bf3dc-eca7-46b7-bad1-db199b62afc3", "66825e03-7ef5-42da-9069-724602c31f6b"
	ids, err := filterIDs(q(fmt.Sprintf("id in ('%s','{%s}','%s')", g2, strings.ToUpper(g1), g2)), newScratch())
	if err != nil || strings.Join(ids, ",") != g2+","+g1 {
		t.Errorf("filterIDs = %q, %v; want [%s %s]", ids, err, g2, g1)
	}
	if _, err := filterIDs(url.Values{}, newScratch()); presence.ErrorCode(err) != presence.CodeBadRequest {
		t.Errorf("no $filter: %v, want BadRequest", err)
	}
	if _, err := filterIDs(q("id eq 'not-a-guid'"), newScratch()); presence.ErrorCode(err) != presence.CodeBadRequest {
		t.Errorf("a value that is not a GUID: %v, want BadRequest", err)
	}
	vals := func(n int, wrap func(string) string) []string {
		var out []string
		for i := range n {
			out = append(out, "'"+wrap(fmt.Sprintf("%08x-0000-4000-8000-000000000000", i))+"'")
		}
		return out
	}
	same := func(s string) string { return s }
	braced := func(s string) string { return "{" + s + "}" }
	// 650 ids, each also written in braces: 1,300 values, 650 ids.
	all := append(vals(650, same), vals(650, braced)...)
	if ids, err := filterIDs(q("id in ("+strings.Join(all, ",")+")"), newScratch()); err != nil || len(ids) != 650 {
		t.Errorf("650 ids written twice: %d ids, %v", len(ids), err)
	}
	if _, err := filterIDs(q("id in ("+strings.Join(vals(651, same), ",")+")"), newScratch()); presence.ErrorCode(err) != presence.CodeBadRequest {
		t.Errorf("651 ids: %v, want BadRequest", err)
	}
}
